// store_bench: the store benchmark of the project's issue. A synthetic guest image (about 25% zero, 50% structured,
// 25% random pages) is written as a base epoch plus a chain of deltas, and in the same run compared with the zstd
// CLI on the same raw image:
//   base write   store: Store::open + begin_base + add_page for every gfn + commit (fdatasync, rename, dir fsync)
//                zstd:  `zstd -1 -T2 -q -f raw.img -o raw.img.zst`, then fsync of the output and the directory
//   output size  the base's store directory against raw.img.zst
//   restore      store: Catalog::load + restore_to_file of the newest epoch (which fsyncs), checked bit-exact
//                zstd:  `zstd -d -q -f raw.img.zst -o zstd-out.img`, then fsync of the output
// Timed steps alternate (zstd, store, zstd, store, ...) and medians are compared. Both sides read warm inputs: the
// store its in-memory image or its epoch files, zstd its input file, re-read into the page cache before each step;
// nothing drops caches. Each comparison starts with an untimed warm-up round: on these VMs the first touch of guest
// memory the kernel has not used before is expensive, so whichever side first fills page cache with 2 GiB of output
// would otherwise pay several extra seconds (seen: 12 CPU-s for a restore that takes 4 CPU-s once warm).
// The report ends with a markdown section for bench/README.md.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/figures.h"
#include "bench/memory_images.h"
#include "bench/perf_window.h"
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

// Where each artefact lives inside the bench directory.
struct Paths {
  std::string dir;
  std::string raw() const { return dir + "/raw.img"; }
  std::string zst() const { return dir + "/raw.img.zst"; }
  std::string zstd_out() const { return dir + "/zstd-out.img"; }
  std::string restored() const { return dir + "/restored.img"; }
  std::string store(unsigned repeat) const { return dir + "/store-" + std::to_string(repeat); }
};

// Times one step: wall clock, CPU of this process and its children, and other load on the machine (into `cpu`).
class StepTimer {
 public:
  explicit StepTimer(CpuWatch& cpu) : cpu_(cpu) { cpu_.start(); }
  double elapsed() const { return watch_.seconds(); }
  Step finish(double tail_seconds = 0) {
    Step step{watch_.seconds(), 0, tail_seconds};
    step.cpu_seconds = cpu_.stop();
    return step;
  }

 private:
  CpuWatch& cpu_;
  Stopwatch watch_;
};

// ---------------------------------------------------------------------------------------------------------------
// Setup

Result<StoreOptions> store_options(const Config& config) {
  StoreOptions options;
  if (config.engine == "auto") options.engine = snap::WriteEngine::kAuto;
  else if (config.engine == "io_uring") options.engine = snap::WriteEngine::kIoUring;
  else if (config.engine == "pwrite") options.engine = snap::WriteEngine::kPwrite;
  else return invalid_argument("--engine must be auto, io_uring or pwrite, not '" + config.engine + "'");
  options.compression_level = config.level;
  return options;
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

Result<std::unique_ptr<GuestImage>> prepare_image(const Config& config, const Paths& paths, ThreadPool& pool,
                                                  Results* results) {
  Stopwatch watch;
  std::unique_ptr<GuestImage> image;
  if (!config.images.empty()) {
    CKPT_ASSIGN_OR_RETURN(results->image_files, list_memory_images(config.images));
    CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(results->image_files.front()));
    CKPT_ASSIGN_OR_RETURN(image, GuestImage::create(size / kPageSize));
    CKPT_RETURN_IF_ERROR(image->load(results->image_files.front(), nullptr));
    results->image_pages = image->pages();
    std::cout << "image: " << results->image_files.front() << ", " << image->pages() << " pages loaded in "
              << format_fixed(watch.seconds(), 2) << " s: zero " << format_fixed(100 * image->class_fractions()[0], 1)
              << "%; " << results->image_files.size() - 1 << " more images give the deltas" << std::endl;
  } else {
    uint64_t pages = config.size_mib * (1024 * 1024 / kPageSize);
    CKPT_ASSIGN_OR_RETURN(image, GuestImage::create(pages));
    Rng rng(mix_seed(config.seed, 0));
    std::vector<ClassRun> runs;
    plan_class_runs(rng, 0, pages, &runs);
    image->fill(runs, config.seed, 0, pool);
    std::vector<double> classes = image->class_fractions();
    results->image_pages = pages;
    results->structured_ratio = structured_ratio(*image);
    std::cout << "image: " << pages << " pages generated in " << format_fixed(watch.seconds(), 2) << " s: zero "
              << format_fixed(100 * classes[0], 1) << "%, structured " << format_fixed(100 * classes[1], 1)
              << "%, random " << format_fixed(100 * classes[2], 1) << "%; structured pages zstd -1 ratio "
              << format_fixed(results->structured_ratio, 2) << std::endl;
  }
  CKPT_RETURN_IF_ERROR(write_raw_image(*image, paths.raw()));
  return image;
}

