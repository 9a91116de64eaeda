// The control socket's client, for the ckpt CLI: one connection, one request at a time (docs/protocol.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "common/status.h"
#include "common/unique_fd.h"
#include "daemon/control/line_reader.h"
#include "daemon/control/message.h"

namespace ckpt::control {

class ControlClient {
 public:
  // Connects to the daemon's socket. Failures the CLI tells apart by errno and code:
  //   no daemon    kIoError, errno ENOENT or ECONNREFUSED, "no daemon is listening on PATH"
  //   no access    kPermission (EACCES / EPERM): the socket's mode or group keeps this user out
  //   overloaded   kIoError, errno ETIMEDOUT: the listener's backlog stayed full for `timeout`
  // A timeout of zero waits forever.
  static Result<ControlClient> connect(const std::string& path, std::chrono::milliseconds timeout);

  ControlClient(ControlClient&&) noexcept = default;
  ControlClient& operator=(ControlClient&&) noexcept = default;

  // Sends one request (ids count up from 1) and waits for its reply; `timeout` bounds the whole call, zero waits
  // forever (a restore of a big VM takes long). A reply with ok == false is a value, not an error: the daemon
  // answered. Errors are transport failures, all kIoError with an errno: ECONNRESET (the daemon closed the
  // connection), ETIMEDOUT, EMSGSIZE (a reply over kMaxReplyBytes), EPROTO (a malformed reply or a wrong id),
  // or the send/read errno. After one the connection is closed and further calls fail with ENOTCONN.
  Result<Reply> call(std::string_view cmd, nlohmann::json args = nlohmann::json::object(),
                     std::chrono::milliseconds timeout = std::chrono::milliseconds::zero());

  const std::string& path() const { return path_; }

  // The process at the other end, as SO_PEERCRED recorded it when the daemon listened: 0 when it runs in a pid
  // namespace this process cannot see (the kernel then reports no pid), or after a failure closed the connection.
  pid_t peer_pid() const;

 private:
  ControlClient(UniqueFd fd, std::string path);

  Result<Reply> read_reply(uint64_t id, std::chrono::milliseconds timeout);
  Status fail(Status status);  // closes the connection: after a failure its stream position is unknown

  UniqueFd fd_;
  std::string path_;
  LineReader reader_;
  uint64_t next_id_ = 1;
};

}  // namespace ckpt::control
