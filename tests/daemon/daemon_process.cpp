#include "tests/daemon/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "daemon/control/client.h"
#include "snapshot/catalog.h"
#include "snapshot/restore.h"

#ifndef CKPTD_PATH
#error "CKPTD_PATH must name the ckptd binary"
#endif

namespace ckpt::daemon::testing {

DaemonProcess::DaemonProcess() {
  char tmpl[] = "/tmp/ckptd-e2e-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  append_config("store = " + store() + "\nsocket = " + socket() + "\nrecord-digests = " + digests() +
                "\nbackend = software\nmemory-mib = 64\nvcpus = 2\nworkload = random-writer\n"
                "workload-delay-loops = 200\nepoch-ms = 50\nstaging-mib = 16\n");
}

namespace {

// In a sanitizer build (scripts/sanitize.sh) the daemon's reports go to its log. One fails the test however the
// daemon ended: a test that SIGKILLs it, or never looks at its exit status, would otherwise pass over it.
void fail_on_sanitizer_report(const std::string& log) {
  for (const char* marker :
       {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", ": runtime error: "}) {
    if (log.find(marker) != std::string::npos) {
      ADD_FAILURE() << "ckptd's log holds a sanitizer report (" << marker << "):\n" << log;
      return;
    }
  }
}

}  // namespace

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  fail_on_sanitizer_report(log());
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Status DaemonProcess::start(const std::vector<std::string>& extra, const std::map<std::string, std::string>& env) {
  CKPT_RETURN_IF_ERROR(spawn(extra, env));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!status().empty()) return Status::ok();
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return Status(StatusCode::kAborted, "ckptd exited during start (status " + std::to_string(st) + "): " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status(StatusCode::kAborted, "ckptd did not answer on " + socket() + " within 60 s: " + log());
}

Status DaemonProcess::spawn(const std::vector<std::string>& extra, const std::map<std::string, std::string>& env) {
  std::vector<std::string> args{CKPTD_PATH, "--config", config_path()};
  args.insert(args.end(), extra.begin(), extra.end());
  // Everything the child needs is built here: between fork and exec it may only make async-signal-safe calls
  // (another thread of the test may hold the allocator's lock at the fork).
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (!env.contains(entry.substr(0, entry.find('=')))) environment.push_back(std::move(entry));
  }
  for (const auto& [k, v] : env) environment.push_back(k + "=" + v);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string log_file = log_path();
  pid_ = ::fork();
  if (pid_ < 0) return Status::from_errno(errno, "fork");
  if (pid_ == 0) {
    int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return Status::ok();
}

void DaemonProcess::append_config(const std::string& lines) {
  std::ofstream(config_path(), std::ios::app) << lines;
}

Result<control::Reply> DaemonProcess::call(const std::string& cmd, nlohmann::json args) {
  CKPT_ASSIGN_OR_RETURN(auto client, control::ControlClient::connect(socket(), std::chrono::milliseconds(2000)));
  return client.call(cmd, std::move(args), std::chrono::milliseconds(120000));
}

nlohmann::json DaemonProcess::status() {
  auto reply = call("status");
  if (!reply.is_ok() || !reply->ok) return nlohmann::json::object();
  return reply->result;
}

bool DaemonProcess::wait_until(const std::function<bool(const nlohmann::json&)>& pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    nlohmann::json s = status();
    if (!s.empty() && pred(s)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void DaemonProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return st;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_path());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::map<uint64_t, uint64_t>> DaemonProcess::read_digests() const {
  return read_digest_file(digests());
}

std::map<std::string, std::map<uint64_t, uint64_t>> read_digest_file(const std::string& path) {
  std::map<std::string, std::map<uint64_t, uint64_t>> out;
  std::ifstream in(path);
  std::string event, hex;
  uint64_t epoch = 0;
  while (in >> event >> epoch >> hex) out[event][epoch] = std::stoull(hex, nullptr, 16);
  return out;
}

DaemonConfig in_process_config(const std::string& dir) {
  DaemonConfig c;
  c.backend = vmm::Backend::kSoftware;
  c.machine.memory_bytes = 16ull << 20;
  c.machine.workload.kind = vmm::guest::WorkloadKind::kRandomWriter;
  c.machine.workload.delay_loops = 200;
  c.store_dir = dir + "/store";
  c.record_digests = dir + "/digests";
  c.epoch_ms = 15;
  c.staging_bytes = 4ull << 20;
  c.resume = true;
  return c;
}

Result<uint64_t> restored_digest(const std::string& store, uint64_t epoch) {
  auto fs = snap::make_posix_file_system();
  CKPT_ASSIGN_OR_RETURN(snap::Catalog catalog, snap::Catalog::load(*fs, store));
  std::vector<uint8_t> memory(catalog.guest_pages() * 4096);
  CKPT_RETURN_IF_ERROR(snap::restore_to_memory(*fs, catalog, epoch, memory).status());
  return static_cast<uint64_t>(XXH3_64bits(memory.data(), memory.size()));
}

}  // namespace ckpt::daemon::testing
