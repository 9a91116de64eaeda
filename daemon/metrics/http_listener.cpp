#include "daemon/metrics/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/thread_name.h"
#include "daemon/metrics/prometheus.h"

namespace ckpt::daemon {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeadBytes = 8 * 1024;
constexpr auto kHeadTimeout = std::chrono::seconds(2);
constexpr auto kSendTimeout = std::chrono::seconds(5);
// After the response: how long and how much to drain before closing (see linger_close).
constexpr auto kLingerTimeout = std::chrono::milliseconds(500);
constexpr size_t kMaxDrainBytes = 64 * 1024;
constexpr int kBacklog = 16;
constexpr int kAcceptBackoffMs = 1000;

// ---- listen address ----

struct ListenAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

Status bad_address(const std::string& address, std::string_view why) {
  return invalid_argument("metrics listen address \"" + address + "\": " + std::string(why));
}

Result<uint16_t> parse_port(std::string_view text, const std::string& address) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return bad_address(address, "port must be a number from 0 to 65535");
  }
  unsigned value = 0;
  for (char c : text) value = value * 10 + static_cast<unsigned>(c - '0');
  if (value > 65535) return bad_address(address, "port must be a number from 0 to 65535");
  return static_cast<uint16_t>(value);
}

// Splits "host:port" / "[v6]:port"; `bracketed` says which form the host came in.
bool split_host_port(std::string_view text, std::string_view* host, std::string_view* port, bool* bracketed) {
  *bracketed = !text.empty() && text.front() == '[';
  size_t colon = 0;
  if (*bracketed) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    *host = text.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    *host = text.substr(0, colon);
    if (host->find(':') != std::string_view::npos) return false;  // an IPv6 host needs brackets
  }
  *port = text.substr(colon + 1);
  return true;
}

// Only loopback hosts are accepted, and "localhost" is mapped here rather than resolved: a resolver (or a
// doctored /etc/hosts) must not be able to move the endpoint onto a public interface.
Result<ListenAddress> parse_listen_address(const std::string& address) {
  std::string_view host, port_text;
  bool bracketed = false;
  if (!split_host_port(address, &host, &port_text, &bracketed)) {
    return bad_address(address, "expected host:port, e.g. 127.0.0.1:9100 or [::1]:9100");
  }
  CKPT_ASSIGN_OR_RETURN(uint16_t port, parse_port(port_text, address));
  const std::string host_text = host == "localhost" && !bracketed ? "127.0.0.1" : std::string(host);
  ListenAddress out;
  if (!bracketed) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    if (::inet_pton(AF_INET, host_text.c_str(), &v4->sin_addr) == 1 && (ntohl(v4->sin_addr.s_addr) >> 24) == 127) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      out.length = sizeof(sockaddr_in);
      return out;
    }
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (::inet_pton(AF_INET6, host_text.c_str(), &v6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      out.length = sizeof(sockaddr_in6);
      return out;
    }
  }
  return bad_address(address, "host \"" + std::string(host) +
                                  "\" is not a loopback address (metrics are served on 127.0.0.0/8, [::1] or "
                                  "localhost only)");
}

// ---- sockets ----

Result<UniqueFd> open_listener(const ListenAddress& address, const std::string& text) {
  UniqueFd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Status::from_errno(errno, "socket for metrics listener " + text);
  // A restarted daemon must be able to rebind while the old process' connections sit in TIME_WAIT.
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return Status::from_errno(errno, "setsockopt(SO_REUSEADDR) on metrics listener " + text);
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
    return Status::from_errno(errno, "bind metrics listener " + text);
  }
  if (::listen(fd.get(), kBacklog) != 0) return Status::from_errno(errno, "listen on metrics listener " + text);
  return fd;
}

struct BoundAddress {
  uint16_t port = 0;
  std::string text;  // "127.0.0.1:9100", "[::1]:9100"
};

