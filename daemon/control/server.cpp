#include "daemon/control/unix_address.h"
#include "daemon/control/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <system_error>

#include "common/log.h"
#include "common/thread_name.h"
#include "daemon/control/line_reader.h"

namespace ckpt::control {
namespace {

constexpr int kListenBacklog = 64;

struct BoundSocket {
  UniqueFd fd;
  ino_t ino = 0;
  dev_t dev = 0;
};

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p. Directories we create get 0755 explicitly: mkdir's mode passes through the umask, and a 0700
// directory would lock the socket's group out however the socket itself is set.
Status make_directories(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? Status::ok() : invalid_argument(dir + " is not a directory");
  }
  if (errno != ENOENT) return Status::from_errno(errno, "stat " + dir);
  CKPT_RETURN_IF_ERROR(make_directories(parent_of(dir)));
  if (::mkdir(dir.c_str(), 0755) != 0) {
    return errno == EEXIST ? Status::ok() : Status::from_errno(errno, "mkdir " + dir);
  }
  if (::chmod(dir.c_str(), 0755) != 0) return Status::from_errno(errno, "chmod 0755 " + dir);
  return Status::ok();
}

// Whatever is at `path` goes only if it is a socket nobody listens on (left by a daemon that died).
Status remove_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? Status::ok() : Status::from_errno(errno, "lstat " + path);
  if (!S_ISSOCK(st.st_mode)) return invalid_argument(path + " exists and is not a socket; refusing to replace it");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe.valid()) return Status::from_errno(errno, "socket(AF_UNIX)");
  // EAGAIN: the listener's backlog is full, so it is very much alive.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN) {
    return Status(StatusCode::kBusy, "another ckptd is listening on " + path);
  }
  if (errno != ECONNREFUSED && errno != ENOENT) return Status::from_errno(errno, "probe the existing socket " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::from_errno(errno, "unlink stale socket " + path);
  CKPT_LOG(kInfo) << "control: removed the stale socket " << path;
  return Status::ok();
}

Status set_permissions(const std::string& path, mode_t mode, std::optional<gid_t> group) {
  if (::chmod(path.c_str(), mode) != 0) return Status::from_errno(errno, "chmod " + path);
  if (group && ::lchown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return Status::from_errno(errno, "chown " + path + " to group " + std::to_string(*group));
  }
  return Status::ok();
}

// Mode and group go on between bind and listen: connect() is refused until listen(), so no peer ever reaches the
// socket while it still has the umask's mode (chmod is the only way: a socket file cannot be opened for fchmod).
Status finish_socket(int fd, const std::string& path, mode_t mode, std::optional<gid_t> group, struct stat* bound) {
  if (::lstat(path.c_str(), bound) != 0) return Status::from_errno(errno, "lstat " + path + " after bind");
  CKPT_RETURN_IF_ERROR(set_permissions(path, mode, group));
  if (::listen(fd, kListenBacklog) != 0) return Status::from_errno(errno, "listen on " + path);
  return Status::ok();
}

Result<BoundSocket> create_socket(const std::string& path, mode_t mode, std::optional<gid_t> group) {
  CKPT_ASSIGN_OR_RETURN(sockaddr_un addr, socket_address(path));
  CKPT_RETURN_IF_ERROR(make_directories(parent_of(path)));
  CKPT_RETURN_IF_ERROR(remove_stale_socket(path, addr));
  // Non-blocking: a client that gives up between poll() and accept() must not leave the accept loop stuck.
  BoundSocket bound{UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0))};
  if (!bound.fd.valid()) return Status::from_errno(errno, "socket(AF_UNIX)");
  if (::bind(bound.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EADDRINUSE) return Status::from_errno(errno, "bind " + path);
    return Status(StatusCode::kBusy, "bind " + path + ": another process created it meanwhile", EADDRINUSE);
  }
  struct stat st {};
  if (Status status = finish_socket(bound.fd.get(), path, mode, group, &st); !status.is_ok()) {
    ::unlink(path.c_str());  // ours: bind just created it
    return status;
  }
  bound.ino = st.st_ino;
  bound.dev = st.st_dev;
  return bound;
}

