// Lets `perf record -D -1 --control fifo:CTL,ACK` sample only one phase of a benchmark (bench/profile.sh): with
// CKPT_PERF_PHASE=<phase>, CKPT_PERF_CTL=<CTL fifo> and CKPT_PERF_ACK=<ACK fifo> set, a PerfWindow for that phase
// enables perf's events for its lifetime. Without them it does nothing.
#pragma once

namespace ckpt::bench {

class PerfWindow {
 public:
  explicit PerfWindow(const char* phase);
  ~PerfWindow();
  PerfWindow(const PerfWindow&) = delete;
  PerfWindow& operator=(const PerfWindow&) = delete;

 private:
  bool active_ = false;
};

}  // namespace ckpt::bench