Result<BoundAddress> bound_address(int fd, const std::string& requested) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return Status::from_errno(errno, "getsockname on metrics listener " + requested);
  }
  char host[INET6_ADDRSTRLEN] = {};
  BoundAddress out;
  if (storage.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    out.port = ntohs(v6->sin6_port);
    out.text = "[" + std::string(host) + "]:" + std::to_string(out.port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    out.port = ntohs(v4->sin_port);
    out.text = std::string(host) + ":" + std::to_string(out.port);
  }
  return out;
}

// True when the stop eventfd fires within `timeout_ms`.
bool stop_requested(int stop_fd, int timeout_ms) {
  pollfd fd{stop_fd, POLLIN, 0};
  return ::poll(&fd, 1, timeout_ms) > 0;
}

enum class Wait { kReady, kTimeout, kStopped, kError };

// Waits for `events` on `fd` until `deadline`, giving up at once when the server is being stopped.
Wait wait_for(int fd, short events, int stop_fd, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Wait::kTimeout;
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::kError;
    if (fds[1].revents != 0) return Wait::kStopped;
    if (fds[0].revents != 0) return Wait::kReady;  // POLLERR/POLLHUP too: the next recv/send reports them
  }
}

// Sends all of `data` (MSG_NOSIGNAL: a client that left must not raise SIGPIPE). False if the client left, the
// deadline passed or the server is stopping.
bool send_all(int fd, int stop_fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for(fd, POLLOUT, stop_fd, deadline) != Wait::kReady) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Closing a socket with unread input (a request body, a second request) makes the kernel answer with RST, which
// can destroy the response before the client has read it. So half-close first and drain a little, bounded.
void linger_close(int fd, int stop_fd) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = Clock::now() + kLingerTimeout;
  char buf[4096];
  size_t drained = 0;
  while (drained < kMaxDrainBytes && wait_for(fd, POLLIN, stop_fd, deadline) == Wait::kReady) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      drained += static_cast<size_t>(n);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
      return;
    }
  }
}

// ---- HTTP ----

// Where the head ends (just past the empty line), accepting bare LF line ends as RFC 9112 allows; npos if not yet.
size_t head_end(std::string_view data) {
  const size_t crlf = data.find("\n\r\n");
  const size_t lf = data.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
  return crlf < lf ? crlf + 3 : lf + 2;
}

enum class HeadRead { kComplete, kTooLarge, kGone };  // kGone: closed, silent past the deadline, failed or stopping

HeadRead read_head(int fd, int stop_fd, std::string* head) {
  const auto deadline = Clock::now() + kHeadTimeout;
  char buf[2048];
  for (;;) {
    if (head_end(*head) != std::string_view::npos) return HeadRead::kComplete;
    if (head->size() >= kMaxHeadBytes) return HeadRead::kTooLarge;
    if (wait_for(fd, POLLIN, stop_fd, deadline) != Wait::kReady) return HeadRead::kGone;
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, kMaxHeadBytes - head->size()), 0);
    if (n > 0) {
      head->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
      return HeadRead::kGone;
    }
  }
}

struct RequestLine {
  std::string_view method;
  std::string_view target;
};

bool is_token(std::string_view text) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

bool is_target(std::string_view text) {
  return !text.empty() && text.front() == '/' &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

// "METHOD SP origin-form-target SP HTTP/1.x"; anything else (other versions included) is malformed.
std::optional<RequestLine> parse_request_line(std::string_view head) {
  std::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return std::nullopt;
  RequestLine out{line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1)};
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(out.method) || !is_target(out.target)) return std::nullopt;
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return std::nullopt;
  return out;
}

struct Response {
  int code = 200;
  std::string_view reason = "OK";
  std::string body;
  bool send_body = true;  // false for HEAD: same headers, no body
  bool allow = false;     // 405 names the methods that work
};

Response error_response(int code, std::string_view reason, std::string body) {
  return Response{code, reason, std::move(body), true, false};
}

std::string serialize(const Response& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.code) + " " + std::string(r.reason) + "\r\n";
  out += "Content-Type: ";
  out += r.code == 200 ? kPrometheusContentType : "text/plain; charset=utf-8";
  out += "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (r.allow) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (r.send_body) out += r.body;
  return out;
}

