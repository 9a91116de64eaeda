// Offline access to a store directory for the read-only subcommands, and the summaries they print.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"

namespace ckpt::cli {

std::unique_ptr<snap::FileSystem> open_read_fs();
// Loads the catalog; a directory without epoch files is reported as not found rather than as an empty store.
Result<snap::Catalog> load_catalog(snap::FileSystem& fs, const std::string& dir);
std::string compression_ratio(const snap::EpochStats& stats);  // raw / stored, "4.2x"; "-" when nothing stored
nlohmann::json epoch_summary_json(uint64_t epoch, const snap::CatalogEntry& entry);

}  // namespace ckpt::cli
