// ckpt shutdown [--wait [--timeout SECONDS]] [--json]: asks the daemon to take a final epoch (guest paused, so it
// holds the guest's last memory) and exit, like SIGTERM does (live). The reply comes at once; --wait then waits for
// the daemon's process to end (its store lock released with it), for scripts that go on to read the store or
// restart the daemon.
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/numeric_option.h"
#include "cli/output.h"
#include "daemon/control/protocol.h"

namespace ckpt::cli {

namespace {

// A day: a final epoch that takes longer is a hung daemon, and a bound keeps the deadline arithmetic finite.
constexpr double kMaxTimeoutS = 86400;

struct ShutdownArgs {
  bool wait = false;
  double timeout_s = 120;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

// Whether the daemon is gone by `deadline`. With a pidfd: once its process has exited, which is after the kernel
// closed its files and released the store's writer lock. Without one: once its socket refuses connections, which
// comes a little earlier (the daemon stops listening before it closes the store).
bool wait_until_gone(const UniqueFd& process, const std::string& path, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (process.valid()) {
      pollfd pfd{process.get(), POLLIN, 0};
      int n = ::poll(&pfd, 1, static_cast<int>(std::clamp<long long>(left, 0, 1000)));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return wait_until_gone(UniqueFd(), path, deadline);  // poll itself failed
    } else {
      if (!daemon_listening(path)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp<long long>(left, 0, 100)));
    }
    if (Clock::now() >= deadline) return false;
  }
}

int run_shutdown(const DaemonOptions& daemon, const ShutdownArgs& args) {
  std::string path = socket_path(daemon);
  Clock::time_point start = Clock::now();
  // The process at the other end of the connection that asks, taken before the request: once the daemon has
  // exited its pid could belong to another process.
  DaemonConnection connection(daemon);
  UniqueFd process = args.wait ? connection.peer_process() : UniqueFd();
  DaemonAnswer a = connection.call("shutdown", nlohmann::json::object(), std::chrono::seconds(30));
  // busy: the daemon is already stopping (a second shutdown, SIGTERM); --wait still has something to wait for.
  bool already_stopping = a.error && a.error->code == control::error_code::kBusy;
  if (a.error && !(args.wait && already_stopping)) return report("shutdown", *a.error, args.json);
  if (!args.wait) {
    if (args.json) print_json({{"stopping", true}, {"stopped", false}});
    else std::printf("ckptd on %s is stopping: it takes a final epoch, then exits\n", printable(path).c_str());
    return kExitOk;
  }
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.timeout_s));
  if (!wait_until_gone(process, path, deadline)) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.0f s", args.timeout_s);
    return report("shutdown",
                  {kExitFailure, "timeout",
                   "ckptd on " + path + " is still running " + seconds + " after the shutdown request"},
                  args.json);
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (args.json) print_json({{"stopping", true}, {"stopped", true}, {"seconds", seconds}});
  else std::printf("ckptd on %s stopped after %.1f s\n", printable(path).c_str(), seconds);
  return kExitOk;
}

}  // namespace

void add_shutdown_command(CLI::App& app, const DaemonOptions& daemon, int* exit_code) {
  auto* cmd = app.add_subcommand("shutdown", "Ask the daemon to take a final epoch and exit");
  cmd->footer(
      "Examples:\n"
      "  ckpt shutdown\n"
      "  ckpt shutdown --wait --timeout 60      return once the daemon is gone\n");
  auto args = std::make_shared<ShutdownArgs>();
  auto* wait = cmd->add_flag("--wait", args->wait, "Return only once the daemon has exited (its store unlocked)");
  cmd->add_option("--timeout", args->timeout_s, "With --wait: give up after this many seconds")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(positive_seconds(kMaxTimeoutS))
      ->needs(wait);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([=, &daemon] { *exit_code = run_shutdown(daemon, *args); });
}

}  // namespace ckpt::cli
