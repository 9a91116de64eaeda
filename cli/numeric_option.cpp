#include "cli/numeric_option.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace ckpt::cli {

namespace {

bool all_digits(const std::string& text, bool allow_point) {
  if (text.empty()) return false;
  bool point = false;
  for (char c : text) {
    if (c == '.' && allow_point && !point) {
      point = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return text != ".";
}

std::string range_text(uint64_t min, uint64_t max) { return std::to_string(min) + ".." + std::to_string(max); }

}  // namespace

CLI::Validator whole_number(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        if (!all_digits(text, false)) return text + " is not a whole number (digits only, " + range_text(min, max) + ")";
        uint64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
          return text + " is out of range " + range_text(min, max);
        }
        text = std::to_string(value);  // CLI11 would read a leading 0 as octal: "010" is 10 here
        return {};
      },
      // Shown in --help after the type name; the full uint64 range goes without saying.
      max == std::numeric_limits<uint64_t>::max() && min == 0 ? "" : range_text(min, max));
}

CLI::Validator positive_seconds(double max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        char bound[32];
        std::snprintf(bound, sizeof bound, "%.0f", max);
        std::string range = "a number of seconds above 0, at most " + std::string(bound);
        if (!all_digits(text, true)) return text + " is not " + range;
        double value = std::strtod(text.c_str(), nullptr);
        if (!(value > 0 && value <= max)) return text + " is out of range: " + range;
        return {};
      },
      "");
}

}  // namespace ckpt::cli
