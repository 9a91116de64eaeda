// What a store directory holds: the committed epochs (their metadata) and how they chain. Read-only; readers may
// load a catalog while a writer appends epochs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

struct CatalogEntry {
  std::string path;
  std::shared_ptr<const EpochMeta> meta;  // null when the file failed to load; then `error` says why
  Status error;
};

class Catalog {
 public:
  // Lists `dir` and reads every committed epoch file's metadata. A file that fails its checks is kept as an entry
  // with an error (verify reports it; a chain through it cannot be restored); it does not fail the load.
  static Result<Catalog> load(FileSystem& fs, const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::map<uint64_t, CatalogEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  std::optional<uint64_t> newest() const;
  // The highest floor any base declares: epochs below it are obsolete (left over from a compaction). Asked for by
  // every new epoch, so it looks at the bases only (a store holds few), not at every epoch.
  uint64_t floor() const;
  // Guest size and store id, from the newest readable epoch; 0 when there is none.
  uint64_t guest_pages() const;
  uint64_t store_id() const;

  // The epochs a restore of `epoch` reads: `epoch` first, then its parent, down to a base. Fails naming the first
  // missing or unreadable link, a cycle, or a link to another store or guest size.
  Result<std::vector<std::shared_ptr<const EpochMeta>>> chain(uint64_t epoch) const;
  std::string path_of(uint64_t epoch) const;

  // Called by the writer after it commits (or replaces) an epoch, and after it removes one.
  void add(uint64_t epoch, CatalogEntry entry);
  void erase(uint64_t epoch);

 private:
  std::string dir_;
  std::map<uint64_t, CatalogEntry> entries_;
  std::map<uint64_t, uint64_t> base_floors_;  // epoch -> floor, for the readable bases among entries_
};

}  // namespace ckpt::snap
