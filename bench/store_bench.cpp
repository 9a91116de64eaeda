// store_bench: the store benchmark of the project's issue. A synthetic guest image (about 25% zero, 50% structured,
// 25% random pages) is written as a base epoch plus a chain of deltas, and in the same run compared with the zstd
// CLI on the same raw image:
//   base write   store: Store::open + begin_base + add_page for every gfn + durable commit
//                zstd:  `zstd -1 -T2 -q -f raw.img -o raw.img.zst` + fsync of the output and the directory
//   output size  the base's store directory against raw.img.zst
//   restore      store: Catalog::load + restore_to_file of the newest epoch (fsync'ed), checked bit-exact
//                zstd:  `zstd -d -q -f raw.img.zst -o out.img` + fsync of the output
// Timed steps alternate (zstd, store, zstd, store, ...) and the medians are compared. Every input is warm in the
// page cache for both sides; nothing drops caches. The report ends with a markdown section for bench/README.md.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/synthetic_image.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "snapshot/catalog.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"

namespace ckpt::bench {
namespace {

using snap::Catalog;
using snap::Store;
using snap::StoreOptions;

struct Config {
  uint64_t size_mib = 2048;
  unsigned deltas = 20;
  double dirty_fraction = 0.10;
  std::string dir;  // empty: a fresh directory under /var/tmp
  uint64_t seed = 42;
  unsigned repeats = 3;
  std::string engine = "auto";
  bool keep = false;
};

// Where each artefact lives inside the bench directory.
struct Paths {
  std::string dir;
  std::string raw() const { return dir + "/raw.img"; }
  std::string zst() const { return dir + "/raw.img.zst"; }
  std::string zstd_out() const { return dir + "/zstd-out.img"; }
  std::string restored() const { return dir + "/restored.img"; }
  std::string store(unsigned repeat) const { return dir + "/store-" + std::to_string(repeat); }
};

struct BaseFigures {
  std::vector<double> zstd_seconds, store_seconds;
  std::vector<double> zstd_fsync_seconds;    // the part of zstd_seconds spent in the parity fsyncs
  std::vector<double> store_commit_seconds;  // the part of store_seconds spent in commit()
  uint64_t zstd_bytes = 0, store_bytes = 0;
  snap::EpochStats stats;
  uint64_t raw_blocks = 0;  // blocks stored uncompressed (zstd saved < 1/16)
  std::string store_dir;    // the last repeat's store; the deltas extend it
  std::string engine;
};

struct DeltaFigures {
  uint64_t epoch = 0;
  uint64_t dirty_pages = 0;
  double seconds = 0;
  double commit_seconds = 0;  // the part of `seconds` spent in commit()
  uint64_t file_bytes = 0;
  snap::EpochStats stats;
};

struct RestoreFigures {
  std::vector<double> zstd_seconds, store_seconds;
  uint64_t epoch = 0;
  snap::RestoreStats stats;
};

// ---------------------------------------------------------------------------------------------------------------
// Setup

Result<std::string> make_bench_dir(const Config& config) {
  if (!config.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.dir, ec);
    if (ec) return Status::from_errno(ec.value(), "create " + config.dir);
    return config.dir;
  }
  std::string templ = "/var/tmp/store_bench.XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Status::from_errno(errno, "mkdtemp " + templ);
  return templ;
}

Result<StoreOptions> store_options(const Config& config) {
  StoreOptions options;
  if (config.engine == "auto") options.engine = snap::WriteEngine::kAuto;
  else if (config.engine == "io_uring") options.engine = snap::WriteEngine::kIoUring;
  else if (config.engine == "pwrite") options.engine = snap::WriteEngine::kPwrite;
  else return invalid_argument("--engine must be auto, io_uring or pwrite, not '" + config.engine + "'");
  return options;
}

Result<std::unique_ptr<GuestImage>> generate_image(const Config& config, ThreadPool& pool) {
  uint64_t pages = config.size_mib * (1024 * 1024 / kPageSize);
  CKPT_ASSIGN_OR_RETURN(auto image, GuestImage::create(pages));
  Rng rng(mix_seed(config.seed, 0));
  std::vector<ClassRun> runs;
  plan_class_runs(rng, 0, pages, &runs);
  image->fill(runs, config.seed, 0, pool);
  return image;
}

// zstd -1 ratio of the structured pages alone, in 256 KiB frames like the store's blocks, over a sample of up to
// 64 MiB: shows that the "structured" class is as compressible as the issue asks (roughly 3-5x).
double structured_ratio(const GuestImage& image) {
  constexpr size_t kFramePages = 64, kSamplePages = 16384;
  std::vector<uint8_t> frame(kFramePages * kPageSize), out(ZSTD_compressBound(frame.size()));
  size_t raw = 0, packed = 0, in_frame = 0;
  for (uint64_t gfn = 0; gfn < image.pages() && raw < kSamplePages * kPageSize; ++gfn) {
    if (image.page_class(gfn) != PageClass::kStructured) continue;
    std::memcpy(frame.data() + in_frame * kPageSize, image.page(gfn), kPageSize);
    if (++in_frame < kFramePages) continue;
    size_t n = ZSTD_compress(out.data(), out.size(), frame.data(), frame.size(), 1);
    raw += frame.size();
    packed += ZSTD_isError(n) ? frame.size() : n;
    in_frame = 0;
  }
  return packed ? static_cast<double>(raw) / static_cast<double>(packed) : 0;
}

Status write_raw_image(const GuestImage& image, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::from_errno(errno, "create " + path);
  std::span<const uint8_t> bytes = image.memory();
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, std::min<size_t>(bytes.size() - done, 8u << 20));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "write " + path);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync " + path);
  return Status::ok();
}

