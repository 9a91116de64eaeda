#include "daemon/control/epoch_json.h"

namespace ckpt::control {

nlohmann::json epoch_summary_json(uint64_t epoch, const snap::CatalogEntry& entry) {
  nlohmann::json j{{"epoch", epoch}, {"path", entry.path}};
  if (!entry.meta) {
    j["error"] = entry.error.to_string();
    return j;
  }
  const snap::EpochMeta& m = *entry.meta;
  bool base = m.header.kind == snap::EpochKind::kBase;
  j["kind"] = base ? "base" : "delta";
  j["parent"] = base ? nlohmann::json(nullptr) : nlohmann::json(m.parent);
  j["timestamp_ns"] = m.timestamp_ns;
  j["tag"] = m.tag;
  j["data_pages"] = m.stats.data_pages;
  j["zero_pages"] = m.stats.zero_pages;
  j["raw_bytes"] = m.stats.raw_bytes;
  j["stored_bytes"] = m.stats.stored_bytes;
  j["file_bytes"] = m.file_length;
  j["blocks"] = m.stats.block_count;
  j["state_bytes"] = m.stats.state_bytes;
  return j;
}

}  // namespace ckpt::control
