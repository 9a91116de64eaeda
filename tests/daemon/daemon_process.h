// Runs the real ckptd binary as a child process for end-to-end tests: its own temp directory (store, socket, log,
// digest file), a control client, signals and exit status.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "daemon/config.h"
#include "daemon/control/message.h"

namespace ckpt::daemon::testing {

class DaemonProcess {
 public:
  // A fresh directory under /tmp holding ckptd.conf (the test defaults), store/, ckptd.sock, ckptd.log, digests.
  DaemonProcess();
  ~DaemonProcess();  // kills a still running daemon and removes the directory

  std::string store() const { return dir_ + "/store"; }
  std::string socket() const { return dir_ + "/ckptd.sock"; }
  std::string digests() const { return dir_ + "/digests"; }
  std::string log_path() const { return dir_ + "/ckptd.log"; }
  const std::string& dir() const { return dir_; }

  std::string config_path() const { return dir_ + "/ckptd.conf"; }
  // Appends 'key = value' lines to the config file; a later line for the same key wins.
  void append_config(const std::string& lines);

  // Starts `ckptd --config config_path()` plus `extra` arguments (which override the file) and waits until the
  // control socket answers status. The config file starts with the test defaults: software backend, 64 MiB,
  // 2 vCPUs, random-writer, 50 ms epochs, digest recording, this directory's store and socket. `env` adds
  // variables (e.g. NOTIFY_SOCKET).
  Status start(const std::vector<std::string>& extra = {}, const std::map<std::string, std::string>& env = {});
  // Like start, but returns as soon as the process exists (crash tests kill it at random moments, start-up included).
  Status spawn(const std::vector<std::string>& extra = {}, const std::map<std::string, std::string>& env = {});
  pid_t pid() const { return pid_; }

  // One request over a fresh connection.
  Result<control::Reply> call(const std::string& cmd, nlohmann::json args = nlohmann::json::object());
  // status's result; an empty object when the call failed.
  nlohmann::json status();
  // Polls status until `pred` holds or `timeout` passes.
  bool wait_until(const std::function<bool(const nlohmann::json&)>& pred, std::chrono::seconds timeout);

  void signal(int sig);
  // The exit status as waitpid reports it, or nullopt if the daemon is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::seconds timeout);
  std::string log() const;

  // "epoch N HEX" / "loaded N HEX" lines of the digest file: event -> epoch -> digest.
  std::map<std::string, std::map<uint64_t, uint64_t>> read_digests() const;

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

// "epoch N HEX" / "loaded N HEX" lines of a digest file (record-digests): event -> epoch -> digest.
std::map<std::string, std::map<uint64_t, uint64_t>> read_digest_file(const std::string& path);

// Settings of an in-process Session under `dir` (store/, digests): software backend, 16 MiB, random writer,
// 15 ms epochs, a 4 MiB staging area, resume on, every pause's memory digested.
DaemonConfig in_process_config(const std::string& dir);

// XXH3 of the whole guest memory at `epoch`, restored offline from `store`.
Result<uint64_t> restored_digest(const std::string& store, uint64_t epoch);

}  // namespace ckpt::daemon::testing
