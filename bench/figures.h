// What store_bench measures, shared by the measuring code (store_bench.cpp) and the report (report.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"

namespace ckpt::bench {

struct Config {
  uint64_t size_mib = 2048;
  unsigned deltas = 20;
  double dirty_fraction = 0.10;
  std::string dir;  // empty: a fresh directory under /var/tmp
  uint64_t seed = 42;
  unsigned repeats = 3;
  unsigned warmup = 1;  // untimed rounds of each comparison first (see store_bench.cpp)
  std::string engine = "auto";
  int level = snap::StoreOptions{}.compression_level;  // the store's zstd level (the daemon's default)
  bool keep = false;
  std::string images;  // a directory of raw memory images (*.img, name order): the first is the base, each next one
                       // a delta of the pages that differ; replaces the synthetic image (size, seed, dirty fraction)
};

// One timed step.
struct Step {
  double seconds = 0;      // wall clock
  double cpu_seconds = 0;  // CPU of this process and its children during the step
  double tail_seconds = 0; // the durability tail: zstd's fsyncs, the store's commit() or its restore's fsync
};

struct BaseFigures {
  std::vector<Step> zstd, store;  // in the order taken, alternating
  uint64_t zstd_bytes = 0, store_bytes = 0;
  snap::EpochStats stats;
  uint64_t raw_blocks = 0;  // blocks stored uncompressed (zstd saved less than 1/16)
  std::string store_dir;    // the last repeat's store; the deltas extend it
  std::string engine;
};

struct DeltaFigures {
  uint64_t epoch = 0;
  uint64_t dirty_pages = 0;
  Step step;
  uint64_t file_bytes = 0;
  snap::EpochStats stats;
};

struct RestoreFigures {
  std::vector<Step> zstd, store;
  uint64_t epoch = 0;
  snap::RestoreStats stats;
};

struct Results {
  std::string dir;
  uint64_t image_pages = 0;
  std::vector<std::string> image_files;  // --images: the files, base first
  std::vector<double> class_fractions;  // of the newest epoch, indexed by PageClass
  double structured_ratio = 0;
  BaseFigures base;
  std::vector<DeltaFigures> deltas;
  RestoreFigures restore;
  // Other work on the machine during each phase's timed steps.
  CpuWatch base_cpu, delta_cpu, restore_cpu;
};

// Prints the results as markdown (the section bench/README.md quotes).
void print_report(const Config& config, const Results& results);

}  // namespace ckpt::bench
