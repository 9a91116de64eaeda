// restore_bench: how soon a restored guest runs, lazy against eager, on the software backend (the restore path of
// `ckptd --resume` and a live `ckpt restore`: daemon::rebuild_machine, then Machine::start). For each guest size a
// store is made of the built-in guest (hot set or random writer, one page per iteration) with synthetic memory
// behind it (store_bench's image: ~25% zero, 50% structured, 25% random pages) as a base plus deltas, then alternately:
//   eager           every page decoded into guest memory, then the guest starts
//   lazy            the guest starts once its state is loaded; pages come on first access and from the filler;
//                   the store's working-set record removed first (no prefetch)
//   lazy+prefetch   the same, with the record the run before wrote (the guest restarts from the same registers, so
//                   it reaches for the same pages: the case record-and-prefetch is for)
// and reports the medians of:
//   first write     restore request -> the guest's first completed iteration (its first page write, then its
//                   status slot), polled every ~20 us
//   resident        restore request -> every page in (eager: before the guest runs)
//   faults          first accesses that waited for a block to be read, in the first second and in all
//   progress        the guest's iterations in its first second, against a guest that was never restored: eager,
//                   then every page mapped (MADV_POPULATE_WRITE) before it starts, as in a VM that ran a while
//                   (after a restore, eager or lazy, each first touch of a page still maps it)
//   phases          where request -> state loaded goes (daemon::BuiltVm::Phases), and the block reads the guest
//                   waited for before its first write
// The poll of the status slot sleeps ~20 us at a time: on a busy machine the first write is seen late (several
// iterations after it happened), which inflates that column alone. Store files are warm in the page cache (written
// just before). Not a test: nothing in ctest runs it.
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/debug_log.h"
#include "bench/guest_view.h"
#include "bench/synthetic_image.h"
#include "common/log.h"
#include "common/thread_pool.h"
#include "daemon/vm_builder.h"
#include "snapshot/catalog.h"
#include "snapshot/store.h"
#include "snapshot/working_set.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::bench {
namespace {

struct Config {
  std::vector<uint64_t> sizes_mib = {256, 1024, 4096};
  unsigned repeats = 5;
  unsigned deltas = 5;
  double dirty_fraction = 0.05;
  double window_s = 1.0;
  uint64_t seed = 42;
  std::string workload = "hot-set";
  std::string dir;
  bool keep = false;
};

enum class Mode { kRunning, kEager, kLazy, kLazyPrefetch };
constexpr Mode kModes[] = {Mode::kRunning, Mode::kEager, Mode::kLazy, Mode::kLazyPrefetch};
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kRunning: return "never restored";
    case Mode::kEager: return "eager";
    case Mode::kLazy: return "lazy";
    case Mode::kLazyPrefetch: return "lazy+prefetch";
  }
  return "?";
}

struct Sample {
  double rebuilt_ms = 0, first_write_ms = 0, resident_s = 0;
  double catalog_ms = 0, memory_ms = 0, machine_ms = 0, state_ms = 0;  // rebuild_machine's phases (BuiltVm::Phases)
  uint64_t fault_reads_window = 0, fault_reads = 0, prefetch_blocks = 0, iterations_window = 0;
  uint64_t fault_reads_first_write = 0;  // block reads the guest waited for before its first write
};

daemon::DaemonConfig daemon_config(uint64_t size_mib, const std::string& store, bool hot_set) {
  daemon::DaemonConfig dc;
  dc.backend = vmm::Backend::kSoftware;
  dc.machine.memory_bytes = size_mib << 20;
  dc.machine.vcpus = 1;
  dc.machine.workload.kind = hot_set ? vmm::guest::WorkloadKind::kHotSet : vmm::guest::WorkloadKind::kRandomWriter;
  dc.machine.workload.hot_pages = (size_mib << 20) / kPageSize / 64;  // 1/64 of memory takes 15 of 16 writes
  dc.machine.workload.writes_per_iteration = 1;
  dc.machine.workload.delay_loops = 0;
  dc.store_dir = store;
  return dc;
}

