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

std::string human_duration(double seconds) {
  char out[48];
  if (!(seconds >= 0)) seconds = 0;  // also catches NaN
  if (seconds < 60) {
    std::snprintf(out, sizeof out, "%.1f s", seconds);
    return out;
  }
  auto whole = static_cast<unsigned long long>(seconds);
  unsigned long long d = whole / 86400, h = whole / 3600 % 24, m = whole / 60 % 60, s = whole % 60;
  if (d > 0) std::snprintf(out, sizeof out, "%llud %02lluh", d, h);
  else if (h > 0) std::snprintf(out, sizeof out, "%lluh %02llum", h, m);
  else std::snprintf(out, sizeof out, "%llum %02llus", m, s);
  return out;
}

std::string group_digits(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string ratio_text(uint64_t raw, uint64_t stored) {
  if (stored == 0) return "-";
  double ratio = static_cast<double>(raw) / static_cast<double>(stored);
  char out[32];
  // Three significant digits at most: "4.20x", "42.5x", "212x".
  std::snprintf(out, sizeof out, ratio < 10 ? "%.2fx" : ratio < 100 ? "%.1fx" : "%.0fx", ratio);
  return out;
}

namespace {

// The length of the valid UTF-8 sequence at the start of `s` (2..4 bytes) and its code point, or 0 when the bytes
// there are not one (a stray continuation byte, an overlong form, a surrogate, a truncated sequence).
size_t utf8_sequence(std::string_view s, uint32_t* code_point) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(0);
  size_t length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 0;
  if (lead >= 0xF5) length = 0;
  if (length == 0 || s.size() < length) return 0;
  uint32_t cp = lead & (0xFF >> (length + 1));
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3F);
  }
  static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return length;
}

// C1 controls (U+009B is CSI, a whole escape sequence in one character) and the bidirectional embeddings, overrides
// and isolates that make text display in another order than it is stored.
bool deceptive_code_point(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0x2028 || cp == 0x2029;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char buf[16];
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      default: break;
    }
    uint32_t cp = 0;
    size_t length = c >= 0x80 ? utf8_sequence(text.substr(i), &cp) : 0;
    if (length == 0) {  // an ASCII control, DEL, or a byte that is not valid UTF-8
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else if (deceptive_code_point(cp)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
      i += length;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

CliError error_from_status(const Status& status) {
  // The daemon's protocol vocabulary (daemon/control/protocol.h), so live and offline failures read alike.
  const char* code = "failed";
  switch (status.code()) {
    case StatusCode::kInvalidArgument: code = "bad_request"; break;
    case StatusCode::kNotFound: code = "not_found"; break;
    case StatusCode::kCorruption: code = "corruption"; break;
    case StatusCode::kPermission: code = "permission_denied"; break;
    case StatusCode::kBusy: code = "busy"; break;
    default: break;
  }
  return {exit_code_for(status), code, status.to_string()};
}

int report(const std::string& command, const CliError& error, bool json) {
  // One line whatever the message holds: it may quote a tag, a path or a daemon's text.
  std::fprintf(stderr, "ckpt %s: %s\n", command.c_str(), printable(error.message).c_str());
  if (json) print_json({{"error", {{"code", error.code}, {"message", error.message}}}});
  return error.exit_code;
}

int report_error(const std::string& command, const Status& status, bool json) {
  return report(command, error_from_status(status), json);
}

void print_json(const nlohmann::json& j) {
  // Replace invalid UTF-8 (a raw file name in a message) instead of throwing from dump().
  std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
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
