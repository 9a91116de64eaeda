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

// What a restore of one epoch reads, in outline: how many epochs its chain links and how big their files are.
struct ChainShape {
  uint64_t links = 0;        // epochs in the chain, the base included
  uint64_t base_bytes = 0;   // file size of the chain's base
  uint64_t delta_bytes = 0;  // file sizes of its deltas, together
  // Bytes of the chain per byte of its base: about what a restore reads relative to a single image of that epoch.
  double read_amplification() const {
    return base_bytes ? static_cast<double>(base_bytes + delta_bytes) / static_cast<double>(base_bytes) : 1.0;
  }
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
  // missing or unreadable link, a cycle, or a link to another store, guest size or set of disks.
  Result<std::vector<std::shared_ptr<const EpochMeta>>> chain(uint64_t epoch) const;
  std::string path_of(uint64_t epoch) const;
  // The shape of `epoch`'s chain (Result of chain(), summarised).
  Result<ChainShape> shape(uint64_t epoch) const;
  // Sum of the readable epochs' file sizes.
  uint64_t total_bytes() const { return total_bytes_; }

  // Called by the writer after it commits (or replaces) an epoch, and after it removes one.
  void add(uint64_t epoch, CatalogEntry entry);
  void erase(uint64_t epoch);

 private:
  std::string dir_;
  std::map<uint64_t, CatalogEntry> entries_;
  std::map<uint64_t, uint64_t> base_floors_;  // epoch -> floor, for the readable bases among entries_
  uint64_t total_bytes_ = 0;
};

}  // namespace ckpt::snap
