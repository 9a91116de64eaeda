// ckptd: owns one VM and checkpoints it (daemon/session.h), serves the control socket (docs/protocol.md), and runs
// as a systemd Type=notify service (packaging/systemd/ckptd.service). Signals: SIGTERM/SIGINT take a final epoch and
// stop; SIGHUP rereads the config and applies the settings that are safe to change.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "common/process_limits.h"
#include "daemon/config.h"
#include "daemon/control/server.h"
#include "daemon/handlers.h"
#include "daemon/metrics/http_listener.h"
#include "daemon/metrics/prometheus.h"
#include "daemon/service/service_notify.h"
#include "daemon/session.h"

namespace {

using namespace ckpt;
using namespace ckpt::daemon;

// Signals are blocked in every thread and taken synchronously here, so no handler runs in a random thread.
class SignalThread {
 public:
  SignalThread(std::function<void()> on_stop, std::function<void()> on_reload, std::function<void()> on_tick)
      : thread_([=, this] { loop(on_stop, on_reload, on_tick); }) {}
  ~SignalThread() {
    done_ = true;
    thread_.join();
  }
  static void block_signals() {
    sigset_t set = handled();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a CLI that goes away mid-reply must not kill the daemon
  }

 private:
  static sigset_t handled() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
  }
  void loop(std::function<void()> on_stop, std::function<void()> on_reload, std::function<void()> on_tick) {
    name_this_thread("ckpt-signals");
    sigset_t set = handled();
    timespec tick{0, 250 * 1000 * 1000};
    int ticks = 0;
    while (!done_) {
      int sig = sigtimedwait(&set, nullptr, &tick);
      if (sig == SIGTERM || sig == SIGINT) on_stop();
      if (sig == SIGHUP) on_reload();
      if (++ticks % 8 == 0) on_tick();  // every ~2 s
    }
  }
  std::atomic<bool> done_{false};
  std::thread thread_;
};

std::string status_line(const DaemonStats& s) {
  char line[256];
  std::snprintf(line, sizeof line, "%s: epoch %s, %llu committed, pause p99 %.2f ms, %llu errors", s.state.c_str(),
                s.last_committed_epoch ? std::to_string(*s.last_committed_epoch).c_str() : "-",
                static_cast<unsigned long long>(s.epochs_committed), s.pause_p99_ms,
                static_cast<unsigned long long>(s.errors_total));
  return line;
}

void reload(int argc, char** argv, LoadedConfig& current, Session& session, ServiceNotifier& notifier) {
  notifier.reloading();
  int exit_code = -1;
  Result<LoadedConfig> next = load_config(argc, argv, &exit_code);
  if (!next.is_ok()) {
    CKPT_LOG(kError) << "SIGHUP: keeping the current settings: " << next.status().to_string();
  } else {
    ConfigChanges changes = diff_config(current, *next);
    for (const std::string& key : changes.need_restart) {
      CKPT_LOG(kWarn) << "SIGHUP: " << key << " changed; it applies at the next restart";
    }
    for (const std::string& key : changes.reloadable) {
      CKPT_LOG(kInfo) << "SIGHUP: " << key << " = " << next->values.at(key);
    }
    session.reload(next->config);
    for (const std::string& key : changes.reloadable) current.values[key] = next->values[key];
  }
  notifier.reloaded();
}

Result<std::unique_ptr<control::ControlServer>> start_control(const DaemonConfig& config, Session& session,
                                                             std::function<void()> shutdown) {
  control::ServerOptions options;
  options.path = config.socket_path;
  if (!config.socket_group.empty()) options.group = config.socket_group;
  options.handlers = make_handlers(session, std::move(shutdown));
  return control::ControlServer::start(std::move(options));
}

// Start failed before the guest ran. invalid_argument means a setting was refused (resume settings that differ from
// the store's VM, a store holding epochs without resume, a metrics address that is not loopback, something that
// is not a socket at the socket path): a config error, exit 2. Anything else is a runtime failure, exit 1.
int start_failed(const Status& status) {
  CKPT_LOG(kError) << status.to_string();
  return status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
}

int run(int argc, char** argv) {
  int exit_code = -1;
  Result<LoadedConfig> loaded = load_config(argc, argv, &exit_code);
  if (exit_code >= 0) return exit_code;
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "ckptd: %s\n", loaded.status().to_string().c_str());
    return kExitUsage;
  }
  const DaemonConfig& config = loaded->config;
  set_log_level(config.log_level);
  ServiceNotifier notifier;
  notifier.status("starting: building the VM and its base epoch");
  Result<std::unique_ptr<Session>> session = Session::create(config);
  if (!session.is_ok()) return start_failed(session.status());
  Session& s = **session;
  auto shutdown = [&] {
    notifier.stopping("taking the final epoch");
    s.request_shutdown();
  };
  auto control = start_control(config, s, shutdown);
  if (!control.is_ok()) return start_failed(control.status());
  std::unique_ptr<MetricsServer> metrics;
  if (!config.metrics_listen.empty()) {
    auto started = MetricsServer::start(config.metrics_listen, [&] { return render_prometheus(s.stats()); });
    if (!started.is_ok()) return start_failed(started.status());
    metrics = std::move(*started);
  }
  SignalThread signals(shutdown, [&] { reload(argc, argv, *loaded, s, notifier); },
                       [&] { notifier.status(status_line(s.stats())); });
  DaemonStats at_start = s.stats();
  CKPT_LOG(kInfo) << "ckptd ready: " << at_start.backend << " backend, " << at_start.tracking << " tracking, "
                  << (at_start.memory_bytes >> 20) << " MiB, " << at_start.vcpus << " vCPUs; store "
                  << config.store_dir << "; socket " << config.socket_path;
  notifier.ready(status_line(at_start));
  Status ran = s.run();
  notifier.stopping(ran.is_ok() ? "final epoch committed" : "final epoch failed");
  (*control)->stop();
  if (!ran.is_ok()) {
    CKPT_LOG(kError) << ran.to_string();
    return kExitRuntime;
  }
  CKPT_LOG(kInfo) << "ckptd stopped: " << status_line(s.stats());
  return kExitClean;
}

}  // namespace

int main(int argc, char** argv) {
  SignalThread::block_signals();  // before any thread exists, so every thread inherits the mask
  ckpt::raise_open_file_limit();
  return run(argc, argv);
}
