// The control socket's server: a Unix stream socket speaking JSON lines (docs/protocol.md). One thread accepts;
// every connection is served on its own thread, so a handler that blocks (a long restore) holds up only its own
// connection. Requests on one connection are answered one at a time, in order.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"
#include "common/unique_fd.h"
#include "daemon/control/message.h"
#include "daemon/control/peer_access.h"
#include "daemon/control/protocol.h"

namespace ckpt::control {

class LineReader;

// Called on the connection's thread, possibly for several connections at once: handlers must be thread-safe.
// A handler should not throw; if it does, the client gets a `failed` reply and the server goes on.
using Handler = std::function<Reply(const Request&, const PeerCredentials&)>;

struct ServerOptions {
  std::string path = kDefaultSocketPath;
  // The socket file's group (a name or a decimal gid): applied with chown, and its members pass the peer check.
  std::optional<std::string> group;
  mode_t mode = 0660;
  // Connections served at once. One more takes the place of the connection that has waited longest for a request
  // (it is closed); only when every connection is running a command is the new one told `busy` and closed.
  size_t max_connections = 16;
  // A new connection must send its first complete request line within this; a CLI sends it at once.
  std::chrono::milliseconds first_request_timeout = std::chrono::seconds(10);
  // After a reply, a connection that sends no complete request for this long is closed (so is one that stops
  // reading replies).
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(5);
  std::map<std::string, Handler> handlers;  // by command name
};

class ControlServer {
 public:
  using Handler = control::Handler;

  // Creates the socket (see docs/protocol.md, "Access") and starts accepting. Fails with kBusy if another
  // daemon is listening on the path, kInvalidArgument if something other than a socket is there.
  static Result<std::unique_ptr<ControlServer>> start(ServerOptions options);

  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, removes the socket file if it is still ours, shuts down every open connection so blocked
  // reads return, and joins all threads. A command already running is waited for (stop() cannot interrupt it)
  // and its reply is still delivered; requests read after stop() began get `busy`. Idempotent; not to be called
  // from a handler (it would join its own thread).
  void stop();

  const std::string& path() const { return options_.path; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Connection {
    UniqueFd fd;
    std::thread thread;
    bool in_command = false;  // guarded by mutex_: a handler runs or its reply is being written
    bool finished = false;    // guarded by mutex_; set by the connection's own thread as it ends
    bool evicted = false;     // guarded by mutex_: shut down to make room for a new connection
    Clock::time_point idle_since;  // guarded by mutex_: accepted, or its last reply written
  };

  ControlServer(ServerOptions options, AccessPolicy policy, UniqueFd listen_fd, UniqueFd stop_fd, ino_t ino,
                dev_t dev);

  void accept_loop();
  void accept_one();
  void reap_finished();
  bool make_room();
  void serve(Connection* connection);
  bool admit(int fd, PeerCredentials* peer);
  bool serve_next(LineReader& reader, Connection* connection, const PeerCredentials& peer,
                  std::chrono::milliseconds timeout);
  bool answer(Connection* connection, const std::string& line, const PeerCredentials& peer);
  bool deliver(int fd, const nlohmann::json& id, const Reply& reply, const PeerCredentials& peer);
  Reply dispatch(const Request& request, const PeerCredentials& peer);
  const char* begin_command(Connection* connection);  // nullptr, or why no command may start
  void end_command(Connection* connection);
  void remove_socket_file();

  ServerOptions options_;
  AccessPolicy policy_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // an eventfd: written by stop() to wake the accept loop
  ino_t socket_ino_;  // identity of the socket file we bound, so stop() never unlinks a successor's
  dev_t socket_dev_;
  std::thread accept_thread_;
  bool stopped_ = false;  // guarded by stop_mutex_
  std::mutex stop_mutex_;
  std::mutex mutex_;
  bool stopping_ = false;              // guarded by mutex_
  std::list<Connection> connections_;  // guarded by mutex_; a list so a Connection* stays valid
};

}  // namespace ckpt::control