// Fails loudly unless the file at `path` holds exactly the image's bytes. Reads through a small pre-faulted buffer
// rather than mmap: mapping 2 GiB of page cache would take ~half a million page faults at ~11-15 us each here.
Status verify_file(const std::string& path, const GuestImage& image) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path + " to verify");
  CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(path));
  if (size != image.bytes()) {
    return corruption(path + " is " + std::to_string(size) + " bytes; the image is " + std::to_string(image.bytes()));
  }
  std::vector<uint8_t> chunk(8u << 20);
  for (uint64_t at = 0; at < size;) {
    ssize_t n = ::pread(fd.get(), chunk.data(), std::min<uint64_t>(chunk.size(), size - at), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "read " + path + " at " + std::to_string(at));
    if (std::memcmp(chunk.data(), image.memory().data() + at, static_cast<size_t>(n)) != 0) {
      size_t i = 0;
      while (chunk[i] == image.memory()[at + i]) ++i;
      return corruption(path + " differs from the in-memory image at byte " + std::to_string(at + i) + " (gfn " +
                        std::to_string((at + i) / kPageSize) + ")");
    }
    at += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

// Removes `path` and settles the file system, outside any timed step, so each timed step writes a fresh file.
Status clear_output(const std::string& path, const std::string& dir) {
  CKPT_RETURN_IF_ERROR(remove_tree(path));
  return sync_file_system(dir);
}

// ---------------------------------------------------------------------------------------------------------------
// Base write: zstd CLI against the store

// Returns the total time; `fsync_seconds` receives the part spent making the output durable.
Result<double> time_zstd_compress(const Paths& paths, double* fsync_seconds) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.zst(), paths.dir));
  Stopwatch watch;
  CKPT_RETURN_IF_ERROR(run_command({"zstd", "-1", "-T2", "-q", "-f", paths.raw(), "-o", paths.zst()}));
  double before_sync = watch.seconds();
  // Parity with the store's commit, which ends with fdatasync of the file and fsync of the directory.
  CKPT_RETURN_IF_ERROR(fsync_path(paths.zst()));
  CKPT_RETURN_IF_ERROR(fsync_path(paths.dir));
  double seconds = watch.seconds();
  *fsync_seconds = seconds - before_sync;
  return seconds;
}