// Over the connection cap: one reply, then close. MSG_DONTWAIT because this runs on the accept thread.
void refuse_busy(int fd, size_t max_connections) {
  std::string line = encode_reply(nullptr, Reply::error(error_code::kBusy, "too many control connections (" +
                                                                                std::to_string(max_connections) +
                                                                                " open); try again later"));
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::string describe_peer(const PeerCredentials& peer) {
  return "pid " + std::to_string(peer.pid) + " uid " + std::to_string(peer.uid) + " gid " + std::to_string(peer.gid);
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::start(ServerOptions options) {
  if (options.max_connections == 0) return invalid_argument("control server: max_connections must be at least 1");
  AccessPolicy policy{::geteuid(), std::nullopt};
  if (options.group) {
    CKPT_ASSIGN_OR_RETURN(policy.group, lookup_group(*options.group));
  }
  UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd.valid()) return Status::from_errno(errno, "eventfd");
  CKPT_ASSIGN_OR_RETURN(BoundSocket bound, create_socket(options.path, options.mode, policy.group));
  std::unique_ptr<ControlServer> server(new ControlServer(std::move(options), policy, std::move(bound.fd),
                                                          std::move(stop_fd), bound.ino, bound.dev));
  try {
    server->accept_thread_ = std::thread(&ControlServer::accept_loop, server.get());
  } catch (const std::system_error& e) {
    server->stop();  // removes the socket file
    return Status(StatusCode::kIoError, "control server: start the accept thread: " + std::string(e.what()),
                  e.code().value());
  }
  CKPT_LOG(kInfo) << "control: listening on " << server->path();
  return server;
}

ControlServer::ControlServer(ServerOptions options, AccessPolicy policy, UniqueFd listen_fd, UniqueFd stop_fd,
                             ino_t ino, dev_t dev)
    : options_(std::move(options)),
      policy_(policy),
      listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)),
      socket_ino_(ino),
      socket_dev_(dev) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  if (stopped_) return;
  stopped_ = true;
  uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof one);
  if (accept_thread_.joinable()) accept_thread_.join();
  // Unlisted first, so clients connecting from now on see ENOENT rather than a socket nobody accepts on.
  remove_socket_file();
  listen_fd_.reset();
  std::list<Connection> all;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // Idle connections: both directions, which wakes a blocked read (EOF). One running a command: only reads, so
    // its reply still goes out (the CLI's `shutdown` gets its answer) and the read after it sees EOF.
    for (Connection& c : connections_) ::shutdown(c.fd.get(), c.in_command ? SHUT_RD : SHUT_RDWR);
    all.splice(all.end(), connections_);  // nodes keep their addresses: threads still hold Connection*
  }
  for (Connection& c : all) {
    if (c.thread.joinable()) c.thread.join();
  }
}

void ControlServer::remove_socket_file() {
  const std::string& path = options_.path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode) || st.st_ino != socket_ino_ || st.st_dev != socket_dev_) {
    CKPT_LOG(kInfo) << "control: " << path << " is no longer our socket; leaving it in place";
    return;
  }
  if (::unlink(path.c_str()) != 0) {
    CKPT_LOG(kWarn) << "control: unlink " << path << ": " << errno_text(errno);
  }
}

void ControlServer::accept_loop() {
  name_this_thread("ckpt-control");
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      CKPT_LOG(kError) << "control: poll on " << path() << ": " << errno_text(errno);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // ENOMEM is transient; do not spin
      continue;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents != 0) accept_one();
  }
}

