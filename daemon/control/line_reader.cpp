#include "daemon/control/line_reader.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <optional>

namespace ckpt::control {
namespace {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;

// Big enough that a 4 MiB reply takes few reads; the buffer never holds more than one line plus one chunk.
constexpr size_t kReadChunk = 64 * 1024;

Deadline deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return std::nullopt;
  return Clock::now() + timeout;
}

// poll()'s timeout argument: -1 without a deadline, 0 once it has passed, rounded up so we never spin early.
int poll_millis(const Deadline& deadline) {
  if (!deadline) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

// 0 when `fd` is ready (or hung up / in error: the read or send that follows reports which), ETIMEDOUT, or the
// errno of a failed poll.
int wait_ready(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, poll_millis(deadline));
    if (rc > 0) return 0;
    if (rc == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

LineReader::ReadResult failure(LineReader::Outcome outcome, int err = 0) {
  LineReader::ReadResult result;
  result.outcome = outcome;
  result.sys_errno = err;
  return result;
}

}  // namespace

bool LineReader::take_line(ReadResult& result) {
  size_t newline = buffer_.find('\n', scan_from_);
  if (newline == std::string::npos) {
    scan_from_ = buffer_.size();
    if (buffer_.size() < max_line_bytes_) return false;
    result = failure(Outcome::kTooLong);
    return true;
  }
  if (newline + 1 > max_line_bytes_) {
    result = failure(Outcome::kTooLong);
    return true;
  }
  result.outcome = Outcome::kLine;
  result.line.assign(buffer_, 0, newline);
  buffer_.erase(0, newline + 1);
  scan_from_ = 0;
  return true;
}

LineReader::ReadResult LineReader::read_line(std::chrono::milliseconds timeout) {
  Deadline deadline = deadline_after(timeout);
  ReadResult result;
  while (!take_line(result)) {
    if (int err = wait_ready(fd_, POLLIN, deadline); err != 0) {
      return failure(err == ETIMEDOUT ? Outcome::kTimeout : Outcome::kError, err);
    }
    size_t old_size = buffer_.size();
    buffer_.resize(old_size + kReadChunk);
    ssize_t n = ::read(fd_, buffer_.data() + old_size, kReadChunk);
    buffer_.resize(old_size + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n == 0) return failure(Outcome::kEof);
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return failure(Outcome::kError, errno);
  }
  return result;
}

Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  Deadline deadline = deadline_after(timeout);
  while (!data.empty()) {
    // MSG_DONTWAIT so the deadline holds even on a blocking socket; MSG_NOSIGNAL so a closed peer is EPIPE, not
    // a process-killing SIGPIPE.
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::from_errno(errno, "send");
    if (int err = wait_ready(fd, POLLOUT, deadline); err != 0) {
      if (err != ETIMEDOUT) return Status::from_errno(err, "poll before send");
      return Status(StatusCode::kIoError,
                    "send: peer did not take the data within " + std::to_string(timeout.count()) + " ms", ETIMEDOUT);
    }
  }
  return Status::ok();
}

}  // namespace ckpt::control