// Writes the whole image as the base epoch of a new store in `dir`.
// Writes the whole image as the base epoch of a new store in `dir`. `commit_seconds` receives the time commit() took
// (the last blocks, the index, fdatasync, rename, directory fsync).
Result<std::shared_ptr<const snap::EpochMeta>> write_base(const std::string& dir, const GuestImage& image,
                                                         const StoreOptions& options, std::string* engine,
                                                         double* commit_seconds) {
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(dir, options));
  *engine = std::string(snap::write_engine_name(store->fs().write_engine()));
  CKPT_ASSIGN_OR_RETURN(auto writer, store->begin_base(image.pages()));
  for (uint64_t gfn = 0; gfn < image.pages(); ++gfn) CKPT_RETURN_IF_ERROR(writer->add_page(gfn, image.page(gfn)));
  Stopwatch watch;
  auto committed = writer->commit();
  *commit_seconds = watch.seconds();
  return committed;
}

Result<BaseFigures> measure_base(const Config& config, const Paths& paths, const GuestImage& image,
                                 const StoreOptions& options) {
  BaseFigures figures;
  for (unsigned r = 0; r < config.repeats; ++r) {
    double zstd_fsync = 0, commit = 0;
    CKPT_ASSIGN_OR_RETURN(double zstd_s, time_zstd_compress(paths, &zstd_fsync));
    figures.zstd_seconds.push_back(zstd_s);
    figures.zstd_fsync_seconds.push_back(zstd_fsync);

    if (r > 0) CKPT_RETURN_IF_ERROR(remove_tree(paths.store(r - 1)));  // only the last store is kept
    CKPT_RETURN_IF_ERROR(clear_output(paths.store(r), paths.dir));
    Stopwatch watch;
    CKPT_ASSIGN_OR_RETURN(auto meta, write_base(paths.store(r), image, options, &figures.engine, &commit));
    figures.store_seconds.push_back(watch.seconds());
    figures.store_commit_seconds.push_back(commit);
    figures.stats = meta->stats;
    figures.raw_blocks = 0;
    for (const snap::BlockRef& b : meta->blocks) figures.raw_blocks += b.data_pages > 0 && b.codec == snap::Codec::kRaw;
    std::cout << "  repeat " << r + 1 << ": zstd -1 -T2 " << format_fixed(zstd_s, 3) << " s (fsync "
              << format_fixed(zstd_fsync, 3) << " s), store base " << format_fixed(figures.store_seconds.back(), 3)
              << " s (commit " << format_fixed(commit, 3) << " s)" << std::endl;
  }
  figures.store_dir = paths.store(config.repeats - 1);
  CKPT_ASSIGN_OR_RETURN(figures.zstd_bytes, file_size(paths.zst()));
  CKPT_ASSIGN_OR_RETURN(figures.store_bytes, tree_size(figures.store_dir));
  return figures;
}

// ---------------------------------------------------------------------------------------------------------------
// Deltas

Result<DeltaFigures> write_delta(Store& store, const GuestImage& image, const std::vector<uint64_t>& dirty) {
  DeltaFigures figures;
  figures.dirty_pages = dirty.size();
  Stopwatch watch;
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_delta());
  for (uint64_t gfn : dirty) CKPT_RETURN_IF_ERROR(writer->add_page(gfn, image.page(gfn)));
  double before_commit = watch.seconds();
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  figures.seconds = watch.seconds();
  figures.commit_seconds = figures.seconds - before_commit;
  figures.epoch = meta->header.epoch;
  figures.stats = meta->stats;
  CKPT_ASSIGN_OR_RETURN(figures.file_bytes, file_size(store.catalog().path_of(figures.epoch)));
  return figures;
}