// Fails loudly unless the file at `path` holds exactly the image's bytes. Reads through a small reused buffer
// rather than mmap: mapping 2 GiB of page cache costs half a million page faults at ~11-15 us each here.
Status verify_file(const std::string& path, const GuestImage& image) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path + " to verify");
  CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(path));
  if (size != image.bytes()) {
    return corruption(path + " is " + std::to_string(size) + " bytes; the image is " + std::to_string(image.bytes()));
  }
  static std::vector<uint8_t> chunk(8u << 20);
  std::span<const uint8_t> expected = image.memory();
  for (uint64_t at = 0; at < size;) {
    ssize_t n = ::pread(fd.get(), chunk.data(), std::min<uint64_t>(chunk.size(), size - at), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "read " + path + " at " + std::to_string(at));
    if (std::memcmp(chunk.data(), expected.data() + at, static_cast<size_t>(n)) != 0) {
      size_t i = 0;
      while (chunk[i] == expected[at + i]) ++i;
      return corruption(path + " differs from the in-memory image at byte " + std::to_string(at + i) + " (gfn " +
                        std::to_string((at + i) / kPageSize) + ")");
    }
    at += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

// Removes `path` and settles the file system, outside any timed step, so that each timed step writes a fresh file
// and no writeback or discard left by an earlier step lands inside it.
Status clear_output(const std::string& path, const std::string& dir) {
  CKPT_RETURN_IF_ERROR(remove_tree(path));
  return sync_file_system(dir);
}

// ---------------------------------------------------------------------------------------------------------------
// Base write: zstd CLI against the store

Result<Step> time_zstd_compress(const Paths& paths, CpuWatch& cpu) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.zst(), paths.dir));
  CKPT_RETURN_IF_ERROR(warm_page_cache(paths.raw()));
  PerfWindow profiled("base");
  StepTimer timer(cpu);
  CKPT_RETURN_IF_ERROR(run_command({"zstd", "-1", "-T2", "-q", "-f", paths.raw(), "-o", paths.zst()}));
  double before_sync = timer.elapsed();
  // Parity with the store's commit, which ends with fdatasync of the file and fsync of the directory.
  CKPT_RETURN_IF_ERROR(fsync_path(paths.zst()));
  CKPT_RETURN_IF_ERROR(fsync_path(paths.dir));
  return timer.finish(timer.elapsed() - before_sync);
}

// Writes the whole image as the base epoch of a new store in `dir`.
Result<Step> time_store_base(const std::string& dir, const GuestImage& image, const StoreOptions& options,
                             CpuWatch& cpu, BaseFigures* figures) {
  PerfWindow profiled("base");
  StepTimer timer(cpu);
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(dir, options));
  CKPT_ASSIGN_OR_RETURN(auto writer, store->begin_base(image.pages()));
  for (uint64_t gfn = 0; gfn < image.pages(); ++gfn) CKPT_RETURN_IF_ERROR(writer->add_page(gfn, image.page(gfn)));
  double before_commit = timer.elapsed();
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  Step step = timer.finish(timer.elapsed() - before_commit);
  figures->engine = std::string(snap::write_engine_name(store->fs().write_engine()));
  figures->stats = meta->stats;
  figures->raw_blocks = 0;
  for (const snap::BlockRef& b : meta->blocks) figures->raw_blocks += b.data_pages > 0 && b.codec == snap::Codec::kRaw;
  return step;
}

