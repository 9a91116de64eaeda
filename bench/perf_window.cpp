#include "bench/perf_window.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace ckpt::bench {
namespace {

// Sends one command to perf and waits for its "ack", so that sampling has started (or stopped) when this returns.
bool tell_perf(const char* command) {
  const char* ctl = std::getenv("CKPT_PERF_CTL");
  const char* ack = std::getenv("CKPT_PERF_ACK");
  if (ctl == nullptr || ack == nullptr) return false;
  int out = ::open(ctl, O_WRONLY | O_CLOEXEC);
  int in = ::open(ack, O_RDONLY | O_CLOEXEC);
  bool ok = out >= 0 && in >= 0;
  if (ok) ok = ::write(out, command, std::strlen(command)) == static_cast<ssize_t>(std::strlen(command));
  char reply[8] = {};
  if (ok) ok = ::read(in, reply, sizeof reply - 1) > 0;
  if (out >= 0) ::close(out);
  if (in >= 0) ::close(in);
  if (!ok) std::cerr << "perf window: could not send '" << command << "' to " << ctl << "\n";
  return ok;
}

}  // namespace

PerfWindow::PerfWindow(const char* phase) {
  const char* wanted = std::getenv("CKPT_PERF_PHASE");
  if (wanted != nullptr && std::strcmp(wanted, phase) == 0) active_ = tell_perf("enable\n");
}

PerfWindow::~PerfWindow() {
  if (active_) tell_perf("disable\n");
}

}  // namespace ckpt::bench
