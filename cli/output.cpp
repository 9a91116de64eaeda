#include "cli/output.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "cli/exit_codes.h"

namespace ckpt::cli {

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument: return kExitUsage;
    case StatusCode::kNotFound: return kExitNotFound;
    case StatusCode::kCorruption: return kExitCorruption;
    case StatusCode::kPermission: return kExitPermission;
    default: return kExitFailure;
  }
}

std::string human_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char out[32];
  std::snprintf(out, sizeof out, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return out;
}

std::string human_time_ns(uint64_t unix_ns) {
  std::time_t secs = static_cast<std::time_t>(unix_ns / 1'000'000'000ull);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char out[40];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return out;
}

int report_error(const std::string& command, const Status& status) {
  std::fprintf(stderr, "ckpt %s: %s\n", command.c_str(), status.to_string().c_str());
  return exit_code_for(status);
}

std::function<void(uint64_t, uint64_t)> terminal_progress(const std::string& label) {
  if (!::isatty(STDERR_FILENO)) return {};
  return [label](uint64_t done, uint64_t total) {
    int width = 40;
    int filled = total ? static_cast<int>(done * width / total) : width;
    std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label.c_str(), filled, "########################################",
                 width - filled, "", total ? static_cast<int>(done * 100 / total) : 100);
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

}  // namespace ckpt::cli