// The store: the fresh built-in guest's first MiB (code, page tables, control blocks) and its state, synthetic pages
// above it, made 256 MiB at a time so that a 16 GiB guest never needs 16 GiB of image; then the deltas.
Result<uint64_t> make_store(const Config& config, const daemon::DaemonConfig& dc, ThreadPool& pool) {
  CKPT_ASSIGN_OR_RETURN(daemon::BuiltVm fresh, daemon::create_fresh_machine(dc));
  CKPT_ASSIGN_OR_RETURN(std::vector<vmm::StateBlob> state, fresh.machine->save_state());
  const uint64_t pages = dc.machine.memory_bytes / kPageSize, low = vmm::guest::kWorkloadGpa / kPageSize;
  std::vector<uint8_t> low_pages(fresh.machine->host_memory().begin(),
                                 fresh.machine->host_memory().begin() + static_cast<long>(low * kPageSize));
  fresh.machine.reset();
  CKPT_ASSIGN_OR_RETURN(auto store, snap::Store::open(dc.store_dir));
  auto add_state = [&](snap::EpochWriter& w) -> Status {
    for (const vmm::StateBlob& blob : state) CKPT_RETURN_IF_ERROR(w.add_state(blob.name, blob.data));
    return Status::ok();
  };
  constexpr uint64_t kChunk = 65536;  // pages: 256 MiB
  CKPT_ASSIGN_OR_RETURN(auto image, GuestImage::create(kChunk));
  Rng rng(config.seed);
  {
    CKPT_ASSIGN_OR_RETURN(auto base, store->begin_base(pages));
    for (uint64_t first = 0; first < pages; first += kChunk) {
      const uint64_t n = std::min(kChunk, pages - first);
      std::vector<ClassRun> runs;
      plan_class_runs(rng, 0, n, &runs);
      image->fill(runs, config.seed, first / kChunk, pool);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t gfn = first + i;
        const uint8_t* page = gfn < low ? low_pages.data() + gfn * kPageSize : image->page(i);
        if (gfn >= low && image->page_class(i) == PageClass::kZero) {
          CKPT_RETURN_IF_ERROR(base->add_zero_pages(gfn, 1));
        } else {
          CKPT_RETURN_IF_ERROR(base->add_page(gfn, page));
        }
      }
    }
    CKPT_RETURN_IF_ERROR(add_state(*base));
    CKPT_RETURN_IF_ERROR(base->commit().status());
  }
  for (unsigned d = 0; d < config.deltas; ++d) {
    std::vector<uint64_t> dirty = choose_dirty_pages(rng, pages - low, static_cast<uint64_t>(
                                                                          config.dirty_fraction * (pages - low)));
    std::vector<ClassRun> runs;
    plan_class_runs(rng, 0, kChunk, &runs);
    image->fill(runs, config.seed, 1000 + d, pool);
    CKPT_ASSIGN_OR_RETURN(auto delta, store->begin_delta());
    for (size_t i = 0; i < dirty.size(); ++i) {
      CKPT_RETURN_IF_ERROR(delta->add_page(low + dirty[i], image->page(i % kChunk)));
    }
    CKPT_RETURN_IF_ERROR(add_state(*delta));
    CKPT_RETURN_IF_ERROR(delta->commit().status());
  }
  return *store->newest();
}

void sleep_us(long us) {
  timespec ts{0, us * 1000};
  ::nanosleep(&ts, nullptr);
}