Result<BaseFigures> measure_base(const Config& config, const Paths& paths, const GuestImage& image,
                                 const StoreOptions& options, CpuWatch& cpu) {
  BaseFigures figures;
  CpuWatch warmup_cpu;  // warm-up rounds count nowhere
  unsigned rounds = config.warmup + config.repeats;
  for (unsigned r = 0; r < rounds; ++r) {
    bool timed = r >= config.warmup;
    CpuWatch& watch = timed ? cpu : warmup_cpu;
    CKPT_ASSIGN_OR_RETURN(Step zstd, time_zstd_compress(paths, watch));
    if (r > 0) CKPT_RETURN_IF_ERROR(remove_tree(paths.store(r - 1)));  // only the last store is kept
    CKPT_RETURN_IF_ERROR(clear_output(paths.store(r), paths.dir));
    CKPT_ASSIGN_OR_RETURN(Step store, time_store_base(paths.store(r), image, options, watch, &figures));
    if (timed) {
      figures.zstd.push_back(zstd);
      figures.store.push_back(store);
    }
    std::cout << "  " << (timed ? "repeat " + std::to_string(r - config.warmup + 1) : std::string("warm-up"))
              << ": zstd -1 -T2 " << format_fixed(zstd.seconds, 3) << " s (fsync " << format_fixed(zstd.tail_seconds, 3)
              << " s), store base " << format_fixed(store.seconds, 3) << " s (commit "
              << format_fixed(store.tail_seconds, 3) << " s)" << std::endl;
  }
  figures.store_dir = paths.store(rounds - 1);
  CKPT_ASSIGN_OR_RETURN(figures.zstd_bytes, file_size(paths.zst()));
  CKPT_ASSIGN_OR_RETURN(figures.store_bytes, tree_size(figures.store_dir));
  return figures;
}

// ---------------------------------------------------------------------------------------------------------------
// Deltas

Result<DeltaFigures> write_delta(Store& store, const GuestImage& image, const std::vector<uint64_t>& dirty,
                                 CpuWatch& cpu) {
  DeltaFigures figures;
  figures.dirty_pages = dirty.size();
  StepTimer timer(cpu);
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_delta());
  for (uint64_t gfn : dirty) CKPT_RETURN_IF_ERROR(writer->add_page(gfn, image.page(gfn)));
  double before_commit = timer.elapsed();
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  figures.step = timer.finish(timer.elapsed() - before_commit);
  figures.epoch = meta->header.epoch;
  figures.stats = meta->stats;
  CKPT_ASSIGN_OR_RETURN(figures.file_bytes, file_size(store.catalog_snapshot().path_of(figures.epoch)));
  return figures;
}

// Makes each delta's dirty set outside the timing (that is the guest's work): the next captured image's changed
// pages, or a fraction of the synthetic image rewritten. Then writes the delta.
Result<std::vector<DeltaFigures>> measure_deltas(const Config& config, const Results& results,
                                                 GuestImage& image, const StoreOptions& options, ThreadPool& pool,
                                                 CpuWatch& cpu) {
  CKPT_ASSIGN_OR_RETURN(auto store, Store::open(results.base.store_dir, options));
  auto target = static_cast<uint64_t>(static_cast<double>(image.pages()) * config.dirty_fraction + 0.5);
  size_t deltas = results.image_files.empty() ? config.deltas : results.image_files.size() - 1;
  std::vector<DeltaFigures> all;
  for (unsigned d = 1; d <= deltas; ++d) {
    std::vector<uint64_t> dirty;
    if (!results.image_files.empty()) {
      CKPT_RETURN_IF_ERROR(image.load(results.image_files[d], &dirty));
    } else {
      Rng rng(mix_seed(config.seed, d, 0xde17a));
      dirty = choose_dirty_pages(rng, image.pages(), target);
      image.fill(plan_rewrite(rng, dirty), config.seed, d, pool);
    }
    CKPT_ASSIGN_OR_RETURN(DeltaFigures figures, write_delta(*store, image, dirty, cpu));
    std::cout << "  delta " << figures.epoch << ": " << figures.dirty_pages << " pages in "
              << format_fixed(figures.step.seconds * 1e3, 1) << " ms (commit "
              << format_fixed(figures.step.tail_seconds * 1e3, 1) << " ms, "
              << format_rate(static_cast<double>(figures.dirty_pages * kPageSize), figures.step.seconds) << "), file "
              << format_mib(static_cast<double>(figures.file_bytes)) << std::endl;
    all.push_back(figures);
  }
  return all;
}

