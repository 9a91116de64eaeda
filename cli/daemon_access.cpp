#include "cli/daemon_access.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "cli/exit_codes.h"
#include "daemon/control/client.h"
#include "daemon/control/protocol.h"

namespace ckpt::cli {
namespace {

namespace code = control::error_code;
using std::chrono::milliseconds;

// A Unix connect() waits only while the daemon's listen backlog is full; past this the daemon counts as not answering.
constexpr milliseconds kConnectTimeout{5000};

bool no_listener(int err) { return err == ENOENT || err == ECONNREFUSED || err == ENOTDIR; }

std::string user_name(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  std::vector<char> buf(16384);
  group gr{};
  group* found = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found) return found->gr_name;
  return std::to_string(gid);
}

// What to do when the socket file's mode keeps us out, from its owner, group and mode when we may look at them.
std::string mode_hint(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return "Run ckpt as root, or as a member of the socket's group (ckptd's socket-group setting; group ckpt when "
           "installed from the package).";
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  std::string owner = user_name(st.st_uid) + ":" + group_name(st.st_gid) + " " + mode;
  if (st.st_gid == 0) {
    return "Only root may use ckptd's socket (" + owner +
           ", no socket-group configured): run ckpt as root, or set socket-group in ckptd's config and join that "
           "group.";
  }
  std::string group = group_name(st.st_gid);
  return "Only root and members of group " + group + " may use ckptd's socket (" + owner +
         "): join the group with 'usermod -aG " + group + " $USER' (effective at your next login) or run ckpt as root.";
}

// The OS refused the connection: the socket file's mode, or a directory on the way.
CliError mode_refused(const Status& s, const std::string& path) {
  return {kExitPermission, std::string(code::kPermissionDenied), s.to_string() + ". " + mode_hint(path)};
}

// The file mode let us in but the daemon's peer check did not (docs/protocol.md, "Access"); its message says who
// is allowed, which the file's group need not tell (someone chgrp'ed it, or the mode is too open).
CliError daemon_refused(const std::string& message) {
  return {kExitPermission, std::string(code::kPermissionDenied),
          "permission denied: " + message +
              ". Run ckpt as root, or as a member of the group named by ckptd's socket-group setting."};
}

// The client failed before the daemon could answer (client.h lists the cases by code and errno).
CliError transport_error(const Status& s, const std::string& path) {
  if (s.code() == StatusCode::kPermission) return mode_refused(s, path);
  if (s.code() == StatusCode::kInvalidArgument) return {kExitUsage, std::string(code::kBadRequest), s.to_string()};
  if (no_listener(s.sys_errno())) {
    return {kExitUnreachable, "unreachable",
            "ckptd is not running: no daemon is listening on " + path +
                " (start it with 'systemctl start ckptd', or point ckpt at its socket with --socket PATH or "
                "CKPT_SOCKET)"};
  }
  switch (s.sys_errno()) {
    case ETIMEDOUT:
      return {kExitUnreachable, "unreachable",
              s.message() + " (the daemon is overloaded or stuck; 'journalctl -u ckptd' may say why)"};
    case ECONNRESET:
      return {kExitFailure, std::string(code::kFailed),
              s.message() + " (it stopped or crashed; 'journalctl -u ckptd' may say why)"};
    default:
      return {kExitFailure, std::string(code::kFailed), s.to_string()};
  }
}

// The daemon answered ok == false: its error code decides the exit code, its message says what failed.
CliError reply_error(const control::Reply& r, const std::string& cmd, const std::string& path) {
  if (r.error_code == code::kPermissionDenied) return daemon_refused(r.message);
  int exit_code = kExitFailure;
  std::string message = r.message;
  if (r.error_code == code::kNotFound) exit_code = kExitNotFound;
  else if (r.error_code == code::kCorruption) exit_code = kExitCorruption;
  else if (r.error_code == code::kBadRequest) exit_code = kExitUsage;
  else if (r.error_code == code::kUnknownCommand || r.error_code == code::kUnsupportedVersion) {
    message += " (the ckptd on " + path + " does not understand '" + cmd + "' from this ckpt: is it older?)";
  }
  return {exit_code, r.error_code, message};
}

}  // namespace

void add_daemon_options(CLI::App& app, DaemonOptions* options) {
  app.add_option("--socket", options->socket,
                 "ckptd's control socket, for the live commands (default: $CKPT_SOCKET, else " +
                     std::string(control::kDefaultSocketPath) + ")")
      ->type_name("PATH");
}

std::string socket_path(const DaemonOptions& options) {
  if (!options.socket.empty()) return options.socket;
  const char* env = std::getenv("CKPT_SOCKET");
  if (env && *env) return env;
  return control::kDefaultSocketPath;
}

DaemonAnswer call_daemon(const DaemonOptions& options, std::string_view cmd, nlohmann::json args,
                         milliseconds timeout) {
  std::string path = socket_path(options);
  DaemonAnswer answer;
  auto client = control::ControlClient::connect(path, kConnectTimeout);
  if (!client.is_ok()) {
    answer.error = transport_error(client.status(), path);
    return answer;
  }
  auto reply = client->call(cmd, std::move(args), timeout);
  if (!reply.is_ok()) {
    answer.error = transport_error(reply.status(), path);
  } else if (!reply->ok) {
    answer.error = reply_error(*reply, std::string(cmd), path);
  } else {
    answer.result = std::move(reply->result);
  }
  return answer;
}

struct DaemonConnection::Impl {
  std::optional<control::ControlClient> client;
};

DaemonConnection::DaemonConnection(const DaemonOptions& options)
    : path_(socket_path(options)), impl_(std::make_unique<Impl>()) {}

DaemonConnection::~DaemonConnection() = default;

std::optional<CliError> DaemonConnection::connect() {
  if (impl_->client) return std::nullopt;
  auto client = control::ControlClient::connect(path_, kConnectTimeout);
  if (!client.is_ok()) return transport_error(client.status(), path_);
  impl_->client.emplace(std::move(*client));
  return std::nullopt;
}

DaemonAnswer DaemonConnection::call(std::string_view cmd, nlohmann::json args, milliseconds timeout) {
  DaemonAnswer answer;
  transport_failure_ = false;
  if (std::optional<CliError> failed = connect()) {
    transport_failure_ = true;
    answer.error = std::move(failed);
    return answer;
  }
  auto reply = impl_->client->call(cmd, std::move(args), timeout);
  if (!reply.is_ok()) {
    impl_->client.reset();  // its stream position is unknown now
    transport_failure_ = true;
    answer.error = transport_error(reply.status(), path_);
  } else if (!reply->ok) {
    answer.error = reply_error(*reply, std::string(cmd), path_);
  } else {
    answer.result = std::move(reply->result);
  }
  return answer;
}

bool daemon_listening(const std::string& path) {
  auto client = control::ControlClient::connect(path, milliseconds(1000));
  return client.is_ok() || !no_listener(client.status().sys_errno());
}

UniqueFd DaemonConnection::peer_process() {
  if (connect()) return UniqueFd();
  pid_t pid = impl_->client->peer_pid();
  if (pid <= 0) return UniqueFd();
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

}  // namespace ckpt::cli