Result<Sample> restore_once(const daemon::DaemonConfig& dc, uint64_t epoch, Mode mode, double window_s) {
  const std::string record = dc.store_dir + "/" + snap::kWorkingSetName;
  if (mode == Mode::kLazy) ::unlink(record.c_str());
  std::unique_ptr<snap::FileSystem> fs = snap::make_posix_file_system();
  Sample s;
  Stopwatch watch;
  // Read from the files, as `ckptd --resume` does once (Store::open); a live `ckpt restore` uses the daemon's own.
  CKPT_ASSIGN_OR_RETURN(snap::Catalog catalog, snap::Catalog::load(*fs, dc.store_dir));
  const double catalog_ms = watch.seconds() * 1e3;
  CKPT_ASSIGN_OR_RETURN(daemon::BuiltVm vm,
                        daemon::rebuild_machine(dc, *fs, catalog, epoch,
                                                mode == Mode::kLazy || mode == Mode::kLazyPrefetch
                                                    ? daemon::MemoryRestore::kLazy
                                                    : daemon::MemoryRestore::kEager));
  s.rebuilt_ms = watch.seconds() * 1e3;
  s.catalog_ms = catalog_ms + vm.phases.chain;
  s.memory_ms = vm.phases.memory;
  s.machine_ms = vm.phases.machine;
  s.state_ms = vm.phases.state;
  if (mode == Mode::kRunning) {
    CKPT_RETURN_IF_ERROR(populate_guest(vm.machine->host_memory()));
    watch = Stopwatch();  // only its run counts
  }
  const bool lazy = mode == Mode::kLazy || mode == Mode::kLazyPrefetch;
  if (lazy != (vm.lazy != nullptr)) {
    return Status(StatusCode::kUnsupported, "no lazy restore here (the log says why)");
  }
  auto* status = reinterpret_cast<std::atomic<uint64_t>*>(vm.machine->host_memory().data() + vmm::guest::kStatusGpa);
  const uint64_t at_epoch = status->load(std::memory_order_acquire);
  CKPT_RETURN_IF_ERROR(vm.machine->start());
  const double started = watch.seconds();
  while (status->load(std::memory_order_acquire) == at_epoch) {
    if (watch.seconds() - started > 30) {
      return Status(StatusCode::kIoError, "the restored guest made no progress in 30 s");
    }
    sleep_us(20);
  }
  s.first_write_ms = watch.seconds() * 1e3;
  if (vm.lazy) s.fault_reads_first_write = vm.lazy->progress().fault_reads;
  while (watch.seconds() - started < window_s) sleep_us(1000);
  s.iterations_window = status->load(std::memory_order_acquire) - at_epoch;
  if (vm.lazy) {
    s.fault_reads_window = vm.lazy->progress().fault_reads;
    if (!vm.lazy->wait_filled(600000)) return Status(StatusCode::kIoError, "the lazy restore did not fill");
    const daemon::LazyRestoreStats p = vm.lazy->progress();
    s.resident_s = started + p.seconds;  // the filler starts just before `started`: close enough at this scale
    s.fault_reads = p.fault_reads;
    s.prefetch_blocks = p.prefetch_blocks;
    // The record is written after the fill, from the filler thread: wait for it before the next run uses it.
    for (int i = 0; i < 500 && ::access(record.c_str(), F_OK) != 0; ++i) sleep_us(10000);
  } else {
    s.resident_s = started;
  }
  vm.machine.reset();  // before the lazy restore it may wait on
  return s;
}

struct SizeResult {
  uint64_t size_mib = 0;
  uint64_t store_bytes = 0;
  std::map<Mode, std::vector<Sample>> samples;
};

double median_of(const std::vector<Sample>& v, double Sample::*field) {
  std::vector<double> x;
  for (const Sample& s : v) x.push_back(s.*field);
  return median(x);
}
double median_of(const std::vector<Sample>& v, uint64_t Sample::*field) {
  std::vector<double> x;
  for (const Sample& s : v) x.push_back(static_cast<double>(s.*field));
  return median(x);
}

