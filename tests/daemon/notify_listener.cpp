#include "tests/daemon/notify_listener.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/log.h"

namespace ckpt::daemon::testing {
namespace {

using Clock = std::chrono::steady_clock;

// sd_notify's messages are KEY=VALUE lines; a trailing newline or an empty line carries nothing.
std::vector<std::pair<std::string, std::string>> split_fields(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> fields;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      fields.emplace_back(std::string(line), std::string());
    } else {
      fields.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
    }
  }
  return fields;
}

}  // namespace

std::optional<std::string> NotifyListener::Message::get(std::string_view key) const {
  for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

std::vector<std::string> NotifyListener::Message::keys() const {
  std::vector<std::string> names;
  for (const auto& field : fields) names.push_back(field.first);
  return names;
}

Result<std::unique_ptr<NotifyListener>> NotifyListener::create() {
  // /tmp rather than $TMPDIR: sun_path holds 108 bytes, and a long TMPDIR would not fit.
  char tmpl[] = "/tmp/ckpt-notify-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Status::from_errno(errno, "mkdtemp /tmp/ckpt-notify-XXXXXX");
  std::unique_ptr<NotifyListener> listener(new NotifyListener());
  listener->dir_ = tmpl;
  CKPT_RETURN_IF_ERROR(listener->bind_to(listener->dir_ + "/notify.sock"));
  return listener;
}

Result<std::unique_ptr<NotifyListener>> NotifyListener::create_abstract(std::string_view name) {
  if (name.empty()) return invalid_argument("abstract notify socket: empty name");
  std::unique_ptr<NotifyListener> listener(new NotifyListener());
  CKPT_RETURN_IF_ERROR(listener->bind_to("@" + std::string(name)));
  return listener;
}

NotifyListener::~NotifyListener() {
  fd_.reset();
  if (!dir_.empty()) {
    if (path_.starts_with('/')) ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
}

Status NotifyListener::bind_to(std::string path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // An abstract address is a leading '\0' and the name, with no terminator: its length is exactly what is used.
  // sd_notify maps NOTIFY_SOCKET's leading '@' to that '\0' and addresses it the same way.
  const bool abstract = path.starts_with('@');
  if (path.size() >= sizeof addr.sun_path) {
    return invalid_argument("notify socket path " + path + " is longer than sun_path (" +
                            std::to_string(sizeof addr.sun_path - 1) + " bytes)");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (abstract) addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));

  fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return Status::from_errno(errno, "socket(AF_UNIX, SOCK_DGRAM) for notify listener " + path);
  int on = 1;
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    return Status::from_errno(errno, "setsockopt SO_PASSCRED on notify listener " + path);
  }
  if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    return Status::from_errno(errno, "bind notify listener " + path);
  }
  path_ = std::move(path);
  return Status::ok();
}

std::optional<NotifyListener::Message> NotifyListener::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd pfd{fd_.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      CKPT_LOG(kError) << "poll notify listener " << path_ << ": " << std::strerror(errno);
      return std::nullopt;
    }
    if (ready == 0) return std::nullopt;

    // 64 KiB: more than any datagram systemd would accept (PIPE_BUF), so a sender's oversize message shows whole.
    std::string buffer(64 * 1024, '\0');
    iovec iov{buffer.data(), buffer.size()};
    // Room for the credentials and a few descriptors (see SCM_RIGHTS below).
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(16 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      CKPT_LOG(kError) << "recvmsg on notify listener " << path_ << ": " << std::strerror(errno);
      return std::nullopt;
    }

    Message message;
    buffer.resize(static_cast<size_t>(n));
    message.text = std::move(buffer);
    message.fields = split_fields(message.text);
    message.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        message.sender_pid = cred.pid;
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        // FDSTORE=1 messages pass descriptors; a test has no use for them, and leaking them would hold files open.
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          ::close(fd);
        }
      }
    }
    history_.push_back(message);
    return message;
  }
}

bool NotifyListener::wait_for(std::string_view key, std::string_view value, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::optional<Message> message = next(std::max(left, std::chrono::milliseconds(0)));
    if (!message) return false;
    for (const auto& [k, v] : message->fields) {
      if (k == key && v == value) return true;
    }
  }
}

}  // namespace ckpt::daemon::testing
