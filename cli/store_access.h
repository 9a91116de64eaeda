// Offline access to a store directory for the read-only subcommands, and the summaries they print. An epoch's JSON
// summary is daemon/control/epoch_json.h's, shared with the daemon's list command so live and offline agree.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"

namespace ckpt::cli {

std::unique_ptr<snap::FileSystem> open_read_fs();
// Loads the catalog; a directory without epoch files is reported as not found rather than as an empty store.
Result<snap::Catalog> load_catalog(snap::FileSystem& fs, const std::string& dir);
// Guest bytes per byte of epoch file (data, metadata and footer: what reached the store), "4.20x"; "-" for none.
std::string compression_ratio(uint64_t raw_bytes, uint64_t file_bytes);

}  // namespace ckpt::cli