Status run(const Config& config, const std::string& dir) {
  ThreadPool pool(2);
  std::vector<SizeResult> results;
  for (uint64_t size : config.sizes_mib) {
    SizeResult r;
    r.size_mib = size;
    const std::string store = dir + "/store-" + std::to_string(size);
    CKPT_RETURN_IF_ERROR(remove_tree(store));
    daemon::DaemonConfig dc = daemon_config(size, store, config.workload == "hot-set");
    std::fprintf(stderr, "restore_bench: %llu MiB: writing the store\n", static_cast<unsigned long long>(size));
    CKPT_ASSIGN_OR_RETURN(uint64_t epoch, make_store(config, dc, pool));
    CKPT_ASSIGN_OR_RETURN(r.store_bytes, tree_size(store));
    for (unsigned rep = 0; rep < config.repeats; ++rep) {
      for (Mode mode : kModes) {
        CKPT_RETURN_IF_ERROR(warm_page_cache(store));
        CKPT_ASSIGN_OR_RETURN(Sample s, restore_once(dc, epoch, mode, config.window_s));
        std::fprintf(stderr,
                     "  %s: rebuilt %.3f ms, first write %.3f ms, resident %.3f s, faults %llu (%llu in %g s), "
                     "%llu iterations\n",
                     mode_name(mode), s.rebuilt_ms, s.first_write_ms, s.resident_s,
                     static_cast<unsigned long long>(s.fault_reads),
                     static_cast<unsigned long long>(s.fault_reads_window), config.window_s,
                     static_cast<unsigned long long>(s.iterations_window));
        r.samples[mode].push_back(s);
      }
    }
    if (!config.keep) CKPT_RETURN_IF_ERROR(remove_tree(store));
    results.push_back(std::move(r));
  }
  MachineInfo machine = describe_machine(dir);
  std::printf("## Restore: lazy against eager (software backend)\n\n");
  std::printf("%u CPUs (%s), kernel %s; a base + %u deltas of %.0f%% each, built-in guest writing one random page per "
              "iteration (%s); medians of %u alternating runs; store files warm in the page cache.\n\n",
              machine.cpus, machine.cpu_model.c_str(), machine.kernel.c_str(), config.deltas,
              config.dirty_fraction * 100, config.workload.c_str(), config.repeats);
  std::printf("| guest | store | mode | request -> state loaded | request -> first guest write | all resident | "
              "block reads waited for (first %g s / all) | guest iterations in its first %g s, vs never restored "
              "|\n|---|---|---|---|---|---|---|---|\n",
              config.window_s, config.window_s);
  for (const SizeResult& r : results) {
    const double reference = median_of(r.samples.at(Mode::kRunning), &Sample::iterations_window);
    for (Mode mode : kModes) {
      const std::vector<Sample>& v = r.samples.at(mode);
      const double iterations = median_of(v, &Sample::iterations_window);
      char loaded[32] = "-", first[32] = "-", resident[32] = "-";
      if (mode != Mode::kRunning) {
        std::snprintf(loaded, sizeof loaded, "%.2f ms", median_of(v, &Sample::rebuilt_ms));
        std::snprintf(first, sizeof first, "%.2f ms", median_of(v, &Sample::first_write_ms));
        std::snprintf(resident, sizeof resident, "%.3f s", median_of(v, &Sample::resident_s));
      }
      std::printf("| %llu MiB | %.0f MiB | %s | %s | %s | %s | %.0f / %.0f | %.0f (%.2fx) |\n",
                  static_cast<unsigned long long>(r.size_mib), static_cast<double>(r.store_bytes) / (1 << 20),
                  mode_name(mode), loaded, first, resident, median_of(v, &Sample::fault_reads_window),
                  median_of(v, &Sample::fault_reads), iterations, reference > 0 ? iterations / reference : 0);
    }
  }
  std::printf("\nWhere request -> state loaded goes (medians, ms; daemon::BuiltVm::Phases): the catalog read "
              "(as `ckptd --resume` reads it once; a live restore finds the chain in the catalog the daemon holds); "
              "memory (lazy: the restore plan and the chain's files opened, the page index being built after the guest "
              "starts; eager: every page in); the "
              "machine (memory mapped and registered; lazy: the working-set record read, serving threads started); "
              "the state loaded (lazy: its first page faults served).\n\n"
              "Then the guest runs until its first write, waiting for the blocks it needs first (read, checked, "
              "decoded and installed one after the other: block reads before the first write).\n\n"
              "| guest | mode | catalog | memory | machine | state | block reads before the first write |\n"
              "|---|---|---|---|---|---|---|\n");
  for (const SizeResult& r : results) {
    for (Mode mode : kModes) {
      if (mode == Mode::kRunning) continue;
      const std::vector<Sample>& v = r.samples.at(mode);
      std::printf("| %llu MiB | %s | %.2f | %.2f | %.2f | %.2f | %.0f |\n", static_cast<unsigned long long>(r.size_mib),
                  mode_name(mode), median_of(v, &Sample::catalog_ms), median_of(v, &Sample::memory_ms),
                  median_of(v, &Sample::machine_ms), median_of(v, &Sample::state_ms),
                  median_of(v, &Sample::fault_reads_first_write));
    }
  }
  return Status::ok();
}

}  // namespace
}  // namespace ckpt::bench

int main(int argc, char** argv) {
  using namespace ckpt::bench;
  Config config;
  CLI::App app{"restore_bench: lazy and eager restore of the built-in guest from a synthetic store (bench/README.md)"};
  app.add_option("--sizes-mib", config.sizes_mib, "guest sizes, comma-separated")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--repeats", config.repeats, "alternating runs of each mode")->check(CLI::PositiveNumber);
  app.add_option("--deltas", config.deltas, "delta epochs after the base");
  app.add_option("--dirty-fraction", config.dirty_fraction, "pages each delta writes")->check(CLI::Range(0.0, 1.0));
  app.add_option("--window-s", config.window_s, "the first seconds after a restore that are counted")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", config.seed, "seed of the synthetic memory");
  app.add_option("--workload", config.workload, "the guest: hot-set (15 of 16 writes in 1/64 of memory) or random")
      ->check(CLI::IsMember({"hot-set", "random"}));
  app.add_option("--dir", config.dir, "bench directory (default: a fresh /var/tmp/restore_bench.XXXXXX)");
  app.add_flag("--keep", config.keep, "keep the stores");
  CLI11_PARSE(app, argc, argv);
  ckpt::Status outcome = [&]() -> ckpt::Status {
    CKPT_ASSIGN_OR_RETURN(std::string dir, make_bench_dir(config.dir, "restore_bench"));
    ckpt::Status ran = run(config, dir);
    if (config.dir.empty() && !config.keep) (void)remove_tree(dir);
    return ran;
  }();
  return exit_status("restore_bench", outcome);
}
