// The Session's own phase timings, without a seam in daemon/: at debug level the epoch pipeline logs one line per
// capture ("epoch capture: N pages, M disk blocks, pause a, harvest b, copy c, rearm d, state e, resume f ms") and
// one per write ("epoch write: N pages, M disk blocks in X ms"). A bench sends stderr to a file while the Session runs and parses the lines.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::bench {

// Redirects this process's stderr (fd 2) to `path` until stop() or destruction, and sets the log level to debug
// (restored after).
class StderrToFile {
 public:
  static Result<std::unique_ptr<StderrToFile>> start(const std::string& path);
  ~StderrToFile();
  void stop();

 private:
  StderrToFile(int saved_fd, int old_level) : saved_fd_(saved_fd), old_level_(old_level) {}
  int saved_fd_;
  int old_level_;
};

struct CaptureLap {
  uint64_t pages = 0;
  double pause = 0, harvest = 0, copy = 0, rearm = 0, state = 0, resume = 0;  // ms
};
struct WriteLap {
  uint64_t pages = 0;
  double ms = 0;
};
struct DebugLaps {
  std::vector<CaptureLap> captures;
  std::vector<WriteLap> writes;
};
// The capture and write lines of the file that start in bytes [begin, end), in order.
DebugLaps parse_debug_laps(const std::string& path, uint64_t begin = 0,
                           uint64_t end = std::numeric_limits<uint64_t>::max());
// The file's current size: a position for parse_debug_laps.
uint64_t file_position(const std::string& path);

}  // namespace ckpt::bench
