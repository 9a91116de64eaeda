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

// Reads a file, or every file under a directory, so that a timed step finds it in the page cache. Memory is
// reclaimed proactively on these machines (a DAMON pageout scheme), so data written a minute ago may be gone.
Status warm_page_cache(const std::string& path);

Result<uint64_t> file_size(const std::string& path);
// Bytes in regular files under `path` (a file or a directory tree).
Result<uint64_t> tree_size(const std::string& path);
Status remove_tree(const std::string& path);
// The benchmark's working directory: `dir`, created if missing, or a fresh /var/tmp/<name>.XXXXXX when it is empty.
Result<std::string> make_bench_dir(const std::string& dir, const std::string& name);

// "name arg1 arg2 ...": the command line as a report quotes it.
std::string command_line(const std::string& name, int argc, char** argv);
// main()'s exit status for a benchmark's outcome: 0, or 1 after printing "<name> FAILED: <why>".
int exit_status(const std::string& name, const Status& outcome);

// CPU time during timed steps: this process's (all threads, io_uring workers included) and its waited-for
// children's, and what the rest of the machine used meanwhile (other jobs, kernel threads such as writeback).
// A shared 2-CPU machine needs both next to wall-clock figures.
class CpuWatch {
 public:
  void start();
  // Ends the interval begun by start(); returns the CPU-seconds this process and its children used in it.
  double stop();
  // Average number of CPUs busy with other work during all watched intervals.
  double other_cpus() const { return wall_ > 0 ? others_ / wall_ : 0; }

 private:
  double start_wall_ = 0, start_machine_ = 0, start_ours_ = 0;
  double wall_ = 0, others_ = 0;
};

struct MachineInfo {
  unsigned cpus = 0;
  std::string cpu_model;
  std::string kernel;
  std::string file_system;  // type, device and mount options of the file system holding the bench directory
  std::string zstd_version;
};
MachineInfo describe_machine(const std::string& bench_dir);

// "1.234 GB/s" style formatting (decimal units, as zstd and dd print them).
std::string format_rate(double bytes, double seconds);
std::string format_mib(double bytes);
std::string format_fixed(double value, int decimals);

}  // namespace ckpt::bench
