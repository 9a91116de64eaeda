// Tolerant readers for the daemon's reply JSON: a missing or differently typed field reads as zero, "" or "-", so
// a daemon newer or older than this ckpt degrades the output instead of throwing out of the CLI.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace ckpt::cli {

inline const nlohmann::json& field(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}
inline double number_field(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = field(j, key);
  return v.is_number() ? v.get<double>() : 0;
}
inline uint64_t count_field(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = field(j, key);
  return v.is_number_unsigned() ? v.get<uint64_t>() : 0;
}
inline std::string text_field(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}
// An epoch number, or "-" where the daemon sent null (none yet).
inline std::string epoch_field(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = field(j, key);
  return v.is_number_unsigned() ? std::to_string(v.get<uint64_t>()) : "-";
}

}  // namespace ckpt::cli
