// A daemon Session run in-process, as ckptd runs it: Session::create (which writes the base), Session::run on its
// own thread (the epoch loop), and at the end request_shutdown + the final epoch. Benches call the Session's
// public commands (snapshot, stats) while it runs.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "common/status.h"
#include "daemon/config.h"
#include "daemon/session.h"

namespace ckpt::bench {

class SessionRunner {
 public:
  // `before_run`, if given, runs after Session::create (the VM exists, the base is written) and before the epoch
  // loop starts the guest; an error from it stops the session.
  static Result<std::unique_ptr<SessionRunner>> start(const daemon::DaemonConfig& config,
                                                      const std::function<Status()>& before_run = nullptr);
  ~SessionRunner();  // stops the session if stop() was not called

  daemon::Session& session() { return *session_; }
  // Shutdown: the final epoch is taken and run() returns; its status is returned here.
  Status stop();

 private:
  explicit SessionRunner(std::unique_ptr<daemon::Session> session);
  std::unique_ptr<daemon::Session> session_;
  std::thread loop_;
  Status run_status_;
};

}  // namespace ckpt::bench
