// ckptd's config file as load_config reads it: parse_config_text over the file's text, then apply_config_values
// turning every setting's text into the DaemonConfig. Every setting must be either applied or refused with an
// error; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> values, where;
  ckpt::Status parsed = ckpt::daemon::parse_config_text(text, "fuzz.conf", values, &where);
  if (!parsed.is_ok()) return 0;
  ckpt::daemon::DaemonConfig config;
  (void)ckpt::daemon::apply_config_values(values, config, where);
  return 0;
}