// Dirties a fraction of the image (outside the timing: that is the guest's work) and writes each delta.
Result<std::vector<DeltaFigures>> measure_deltas(const Config& config, const std::string& store_dir,
                                                 GuestImage& image, const StoreOptions& options, ThreadPool& pool) {
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(store_dir, options));
  auto target = static_cast<uint64_t>(static_cast<double>(image.pages()) * config.dirty_fraction + 0.5);
  std::vector<DeltaFigures> all;
  for (unsigned d = 1; d <= config.deltas; ++d) {
    Rng rng(mix_seed(config.seed, d, 0xde17a));
    std::vector<uint64_t> dirty = choose_dirty_pages(rng, image.pages(), target);
    image.fill(plan_rewrite(rng, dirty), config.seed, d, pool);
    CKPT_ASSIGN_OR_RETURN(DeltaFigures figures, write_delta(*store, image, dirty));
    std::cout << "  delta " << figures.epoch << ": " << figures.dirty_pages << " pages in "
              << format_fixed(figures.seconds * 1e3, 1) << " ms (commit " << format_fixed(figures.commit_seconds * 1e3, 1)
              << " ms, "
              << format_rate(static_cast<double>(figures.dirty_pages * kPageSize), figures.seconds) << "), file "
              << format_mib(static_cast<double>(figures.file_bytes)) << std::endl;
    all.push_back(figures);
  }
  return all;
}

// ---------------------------------------------------------------------------------------------------------------
// Restore: zstd -d against restore_to_file of the newest epoch

Result<double> time_zstd_decompress(const Paths& paths, uint64_t expected_bytes) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.zstd_out(), paths.dir));
  Stopwatch watch;
  CKPT_RETURN_IF_ERROR(run_command({"zstd", "-d", "-q", "-f", paths.zst(), "-o", paths.zstd_out()}));
  CKPT_RETURN_IF_ERROR(fsync_path(paths.zstd_out()));  // restore_to_file fsyncs its output too
  double seconds = watch.seconds();
  CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(paths.zstd_out()));
  if (size != expected_bytes) return corruption("zstd -d wrote " + std::to_string(size) + " bytes, expected " +
                                                std::to_string(expected_bytes));
  return seconds;
}

// Times what an offline restore does: load the catalog, then restore the newest epoch to a file.
Result<double> time_store_restore(const Paths& paths, const std::string& store_dir, RestoreFigures* figures) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.restored(), paths.dir));
  Stopwatch watch;
  auto fs = snap::make_posix_file_system();
  CKPT_ASSIGN_OR_RETURN(Catalog catalog, Catalog::load(*fs, store_dir));
  if (!catalog.newest()) return not_found("store " + store_dir + " has no epoch to restore");
  figures->epoch = *catalog.newest();
  CKPT_ASSIGN_OR_RETURN(figures->stats, snap::restore_to_file(*fs, catalog, figures->epoch, paths.restored()));
  return watch.seconds();
}

Result<RestoreFigures> measure_restore(const Config& config, const Paths& paths, const std::string& store_dir,
                                       const GuestImage& image) {
  RestoreFigures figures;
  for (unsigned r = 0; r < config.repeats; ++r) {
    CKPT_ASSIGN_OR_RETURN(double zstd_s, time_zstd_decompress(paths, image.bytes()));
    figures.zstd_seconds.push_back(zstd_s);
    CKPT_ASSIGN_OR_RETURN(double store_s, time_store_restore(paths, store_dir, &figures));
    figures.store_seconds.push_back(store_s);
    Status verified = verify_file(paths.restored(), image);
    if (!verified.is_ok()) return verified.with_context("restored epoch " + std::to_string(figures.epoch) +
                                                        " is NOT bit-exact");
    std::cout << "  repeat " << r + 1 << ": zstd -d " << format_fixed(zstd_s, 3) << " s, store restore "
              << format_fixed(store_s, 3) << " s (bit-exact)" << std::endl;
  }
  return figures;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

std::string list_seconds(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ", ") + format_fixed(v, 3);
  return out + " s";
}

std::string verdict(bool met) { return met ? "**met**" : "**MISSED**"; }