void ControlServer::accept_one() {
  UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    if (err == EAGAIN || err == EINTR || err == ECONNABORTED) return;
    CKPT_LOG(kWarn) << "control: accept on " << path() << ": " << errno_text(err);
    // Out of fds or memory: the listen socket stays readable, so back off instead of spinning.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return;
  }
  reap_finished();
  std::lock_guard lock(mutex_);
  if (!make_room()) {
    refuse_busy(fd.get(), options_.max_connections);
    return;
  }
  Connection& connection = connections_.emplace_back();
  connection.fd = std::move(fd);
  connection.idle_since = Clock::now();
  try {
    connection.thread = std::thread(&ControlServer::serve, this, &connection);
  } catch (const std::system_error& e) {
    CKPT_LOG(kError) << "control: cannot start a connection thread: " << e.what();
    refuse_busy(connection.fd.get(), options_.max_connections);
    connections_.pop_back();
  }
}

// With mutex_ held, on the accept thread: whether a new connection may be served. At the cap, the connection that
// has waited longest for a request is shut down to make room (its thread sees EOF and ends), so idle connections,
// however many and whoever opened them, never keep a new client out. Only when every connection is running a
// command is there no room. Evicted connections whose threads have not ended yet do not count against the cap,
// but their number is bounded: at most max_connections of them besides the live ones.
bool ControlServer::make_room() {
  size_t live = 0;
  Connection* longest_idle = nullptr;
  for (Connection& c : connections_) {
    if (c.finished || c.evicted) continue;
    ++live;
    if (!c.in_command && (!longest_idle || c.idle_since < longest_idle->idle_since)) longest_idle = &c;
  }
  if (live < options_.max_connections) return true;
  if (!longest_idle || connections_.size() >= 2 * options_.max_connections) return false;
  auto idle_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - longest_idle->idle_since).count();
  CKPT_LOG(kInfo) << "control: " << live << " connections open on " << path()
                  << "; closing the one idle longest (" << idle_ms << " ms) for a new one";
  longest_idle->evicted = true;
  ::shutdown(longest_idle->fd.get(), SHUT_RDWR);
  return true;
}

// Joins the threads of connections that ended and closes their fds. Runs on the accept thread, so the count it
// leaves behind is what the cap is checked against.
void ControlServer::reap_finished() {
  std::list<Connection> done;
  {
    std::lock_guard lock(mutex_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto next = std::next(it);
      if (it->finished) done.splice(done.end(), connections_, it);
      it = next;
    }
  }
  for (Connection& c : done) c.thread.join();
}

void ControlServer::serve(Connection* connection) {
  name_this_thread("ckpt-client");
  int fd = connection->fd.get();
  PeerCredentials peer;
  if (admit(fd, &peer)) {
    LineReader reader(fd, kMaxMessageBytes);
    // The first request has a short deadline: a connection that sends nothing is not a client yet.
    std::chrono::milliseconds timeout = options_.first_request_timeout;
    while (serve_next(reader, connection, peer, timeout)) timeout = options_.idle_timeout;
  }
  // Shut down, not close: the fd number stays ours until it is unlisted, so stop() cannot hit a reused fd.
  ::shutdown(fd, SHUT_RDWR);
  std::lock_guard lock(mutex_);
  connection->finished = true;
}

bool ControlServer::admit(int fd, PeerCredentials* peer) {
  auto credentials = peer_credentials(fd);
  if (!credentials) {
    CKPT_LOG(kWarn) << "control: dropping a connection on " << path() << ": " << credentials.status().to_string();
    return false;
  }
  *peer = *credentials;
  if (policy_.allows(*peer)) {
    CKPT_LOG(kDebug) << "control: connection from " << describe_peer(*peer);
    return true;
  }
  CKPT_LOG(kWarn) << "control: refused " << describe_peer(*peer) << " on " << path() << ": allowed are "
                  << policy_.describe();
  Reply reply = Reply::error(error_code::kPermissionDenied, "uid " + std::to_string(peer->uid) + " may not use " +
                                                                path() + "; allowed are " + policy_.describe());
  (void)write_all(fd, encode_reply(nullptr, reply), options_.idle_timeout);
  return false;
}

