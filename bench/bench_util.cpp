#include "bench/bench_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/unique_fd.h"

extern char** environ;

namespace ckpt::bench {

double now_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

namespace {

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

}  // namespace

Status run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (rc != 0) return Status::from_errno(rc, "spawn `" + join(argv) + "`");
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Status::from_errno(errno, "waitpid for `" + join(argv) + "`");
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return Status::ok();
  std::string how = WIFEXITED(wstatus) ? "exited with status " + std::to_string(WEXITSTATUS(wstatus))
                                       : "was killed by signal " + std::to_string(WTERMSIG(wstatus));
  return Status(StatusCode::kAborted, "`" + join(argv) + "` " + how);
}

std::string command_first_line(const std::string& shell_command) {
  FILE* pipe = ::popen(shell_command.c_str(), "r");
  if (pipe == nullptr) return "";
  char line[512] = {};
  std::string out = std::fgets(line, sizeof line, pipe) ? line : "";
  ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

Status fsync_path(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path + " for fsync");
  if (::fsync(fd.get()) != 0) return Status::from_errno(errno, "fsync " + path);
  return Status::ok();
}

Status sync_file_system(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path + " for syncfs");
  if (::syncfs(fd.get()) != 0) return Status::from_errno(errno, "syncfs " + path);
  return Status::ok();
}

namespace {

Status read_file(const std::string& path, std::vector<uint8_t>& buffer) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path + " to warm the cache");
  for (off_t at = 0;;) {
    ssize_t n = ::pread(fd.get(), buffer.data(), buffer.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "read " + path);
    if (n == 0) return Status::ok();
    at += n;
  }
}

}  // namespace

Status warm_page_cache(const std::string& path) {
  namespace fs = std::filesystem;
  static std::vector<uint8_t> buffer(4u << 20);  // kept: a fresh buffer costs page faults every call
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return read_file(path, buffer);
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) CKPT_RETURN_IF_ERROR(read_file(it->path().string(), buffer));
  }
  if (ec) return Status::from_errno(ec.value(), "list " + path);
  return Status::ok();
}

Result<uint64_t> file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::from_errno(errno, "stat " + path);
  return static_cast<uint64_t>(st.st_size);
}

Result<uint64_t> tree_size(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return file_size(path);
  uint64_t total = 0;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  if (ec) return Status::from_errno(ec.value(), "list " + path);
  return total;
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status::from_errno(ec.value(), "remove " + path);
  return Status::ok();
}

Result<std::string> make_bench_dir(const std::string& dir, const std::string& name) {
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::from_errno(ec.value(), "create " + dir);
    return dir;
  }
  std::string templ = "/var/tmp/" + name + ".XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Status::from_errno(errno, "mkdtemp " + templ);
  return templ;
}

std::string command_line(const std::string& name, int argc, char** argv) {
  std::string line = name;
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
  return line;
}

int exit_status(const std::string& name, const Status& outcome) {
  if (outcome.is_ok()) return 0;
  std::fprintf(stderr, "%s FAILED: %s\n", name.c_str(), outcome.to_string().c_str());
  return 1;
}

namespace {

// Busy CPU-seconds of the whole machine since boot; steal counts as busy (the host took the CPU from us).
double machine_busy_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return static_cast<double>(user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double seconds_of(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; }

// CPU-seconds of this process (all its threads, io_uring workers included) and its waited-for children.
double our_cpu_seconds() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    if (::getrusage(who, &usage) == 0) total += seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime);
  }
  return total;
}

}  // namespace

void CpuWatch::start() {
  start_wall_ = now_seconds();
  start_machine_ = machine_busy_seconds();
  start_ours_ = our_cpu_seconds();
}

double CpuWatch::stop() {
  wall_ += now_seconds() - start_wall_;
  double ours = our_cpu_seconds() - start_ours_;
  others_ += std::max(0.0, (machine_busy_seconds() - start_machine_) - ours);
  return ours;
}

namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

}  // namespace

MachineInfo describe_machine(const std::string& bench_dir) {
  MachineInfo info;
  info.cpus = std::thread::hardware_concurrency();
  info.cpu_model = cpu_model();
  utsname uts{};
  if (::uname(&uts) == 0) info.kernel = std::string(uts.sysname) + " " + uts.release;
  info.file_system =
      command_first_line("findmnt -n -o FSTYPE,SOURCE,OPTIONS -T '" + bench_dir + "' 2>/dev/null | tr -s ' '");
  info.zstd_version = command_first_line("zstd -qV 2>/dev/null");
  return info;
}

std::string format_fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string format_rate(double bytes, double seconds) {
  return seconds > 0 ? format_fixed(bytes / seconds / 1e9, 3) + " GB/s" : "n/a";
}

std::string format_mib(double bytes) { return format_fixed(bytes / (1024.0 * 1024.0), 1) + " MiB"; }

}  // namespace ckpt::bench