void print_goals(std::ostream& out, const GuestImage& image, const BaseFigures& base, const RestoreFigures& restore,
                 unsigned deltas) {
  auto bytes = static_cast<double>(image.bytes());
  double zstd_w = median(base.zstd_seconds), store_w = median(base.store_seconds);
  double zstd_r = median(restore.zstd_seconds), store_r = median(restore.store_seconds);
  double write_ratio = zstd_w / store_w, restore_ratio = zstd_r / store_r;
  double size_ratio = static_cast<double>(base.store_bytes) / static_cast<double>(base.zstd_bytes);
  out << "| measure (median of " << base.zstd_seconds.size() << ") | ckptd store | zstd CLI | store vs zstd | goal | |\n"
      << "|---|---|---|---|---|---|\n"
      << "| base write, durable | " << format_fixed(store_w, 3) << " s = " << format_rate(bytes, store_w) << " | "
      << format_fixed(zstd_w, 3) << " s = " << format_rate(bytes, zstd_w) << " | " << format_fixed(write_ratio, 2)
      << "x throughput | >= 1.5x | " << verdict(write_ratio >= 1.5) << " |\n"
      << "| base output size | " << format_mib(static_cast<double>(base.store_bytes)) << " | "
      << format_mib(static_cast<double>(base.zstd_bytes)) << " | " << format_fixed(size_ratio, 3) << "x size | <= 1.05x | "
      << verdict(size_ratio <= 1.05) << " |\n"
      << "| restore newest epoch (base + " << deltas << " deltas), durable | " << format_fixed(store_r, 3) << " s = "
      << format_rate(bytes, store_r) << " | " << format_fixed(zstd_r, 3) << " s = " << format_rate(bytes, zstd_r)
      << " | " << format_fixed(restore_ratio, 2) << "x throughput | >= 1.0x | " << verdict(restore_ratio >= 1.0)
      << " |\n\n"
      << "All runs: zstd -1 -T2 " << list_seconds(base.zstd_seconds) << "; store base "
      << list_seconds(base.store_seconds) << "; zstd -d " << list_seconds(restore.zstd_seconds)
      << "; store restore " << list_seconds(restore.store_seconds) << ".\n\n";
}

void print_deltas(std::ostream& out, const std::vector<DeltaFigures>& deltas) {
  if (deltas.empty()) return;
  out << "| delta epoch | dirty pages | zero pages | time | throughput | epoch file | stored / raw |\n"
      << "|---|---|---|---|---|---|---|\n";
  std::vector<double> seconds;
  for (const DeltaFigures& d : deltas) {
    double raw = static_cast<double>(d.dirty_pages * kPageSize);
    out << "| " << d.epoch << " | " << d.dirty_pages << " | " << d.stats.zero_pages << " | "
        << format_fixed(d.seconds * 1e3, 1) << " ms | " << format_rate(raw, d.seconds) << " | "
        << format_mib(static_cast<double>(d.file_bytes)) << " | "
        << format_fixed(static_cast<double>(d.file_bytes) / raw, 3) << " |\n";
    seconds.push_back(d.seconds);
  }
  double med = median(seconds);
  out << "\nDeltas: median " << format_fixed(med * 1e3, 1) << " ms = "
      << format_rate(static_cast<double>(deltas.front().dirty_pages * kPageSize), med) << " of dirty pages.\n\n";
}

void print_report(const Config& config, const std::string& dir, const GuestImage& image, double structured,
                  const BaseFigures& base, const std::vector<DeltaFigures>& deltas, const RestoreFigures& restore) {
  MachineInfo m = describe_machine(dir);
  std::vector<double> classes = image.class_fractions();
  std::ostringstream out;
  out << "## store_bench results\n\n"
      << "Machine: " << m.cpus << " CPUs (" << m.cpu_model << "), " << m.kernel << ", bench dir on " << m.file_system
      << ", " << m.zstd_version << ".\n"
      << "Store: " << base.engine << " writes, zstd level 1 in blocks of up to 64 data pages, one compression "
      << "worker per CPU.\n"
      << "Image: " << config.size_mib << " MiB (" << image.pages() << " pages), seed " << config.seed << "; newest "
      << "epoch " << format_fixed(100 * classes[0], 1) << "% zero / " << format_fixed(100 * classes[1], 1)
      << "% structured / " << format_fixed(100 * classes[2], 1) << "% random pages; structured pages compress "
      << format_fixed(structured, 2) << "x with zstd -1 in 256 KiB frames.\n"
      << "Base epoch: " << base.stats.data_pages << " data pages, " << base.stats.zero_pages << " zero pages, "
      << base.stats.block_count << " blocks (" << base.raw_blocks << " stored raw).\n"
      << "Restore: " << restore.stats.epochs_in_chain << " epochs in the chain, " << restore.stats.blocks_read
      << " blocks read, " << format_mib(static_cast<double>(restore.stats.bytes_read)) << " stored bytes read; "
      << "output verified bit-exact against the in-memory image.\n\n";
  print_goals(out, image, base, restore, config.deltas);
  print_deltas(out, deltas);
  std::cout << "\n" << out.str() << std::flush;
}

