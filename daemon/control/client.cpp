#include "daemon/control/unix_address.h"
#include "daemon/control/client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/control/protocol.h"

namespace ckpt::control {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A Unix connect() blocks only while the listener's backlog is full; SO_SNDTIMEO bounds that wait.
Status set_connect_timeout(int fd, milliseconds timeout) {
  if (timeout.count() <= 0) return Status::ok();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    return Status::from_errno(errno, "setsockopt(SO_SNDTIMEO)");
  }
  return Status::ok();
}

Status connect_error(int err, const std::string& path, milliseconds timeout) {
  switch (err) {
    case ENOENT:
    case ECONNREFUSED:
      return Status(StatusCode::kIoError, "no daemon is listening on " + path + " (" + std::strerror(err) + ")", err);
    case EAGAIN:
      return Status(StatusCode::kIoError,
                    "the daemon on " + path + " did not accept the connection within " +
                        std::to_string(timeout.count()) + " ms",
                    ETIMEDOUT);
    default:
      return Status::from_errno(err, "connect to " + path);  // EACCES / EPERM become kPermission
  }
}

// What is left of the call's time budget for its next step; zero keeps meaning "forever".
milliseconds remaining(Clock::time_point start, milliseconds timeout) {
  if (timeout.count() <= 0) return milliseconds::zero();
  auto left = timeout - std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return std::max(left, milliseconds(1));
}

Status read_failure(const LineReader::ReadResult& read, const std::string& path, milliseconds timeout) {
  switch (read.outcome) {
    case LineReader::Outcome::kTimeout:
      return Status(StatusCode::kIoError,
                    "no reply from the daemon on " + path + " within " + std::to_string(timeout.count()) + " ms",
                    ETIMEDOUT);
    case LineReader::Outcome::kTooLong:
      return Status(StatusCode::kIoError,
                    "reply from " + path + " exceeds " + std::to_string(kMaxReplyBytes) + " bytes", EMSGSIZE);
    case LineReader::Outcome::kError:
      return Status::from_errno(read.sys_errno, "read a reply from " + path);
    case LineReader::Outcome::kEof:
    case LineReader::Outcome::kLine:
      break;
  }
  return Status(StatusCode::kIoError, "the daemon on " + path + " closed the connection without replying",
                ECONNRESET);
}

}  // namespace

ControlClient::ControlClient(UniqueFd fd, std::string path)
    : fd_(std::move(fd)), path_(std::move(path)), reader_(fd_.get(), kMaxReplyBytes) {}

pid_t ControlClient::peer_pid() const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (!fd_.valid() || ::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.pid;
}

Result<ControlClient> ControlClient::connect(const std::string& path, milliseconds timeout) {
  CKPT_ASSIGN_OR_RETURN(sockaddr_un addr, socket_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::from_errno(errno, "socket(AF_UNIX)");
  CKPT_RETURN_IF_ERROR(set_connect_timeout(fd.get(), timeout));
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return connect_error(errno, path, timeout);
  return ControlClient(std::move(fd), path);
}

Status ControlClient::fail(Status status) {
  fd_.reset();
  return status;
}

Result<Reply> ControlClient::call(std::string_view cmd, nlohmann::json args, milliseconds timeout) {
  if (!fd_.valid()) {
    return Status(StatusCode::kIoError, "the connection to " + path_ + " was closed after an earlier error",
                  ENOTCONN);
  }
  Clock::time_point start = Clock::now();
  uint64_t id = next_id_++;
  Status sent = write_all(fd_.get(), encode_request(id, cmd, args), timeout);
  // A daemon that refused us (permission_denied, busy) has replied and closed before reading: its reply is
  // still waiting in our receive queue, so read it rather than report the broken pipe.
  if (!sent.is_ok() && sent.sys_errno() != EPIPE && sent.sys_errno() != ECONNRESET) {
    return fail(sent.with_context("send a request to " + path_));
  }
  return read_reply(id, remaining(start, timeout));
}

Result<Reply> ControlClient::read_reply(uint64_t id, milliseconds timeout) {
  LineReader::ReadResult read = reader_.read_line(timeout);
  if (read.outcome != LineReader::Outcome::kLine) return fail(read_failure(read, path_, timeout));
  auto envelope = parse_reply(read.line);
  if (!envelope) {
    return fail(Status(StatusCode::kIoError,
                       "malformed reply from " + path_ + ": " + envelope.status().message(), EPROTO));
  }
  // An error the daemon raised before it could read our id (busy, permission_denied) carries id null.
  bool unattributed_error = envelope->id.is_null() && !envelope->reply.ok;
  if (envelope->id != nlohmann::json(id) && !unattributed_error) {
    return fail(Status(StatusCode::kIoError,
                       "reply from " + path_ + " has id " + envelope->id.dump() + ", expected " + std::to_string(id),
                       EPROTO));
  }
  return std::move(envelope->reply);
}

}  // namespace ckpt::control
