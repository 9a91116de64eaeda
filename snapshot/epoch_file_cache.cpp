#include "snapshot/epoch_file_cache.h"

#include "snapshot/epoch_meta.h"
#include "snapshot/format.h"

namespace ckpt::snap {
namespace f = format;

Status check_same_version(const ReadableFile& file, const EpochMeta& meta) {
  auto changed = [&] {
    return Status(StatusCode::kBusy,
                  file.path() + " changed while being read (epoch " + std::to_string(meta.header.epoch) +
                      " was compacted, removed or damaged meanwhile); run the command again, and 'ckpt verify' if "
                      "it recurs");
  };
  // Metadata built in memory (tests, the writer before commit) carries no commit record to compare.
  if (meta.file_length == 0) return Status::ok();
  if (file.size() != meta.file_length) return changed();
  uint8_t foot[f::kFooterSize];
  CKPT_RETURN_IF_ERROR(file.read(file.size() - f::kFooterSize, sizeof foot, foot));
  Result<EpochFooter> footer = decode_footer(foot, file.size(), file.path());
  if (!footer.is_ok() || footer->meta_checksum != meta.meta_checksum || footer->epoch != meta.header.epoch) {
    return changed();
  }
  return Status::ok();
}

Result<std::shared_ptr<const ReadableFile>> EpochFileCache::get(const std::string& path, const EpochMeta& meta) {
  {
    std::lock_guard lock(mu_);
    auto it = open_.find(path);
    if (it != open_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.file;
    }
  }
  // Opened outside the lock: other threads keep reading meanwhile. Two threads may open the same file at once; the
  // second one's copy is used once and dropped.
  Result<std::unique_ptr<ReadableFile>> opened = fs_.open(path);
  if (!opened.is_ok()) {
    if (opened.status().code() == StatusCode::kNotFound) {
      return Status(StatusCode::kBusy, path + " was removed while being read (epoch " +
                                           std::to_string(meta.header.epoch) + "); run the command again");
    }
    return opened.status();
  }
  std::shared_ptr<const ReadableFile> file = std::move(opened).value();
  CKPT_RETURN_IF_ERROR(check_same_version(*file, meta));
  std::lock_guard lock(mu_);
  ++opens_;
  if (open_.count(path)) return file;
  while (open_.size() >= capacity_) {
    open_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(path);
  open_.emplace(path, Slot{file, lru_.begin()});
  return file;
}

size_t EpochFileCache::opens() const {
  std::lock_guard lock(mu_);
  return opens_;
}

}  // namespace ckpt::snap
