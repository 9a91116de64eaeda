// Small helpers for the store benchmark: wall-clock timing, running the zstd CLI as a child process, making files
// durable for parity with the store's commit, and describing the machine in the report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::bench {

// Monotonic wall time in seconds, for intervals only.
double now_seconds();

class Stopwatch {
 public:
  Stopwatch() : start_(now_seconds()) {}
  double seconds() const { return now_seconds() - start_; }

 private:
  double start_;
};

double median(std::vector<double> values);

// Runs argv[0] (looked up in PATH) with the given arguments, inheriting stdout/stderr, and waits for it. Any exit
// other than status 0 is an error naming the command.
Status run_command(const std::vector<std::string>& argv);
// First line of a command's stdout ("" when it cannot be run); for version strings in the report.
std::string command_first_line(const std::string& shell_command);

// fsync of a file or a directory.
Status fsync_path(const std::string& path);
// syncfs(2) of the file system holding `path`: settles writeback and deferred frees (the root file system here is
// mounted with `discard`) left over from an earlier step, so they do not land inside the next timed step.
Status sync_file_system(const std::string& path);

Result<uint64_t> file_size(const std::string& path);
// Bytes in regular files under `path` (a file or a directory tree).
Result<uint64_t> tree_size(const std::string& path);
Status remove_tree(const std::string& path);

struct MachineInfo {
  unsigned cpus = 0;
  std::string cpu_model;
  std::string kernel;
  std::string file_system;  // type of the file system holding the bench directory
  std::string zstd_version;
};
MachineInfo describe_machine(const std::string& bench_dir);

// "1.234 GB/s" style formatting (decimal units, as zstd and dd print them).
std::string format_rate(double bytes, double seconds);
std::string format_mib(double bytes);
std::string format_fixed(double value, int decimals);

}  // namespace ckpt::bench
