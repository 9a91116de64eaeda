// Leveled logging to stderr, one line per call, safe from any thread. Library code logs; it never exits.
#pragma once

#include <sstream>
#include <string_view>

namespace ckpt {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug|info|warn|error|off"; returns false on anything else.
bool parse_log_level(std::string_view text, LogLevel* out);
void log_line(LogLevel level, std::string_view message);

namespace detail {
class LogMessage {
 public:
  explicit LogMessage(LogLevel level) : level_(level) {}
  ~LogMessage() { log_line(level_, stream_.str()); }
  std::ostringstream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace ckpt

// CKPT_LOG(kInfo) << "epoch " << n << " committed";  (the stream is skipped below the current level)
#define CKPT_LOG(level)                                          \
  if (::ckpt::LogLevel::level < ::ckpt::log_level()) {           \
  } else                                                         \
    ::ckpt::detail::LogMessage(::ckpt::LogLevel::level).stream()
