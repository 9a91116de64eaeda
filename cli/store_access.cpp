#include "cli/store_access.h"

#include <cstdio>

namespace ckpt::cli {

std::unique_ptr<snap::FileSystem> open_read_fs() { return snap::make_posix_file_system(snap::WriteEngine::kPwrite); }

Result<snap::Catalog> load_catalog(snap::FileSystem& fs, const std::string& dir) {
  auto catalog = snap::Catalog::load(fs, dir);
  if (!catalog.is_ok()) return catalog.status();
  if (catalog->empty()) return not_found(dir + " holds no committed epochs");
  return catalog;
}

std::string compression_ratio(const snap::EpochStats& stats) {
  if (stats.stored_bytes == 0) return "-";
  char out[16];
  std::snprintf(out, sizeof out, "%.2fx", static_cast<double>(stats.raw_bytes) / static_cast<double>(stats.stored_bytes));
  return out;
}

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
  j["blocks"] = m.stats.block_count;
  j["state_bytes"] = m.stats.state_bytes;
  return j;
}

}  // namespace ckpt::cli
