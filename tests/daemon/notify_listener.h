// A stand-in for systemd's end of NOTIFY_SOCKET, for tests: owns an AF_UNIX datagram socket, receives what
// sd_notify(3) sends and splits each datagram into its KEY=VALUE fields. Point a process at it with
// NOTIFY_SOCKET=<path()> (setenv for this process, the child's environment for a daemon under test).
//
// SO_PASSCRED is on, so each message carries the sender's pid as the kernel saw it: a test can check that READY=1
// came from the daemon it started and not from a helper.
//
// Single-threaded: one thread calls next()/wait_for().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ckpt::daemon::testing {

class NotifyListener {
 public:
  struct Message {
    std::string text;                                         // the datagram exactly as received
    std::vector<std::pair<std::string, std::string>> fields;  // its lines in order, split at the first '='
    pid_t sender_pid = 0;                                     // from SCM_CREDENTIALS; 0 when none arrived
    bool truncated = false;                                   // longer than the receive buffer (64 KiB)

    // The value of the last field named `key` (systemd also lets a later field win), or nullopt.
    std::optional<std::string> get(std::string_view key) const;
    // The field names in order, e.g. {"READY", "STATUS", "MAINPID"}.
    std::vector<std::string> keys() const;
  };

  // Bound at notify.sock in a fresh directory under /tmp; the directory is removed with the listener.
  static Result<std::unique_ptr<NotifyListener>> create();
  // Bound in the abstract namespace (nothing on disk); path() is "@" + name. The name must be unique on the host
  // (network namespace, strictly): include the pid.
  static Result<std::unique_ptr<NotifyListener>> create_abstract(std::string_view name);

  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;
  ~NotifyListener();

  // The NOTIFY_SOCKET value that reaches this listener: a filesystem path, or "@name" for an abstract socket.
  std::string path() const { return path_; }

  // The next datagram, waiting up to `timeout` for it; nullopt on timeout (or on a receive error, which is logged).
  std::optional<Message> next(std::chrono::milliseconds timeout);

  // Receives until a message has field key=value (true) or `timeout` has passed (false). Messages received on the
  // way are consumed; they stay in history().
  bool wait_for(std::string_view key, std::string_view value, std::chrono::milliseconds timeout);

  // Every message next() and wait_for() have received, oldest first.
  const std::vector<Message>& history() const { return history_; }

 private:
  NotifyListener() = default;
  Status bind_to(std::string path);

  UniqueFd fd_;
  std::string path_;
  std::string dir_;  // the temp directory holding a filesystem socket; empty for an abstract one
  std::vector<Message> history_;
};

}  // namespace ckpt::daemon::testing