// ---------------------------------------------------------------------------------------------------------------

Status run(const Config& config) {
  CKPT_ASSIGN_OR_RETURN(StoreOptions options, store_options(config));
  CKPT_ASSIGN_OR_RETURN(std::string dir, make_bench_dir(config));
  Paths paths{dir};
  std::cout << "bench directory: " << dir << std::endl;
  ThreadPool pool(0);

  Stopwatch watch;
  CKPT_ASSIGN_OR_RETURN(auto image, generate_image(config, pool));
  std::vector<double> classes = image->class_fractions();
  double structured = structured_ratio(*image);
  std::cout << "image: " << image->pages() << " pages generated in " << format_fixed(watch.seconds(), 2)
            << " s: zero " << format_fixed(100 * classes[0], 1) << "%, structured " << format_fixed(100 * classes[1], 1)
            << "%, random " << format_fixed(100 * classes[2], 1) << "%; structured pages zstd -1 ratio "
            << format_fixed(structured, 2) << std::endl;
  CKPT_RETURN_IF_ERROR(write_raw_image(*image, paths.raw()));

  std::cout << "base write (" << config.repeats << " alternating repeats):" << std::endl;
  CKPT_ASSIGN_OR_RETURN(BaseFigures base, measure_base(config, paths, *image, options));
  CKPT_RETURN_IF_ERROR(remove_tree(paths.raw()));  // only raw.img.zst is needed from here on
  std::cout << config.deltas << " deltas of " << format_fixed(100 * config.dirty_fraction, 1) << "% dirty pages:"
            << std::endl;
  CKPT_ASSIGN_OR_RETURN(auto deltas, measure_deltas(config, base.store_dir, *image, options, pool));
  std::cout << "restore of the newest epoch (" << config.repeats << " alternating repeats):" << std::endl;
  CKPT_ASSIGN_OR_RETURN(RestoreFigures restore, measure_restore(config, paths, base.store_dir, *image));

  print_report(config, dir, *image, structured, base, deltas, restore);
  if (config.keep) {
    std::cout << "\nkept " << dir << std::endl;
    return Status::ok();
  }
  if (!config.dir.empty()) {
    for (const std::string& p : {paths.zst(), paths.zstd_out(), paths.restored(), base.store_dir}) {
      CKPT_RETURN_IF_ERROR(remove_tree(p));
    }
    return Status::ok();
  }
  return remove_tree(dir);
}

}  // namespace
}  // namespace ckpt::bench

int main(int argc, char** argv) {
  ckpt::bench::Config config;
  CLI::App app{"ckptd store benchmark: base + deltas + restore against the zstd CLI (see bench/README.md)"};
  app.add_option("--size-mib", config.size_mib, "guest image size in MiB")->capture_default_str()->check(
      CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  app.add_option("--deltas", config.deltas, "delta epochs after the base")->capture_default_str();
  app.add_option("--dirty-fraction", config.dirty_fraction, "fraction of pages each delta dirties")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--dir", config.dir, "bench directory (default: a fresh one under /var/tmp)");
  app.add_option("--seed", config.seed, "seed of the synthetic image")->capture_default_str();
  app.add_option("--repeats", config.repeats, "alternating repeats of each timed comparison")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100u));
  app.add_option("--engine", config.engine, "store write engine: auto, io_uring or pwrite")->capture_default_str();
  app.add_flag("--keep", config.keep, "keep the bench directory and its files");
  CLI11_PARSE(app, argc, argv);

  ckpt::set_log_level(ckpt::LogLevel::kWarn);
  ckpt::Status s = ckpt::bench::run(config);
  if (!s.is_ok()) {
    std::cerr << "store_bench FAILED: " << s.to_string() << std::endl;
    return 1;
  }
  return 0;
}