// ---------------------------------------------------------------------------------------------------------------
// Restore: zstd -d against restore_to_file of the newest epoch

Result<Step> time_zstd_decompress(const Paths& paths, uint64_t expected_bytes, CpuWatch& cpu) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.zstd_out(), paths.dir));
  CKPT_RETURN_IF_ERROR(warm_page_cache(paths.zst()));
  PerfWindow profiled("restore");
  StepTimer timer(cpu);
  CKPT_RETURN_IF_ERROR(run_command({"zstd", "-d", "-q", "-f", paths.zst(), "-o", paths.zstd_out()}));
  double before_sync = timer.elapsed();
  CKPT_RETURN_IF_ERROR(fsync_path(paths.zstd_out()));  // restore_to_file fsyncs its output too
  Step step = timer.finish(timer.elapsed() - before_sync);
  CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(paths.zstd_out()));
  if (size != expected_bytes) {
    return corruption("zstd -d wrote " + std::to_string(size) + " bytes, expected " + std::to_string(expected_bytes));
  }
  return step;
}

// Times what an offline restore does: load the catalog, then restore the newest epoch to a file.
Result<Step> time_store_restore(const Paths& paths, const std::string& store_dir, CpuWatch& cpu,
                                RestoreFigures* figures) {
  CKPT_RETURN_IF_ERROR(clear_output(paths.restored(), paths.dir));
  CKPT_RETURN_IF_ERROR(warm_page_cache(store_dir));
  PerfWindow profiled("restore");
  StepTimer timer(cpu);
  auto fs = snap::make_posix_file_system();
  CKPT_ASSIGN_OR_RETURN(Catalog catalog, Catalog::load(*fs, store_dir));
  if (!catalog.newest()) return not_found("store " + store_dir + " has no epoch to restore");
  figures->epoch = *catalog.newest();
  CKPT_ASSIGN_OR_RETURN(figures->stats, snap::restore_to_file(*fs, catalog, figures->epoch, paths.restored()));
  return timer.finish(figures->stats.sync_seconds);
}

Result<RestoreFigures> measure_restore(const Config& config, const Paths& paths, const std::string& store_dir,
                                       const GuestImage& image, CpuWatch& cpu) {
  RestoreFigures figures;
  CpuWatch warmup_cpu;
  for (unsigned r = 0; r < config.warmup + config.repeats; ++r) {
    bool timed = r >= config.warmup;
    CpuWatch& watch = timed ? cpu : warmup_cpu;
    CKPT_ASSIGN_OR_RETURN(Step zstd, time_zstd_decompress(paths, image.bytes(), watch));
    CKPT_ASSIGN_OR_RETURN(Step store, time_store_restore(paths, store_dir, watch, &figures));
    Status verified = verify_file(paths.restored(), image);
    if (!verified.is_ok()) {
      return verified.with_context("restored epoch " + std::to_string(figures.epoch) + " is NOT bit-exact");
    }
    if (timed) {
      figures.zstd.push_back(zstd);
      figures.store.push_back(store);
    }
    std::cout << "  " << (timed ? "repeat " + std::to_string(r - config.warmup + 1) : std::string("warm-up"))
              << ": zstd -d " << format_fixed(zstd.seconds, 3) << " s (fsync " << format_fixed(zstd.tail_seconds, 3)
              << " s), store restore " << format_fixed(store.seconds, 3) << " s (fsync "
              << format_fixed(store.tail_seconds, 3) << " s; bit-exact)" << std::endl;
  }
  return figures;
}

