#include "bench/session_runner.h"

namespace ckpt::bench {

Result<std::unique_ptr<SessionRunner>> SessionRunner::start(const daemon::DaemonConfig& config,
                                                            const std::function<Status()>& before_run) {
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<daemon::Session> session, daemon::Session::create(config));
  if (before_run) CKPT_RETURN_IF_ERROR(before_run());
  return std::unique_ptr<SessionRunner>(new SessionRunner(std::move(session)));
}

SessionRunner::SessionRunner(std::unique_ptr<daemon::Session> session) : session_(std::move(session)) {
  loop_ = std::thread([this] { run_status_ = session_->run(); });
}

Status SessionRunner::stop() {
  if (!loop_.joinable()) return run_status_;
  session_->request_shutdown();
  loop_.join();
  return run_status_;
}

SessionRunner::~SessionRunner() { (void)stop(); }

}  // namespace ckpt::bench
