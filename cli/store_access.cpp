#include "cli/store_access.h"

#include "cli/output.h"

namespace ckpt::cli {

std::unique_ptr<snap::FileSystem> open_read_fs() { return snap::make_posix_file_system(snap::WriteEngine::kPwrite); }

Result<snap::Catalog> load_catalog(snap::FileSystem& fs, const std::string& dir) {
  auto catalog = snap::Catalog::load(fs, dir);
  if (!catalog.is_ok()) return catalog.status();
  if (catalog->empty()) return not_found(dir + " holds no committed epochs");
  return catalog;
}

std::string compression_ratio(uint64_t raw_bytes, uint64_t file_bytes) { return ratio_text(raw_bytes, file_bytes); }

}  // namespace ckpt::cli