// ---------------------------------------------------------------------------------------------------------------

Status clean_up(const Config& config, const Paths& paths, const Results& results) {
  if (config.keep) {
    std::cout << "\nkept " << paths.dir << std::endl;
    return Status::ok();
  }
  if (config.dir.empty()) return remove_tree(paths.dir);  // ours entirely
  for (const std::string& p : {paths.raw(), paths.zst(), paths.zstd_out(), paths.restored(), results.base.store_dir}) {
    CKPT_RETURN_IF_ERROR(remove_tree(p));
  }
  return Status::ok();
}

Status run(const Config& config) {
  CKPT_ASSIGN_OR_RETURN(StoreOptions options, store_options(config));
  Results results;
  CKPT_ASSIGN_OR_RETURN(results.dir, make_bench_dir(config.dir, "store_bench"));
  Paths paths{results.dir};
  std::cout << "bench directory: " << paths.dir << std::endl;
  ThreadPool pool(0);
  CKPT_ASSIGN_OR_RETURN(auto image, prepare_image(config, paths, pool, &results));

  std::cout << "base write (" << config.warmup << " warm-up + " << config.repeats << " alternating repeats):"
            << std::endl;
  CKPT_ASSIGN_OR_RETURN(results.base, measure_base(config, paths, *image, options, results.base_cpu));
  if (results.image_files.empty()) {
    std::cout << config.deltas << " deltas of " << format_fixed(100 * config.dirty_fraction, 1) << "% dirty pages:"
              << std::endl;
  } else {
    std::cout << results.image_files.size() - 1 << " deltas, the pages each next image changed:" << std::endl;
  }
  CKPT_ASSIGN_OR_RETURN(results.deltas, measure_deltas(config, results, *image, options, pool, results.delta_cpu));
  std::cout << "restore of the newest epoch (" << config.warmup << " warm-up + " << config.repeats
            << " alternating repeats):" << std::endl;
  CKPT_ASSIGN_OR_RETURN(results.restore,
                        measure_restore(config, paths, results.base.store_dir, *image, results.restore_cpu));

  results.class_fractions = image->class_fractions();
  print_report(config, results);
  return clean_up(config, paths, results);
}

}  // namespace
}  // namespace ckpt::bench

int main(int argc, char** argv) {
  ckpt::bench::Config config;
  CLI::App app{"ckptd store benchmark: base + deltas + restore against the zstd CLI (see bench/README.md)"};
  app.add_option("--size-mib", config.size_mib, "guest image size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  app.add_option("--deltas", config.deltas, "delta epochs after the base")->capture_default_str();
  app.add_option("--dirty-fraction", config.dirty_fraction, "fraction of pages each delta dirties")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--dir", config.dir, "bench directory (default: a fresh one under /var/tmp, removed at the end)");
  app.add_option("--seed", config.seed, "seed of the synthetic image")->capture_default_str();
  app.add_option("--repeats", config.repeats, "alternating repeats of each timed comparison")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100u));
  app.add_option("--warmup", config.warmup, "untimed rounds of each comparison before the repeats")
      ->capture_default_str()
      ->check(CLI::Range(0u, 10u));
  app.add_option("--engine", config.engine, "store write engine: auto, io_uring or pwrite")->capture_default_str();
  app.add_option("--level", config.level, "the store's zstd level (the zstd CLI runs -1 regardless)")
      ->capture_default_str();
  app.add_flag("--keep", config.keep, "keep the bench directory and its files");
  app.add_option("--images", config.images,
                 "directory of raw memory images (*.img, name order; bench/linux_guest_images.sh): the first is "
                 "the base, each next one a delta of the pages it changed; replaces the synthetic image")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);

  ckpt::set_log_level(ckpt::LogLevel::kWarn);
  return ckpt::bench::exit_status("store_bench", ckpt::bench::run(config));
}
