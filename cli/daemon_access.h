// The live subcommands' way to a running ckptd: where its control socket is (docs/protocol.md), one request per
// call, and every way that can fail turned into a CliError whose exit code a script can test and whose message tells
// a newcomer what to do (start the daemon, pass --socket, join the socket's group).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli/output.h"
#include "common/unique_fd.h"

namespace ckpt::cli {

struct DaemonOptions {
  std::string socket;  // --socket; empty: $CKPT_SOCKET, else control::kDefaultSocketPath
};

// Adds the global --socket option to the app (it may also follow the subcommand: main.cpp enables fallthrough).
void add_daemon_options(CLI::App& app, DaemonOptions* options);

// --socket if given, else $CKPT_SOCKET if set and not empty, else /run/ckptd/ckptd.sock.
std::string socket_path(const DaemonOptions& options);

// One request's outcome: the reply's result, or why there is none.
struct DaemonAnswer {
  nlohmann::json result = nlohmann::json::object();  // meaningful without error
  std::optional<CliError> error;
};

// Connects, sends `cmd` with `args` and waits for the reply. `timeout` bounds the call once connected; zero waits
// as long as the daemon takes, which commands that do work need (a restore of a big VM, a snapshot behind a slow
// disk); the user can always interrupt. Failures map to exit codes as docs/cli.md, "Exit codes", lists:
//   no daemon (ENOENT, ECONNREFUSED) or no answer in time      kExitUnreachable
//   the socket's mode or the daemon's peer check refused us    kExitPermission
//   reply not_found / corruption / bad_request                 kExitNotFound / kExitCorruption / kExitUsage
//   anything else (busy, failed, a dropped connection)         kExitFailure
DaemonAnswer call_daemon(const DaemonOptions& options, std::string_view cmd,
                         nlohmann::json args = nlohmann::json::object(),
                         std::chrono::milliseconds timeout = std::chrono::milliseconds::zero());

// One connection kept for many requests (console --follow polls every few seconds; a connection per poll would
// cost the daemon a thread each time), with call_daemon's error mapping. After a transport failure the next call
// connects again.
class DaemonConnection {
 public:
  explicit DaemonConnection(const DaemonOptions& options);
  ~DaemonConnection();
  DaemonAnswer call(std::string_view cmd, nlohmann::json args, std::chrono::milliseconds timeout);
  // Whether the last call's failure was in the transport (no reply), not an error the daemon replied.
  bool last_failure_was_transport() const { return transport_failure_; }
  // A pidfd for the daemon at the other end of this connection (connecting first if need be): readable once that
  // process has exited, its files and locks closed. Invalid when it cannot be had (no daemon, a pid namespace the
  // CLI cannot see, a kernel without pidfd_open).
  UniqueFd peer_process();

 private:
  std::optional<CliError> connect();  // unless connected; the error says why not
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
  bool transport_failure_ = false;
};

// Whether anything still accepts connections on `path` (shutdown --wait polls this): false once the socket is gone
// or refuses, true for any other outcome, so a transient error does not pass for "stopped".
bool daemon_listening(const std::string& path);

}  // namespace ckpt::cli