// Reads and answers one request. False when the connection is done.
bool ControlServer::serve_next(LineReader& reader, Connection* connection, const PeerCredentials& peer,
                               std::chrono::milliseconds timeout) {
  int fd = connection->fd.get();
  LineReader::ReadResult read = reader.read_line(timeout);
  switch (read.outcome) {
    case LineReader::Outcome::kLine:
      return answer(connection, read.line, peer);
    case LineReader::Outcome::kTooLong: {
      Reply reply = Reply::error(error_code::kMessageTooLarge, "request line exceeds " +
                                                                   std::to_string(kMaxMessageBytes) +
                                                                   " bytes; closing the connection");
      (void)write_all(fd, encode_reply(nullptr, reply), options_.idle_timeout);
      return false;
    }
    case LineReader::Outcome::kTimeout:
      CKPT_LOG(kInfo) << "control: closing the connection of " << describe_peer(peer) << ": no request for "
                      << timeout.count() << " ms";
      return false;
    case LineReader::Outcome::kError:
      CKPT_LOG(kWarn) << "control: read from " << describe_peer(peer) << ": " << errno_text(read.sys_errno);
      return false;
    case LineReader::Outcome::kEof:
      return false;
  }
  return false;
}

// Marks the connection as running a command, unless the server is stopping or the connection was evicted (its
// request arrived just as it was chosen): then no new command starts.
const char* ControlServer::begin_command(Connection* connection) {
  std::lock_guard lock(mutex_);
  if (stopping_) return "the daemon is shutting down";
  if (connection->evicted) return "too many control connections: this one was idle longest and is closed";
  connection->in_command = true;
  return nullptr;
}

void ControlServer::end_command(Connection* connection) {
  std::lock_guard lock(mutex_);
  connection->in_command = false;
  connection->idle_since = Clock::now();
}

bool ControlServer::answer(Connection* connection, const std::string& line, const PeerCredentials& peer) {
  nlohmann::json id;
  auto request = parse_request(line, &id);
  Reply reply;
  if (!request) {
    reply = reply_for_parse_error(request.status());
  } else if (const char* refused = begin_command(connection)) {
    reply = Reply::error(error_code::kBusy, refused);
  } else {
    reply = dispatch(*request, peer);
  }
  bool delivered = deliver(connection->fd.get(), id, reply, peer);
  end_command(connection);
  return delivered;
}

bool ControlServer::deliver(int fd, const nlohmann::json& id, const Reply& reply, const PeerCredentials& peer) {
  std::string encoded = encode_reply(id, reply);
  // The client refuses lines over kMaxReplyBytes and would lose its place in the stream; say so instead.
  if (encoded.size() > kMaxReplyBytes) {
    encoded = encode_reply(id, Reply::error(error_code::kFailed, "the reply is " + std::to_string(encoded.size()) +
                                                                     " bytes, over the protocol's limit of " +
                                                                     std::to_string(kMaxReplyBytes)));
  }
  Status sent = write_all(fd, encoded, options_.idle_timeout);
  if (!sent.is_ok()) {
    CKPT_LOG(kInfo) << "control: reply to " << describe_peer(peer) << " not delivered: " << sent.to_string();
    return false;
  }
  return true;
}

Reply ControlServer::dispatch(const Request& request, const PeerCredentials& peer) {
  auto handler = options_.handlers.find(request.cmd);
  if (handler == options_.handlers.end()) {
    return Reply::error(error_code::kUnknownCommand, "unknown command \"" + request.cmd + "\"");
  }
  // Handlers should not throw; one that does fails its request, not the daemon.
  try {
    return handler->second(request, peer);
  } catch (const std::exception& e) {
    CKPT_LOG(kError) << "control: handler for \"" << request.cmd << "\" threw: " << e.what();
    return Reply::error(error_code::kFailed, "command \"" + request.cmd + "\" failed: " + e.what());
  } catch (...) {
    CKPT_LOG(kError) << "control: handler for \"" << request.cmd << "\" threw a non-standard exception";
    return Reply::error(error_code::kFailed, "command \"" + request.cmd + "\" failed with an unknown error");
  }
}

}  // namespace ckpt::control