// Decides the answer from the head alone; sets `*wants_metrics` when the body must be the rendered metrics.
Response route(HeadRead read, std::string_view head, bool* wants_metrics) {
  if (read == HeadRead::kTooLarge) {
    return error_response(431, "Request Header Fields Too Large", "request head over 8 KiB\n");
  }
  const std::optional<RequestLine> line = parse_request_line(head.substr(0, head_end(head)));
  if (!line) return error_response(400, "Bad Request", "malformed HTTP/1.x request\n");
  if (line->target.substr(0, line->target.find('?')) != "/metrics") {
    return error_response(404, "Not Found", "only /metrics is served here\n");
  }
  if (line->method != "GET" && line->method != "HEAD") {
    Response response = error_response(405, "Method Not Allowed", "use GET or HEAD\n");
    response.allow = true;
    return response;
  }
  *wants_metrics = true;
  Response response;
  response.send_body = line->method == "GET";
  return response;
}

}  // namespace

// ---- MetricsServer ----

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen_address,
                                                            std::function<std::string()> render) {
  if (!render) return invalid_argument("metrics server on \"" + listen_address + "\": no render function");
  CKPT_ASSIGN_OR_RETURN(ListenAddress address, parse_listen_address(listen_address));
  CKPT_ASSIGN_OR_RETURN(UniqueFd listener, open_listener(address, listen_address));
  CKPT_ASSIGN_OR_RETURN(BoundAddress bound, bound_address(listener.get(), listen_address));
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop.valid()) return Status::from_errno(errno, "eventfd for metrics server " + listen_address);
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(std::move(listener), std::move(stop), bound.port, std::move(render)));
  try {
    server->thread_ = std::thread(&MetricsServer::run, server.get());
  } catch (const std::system_error& e) {  // std::thread reports EAGAIN this way; it must not escape the module
    return Status(StatusCode::kIoError, "start metrics server thread for " + listen_address + ": " + e.what(),
                  e.code().value());
  }
  CKPT_LOG(kInfo) << "metrics: serving http://" << bound.text << "/metrics";
  return server;
}

MetricsServer::MetricsServer(UniqueFd listener, UniqueFd stop, uint16_t port, std::function<std::string()> render)
    : listener_(std::move(listener)), stop_(std::move(stop)), port_(port), render_(std::move(render)) {}

MetricsServer::~MetricsServer() {
  // Adding 1 to a fresh eventfd cannot fail (only a counter at UINT64_MAX - 1 would), so the join below is bounded.
  const uint64_t one = 1;
  if (::write(stop_.get(), &one, sizeof one) != sizeof one) {
    CKPT_LOG(kError) << "metrics: write to stop eventfd: " << std::strerror(errno);
  }
  if (thread_.joinable()) thread_.join();
}

// Returns when the destructor signals the stop eventfd.
void MetricsServer::run() {
  name_this_thread("ckpt-metrics");
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno != EINTR) {
      CKPT_LOG(kWarn) << "metrics: poll on listener: " << std::strerror(errno);
      if (stop_requested(stop_.get(), kAcceptBackoffMs)) return;
    }
    if (n <= 0) continue;
    if (fds[1].revents != 0) return;
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (conn.valid()) {
      serve(conn.get());
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      // EMFILE, ENOBUFS...: the connection stays queued, so back off instead of spinning on it.
      CKPT_LOG(kWarn) << "metrics: accept on listener: " << std::strerror(errno);
      if (stop_requested(stop_.get(), kAcceptBackoffMs)) return;
    }
  }
}

void MetricsServer::serve(int fd) {
  std::string head;
  const HeadRead read = read_head(fd, stop_.get(), &head);
  if (read == HeadRead::kGone) return;  // nobody to answer (or we are stopping): just close
  bool wants_metrics = false;
  Response response = route(read, head, &wants_metrics);
  if (wants_metrics) response.body = render_();
  if (!send_all(fd, stop_.get(), serialize(response), Clock::now() + kSendTimeout)) {
    CKPT_LOG(kDebug) << "metrics: client left before the " << response.code << " response was sent";
    return;
  }
  linger_close(fd, stop_.get());
}

}  // namespace ckpt::daemon
