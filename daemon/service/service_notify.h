// Tells systemd (Type=notify) where the daemon is in its life: ready, reloading, stopping, and a one-line status
// that `systemctl status ckptd` shows. A thin wrapper over libsystemd's sd_notify(3).
//
// Outside systemd (NOTIFY_SOCKET unset or empty) every call does nothing, so the daemon calls these unconditionally.
// Notification is advisory: a failed send is logged once at warn and never reaches the caller, because a daemon that
// checkpoints VMs must not stop doing so over a status line. (Missing READY=1 is still noticed: systemd times the
// start out and says so in the journal.)
//
// NOTIFY_SOCKET is read on every call and never unset (sd_notify's unset_environment is 0): the daemon notifies many
// times over its life (ready, each reload, stopping), and unsetting after the first call would silence the rest.
// ckptd starts no child processes; one that does should drop NOTIFY_SOCKET from the child's environment instead.
//
// Thread safety: any thread may call any method at any time; each call is one datagram on its own socket.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

namespace ckpt::daemon {

class ServiceNotifier {
 public:
  // systemd ignores a whole notification datagram longer than PIPE_BUF (4096 bytes), so STATUS= texts are cut to
  // this many bytes (at a UTF-8 character boundary: systemd also drops a STATUS= that is not valid UTF-8).
  static constexpr size_t kMaxStatusBytes = 1024;

  ServiceNotifier() = default;
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // "READY=1\nSTATUS=<status>\nMAINPID=<getpid()>": startup is complete (the control socket accepts connections).
  void ready(std::string_view status);
  // "STATUS=<status>": free-form, one line; newlines in `status` become spaces.
  void status(std::string_view status);
  // "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now>": a SIGHUP reload has begun; follow with reloaded().
  // systemd >= 253 (Type=notify-reload) requires MONOTONIC_USEC in the same message; 252 ignores the field.
  void reloading();
  // "READY=1": the reload is done (successfully or not; say which with status()).
  void reloaded();
  // "STOPPING=1\nSTATUS=<status>": shutdown has begun (e.g. the final epoch is being taken).
  void stopping(std::string_view status);

  // Whether NOTIFY_SOCKET is set (non-empty), i.e. whether the calls above send anything.
  bool enabled() const;

 private:
  void send(const std::string& message);

  std::atomic<bool> warned_{false};
};

}  // namespace ckpt::daemon
