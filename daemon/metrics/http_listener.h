// The metrics endpoint: a minimal HTTP/1.x server for Prometheus scrapes, bound to a loopback address only (the
// daemon's metrics are not meant to leave the host; a reverse proxy or node exporter can forward them).
//
// One background thread accepts and serves one connection at a time, which is plenty for a scraper every few
// seconds. Each connection gets a bounded request head (8 KiB) and a deadline (2 s to send it, 5 s to take the
// response), so a slow, silent or hostile client delays the next one by at most that much and never hangs the
// thread. Every response closes the connection.
//   GET|HEAD /metrics -> 200, text/plain; version=0.0.4     other path -> 404     other method -> 405
//   malformed request -> 400                                 head over 8 KiB -> 431
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ckpt::daemon {

class MetricsServer {
 public:
  // Binds `listen_address` ("127.0.0.1:9100", "[::1]:9100", "localhost:9100"; port 0 picks a free port) and starts
  // serving. Any host that is not loopback (127.0.0.0/8, ::1, localhost) is refused with kInvalidArgument.
  // "localhost" binds 127.0.0.1 without consulting the resolver. `render` is called on the server thread, once per
  // GET/HEAD /metrics, so it must be safe to call concurrently with the rest of the daemon.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& listen_address,
                                                      std::function<std::string()> render);

  // Stops the thread (interrupting any connection in progress) and joins it; returns within milliseconds.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port: the ephemeral one when started with port 0.
  uint16_t port() const { return port_; }

 private:
  MetricsServer(UniqueFd listener, UniqueFd stop, uint16_t port, std::function<std::string()> render);
  void run();
  void serve(int fd);

  UniqueFd listener_;
  UniqueFd stop_;  // eventfd: becomes readable when the destructor asks the thread to exit
  uint16_t port_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace ckpt::daemon
