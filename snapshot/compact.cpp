// Maintenance of a store: rebase, compaction and retention (Store::rebase, Store::compact, Store::apply_retention).
//
// rebase(k) writes the memory and disks at epoch k as a new base file under k's own name. The rename that replaces the delta is
// the atomic commit point: before it the old chain is intact, after it epochs above k read k's pages from the new
// base; either file holds the same content. The new base is streamed, one address space (memory, then each disk)
// after the other: the restore plan says which block of which link holds each page, and each such block is read,
// checked and decoded once, its wanted pages handed straight to the writer. Memory stays at a few blocks, and the epoch writer keeps committing new epochs meanwhile.
//
// compact(k) and retention then remove epochs no remaining epoch needs, newest first, so that an interrupted removal
// leaves every remaining chain whole (the next run finishes it).
#include <algorithm>
#include <optional>
#include <vector>

#include "common/log.h"
#include "snapshot/block_codec.h"
#include "snapshot/epoch_file.h"
#include "snapshot/epoch_file_cache.h"
#include "snapshot/restore_plan.h"
#include "snapshot/store.h"

namespace ckpt::snap {
namespace f = format;

// One maintenance operation at a time per store (the epoch writer runs beside it).
class Store::MaintenanceSlot {
 public:
  explicit MaintenanceSlot(Store& store) : store_(store) {
    std::lock_guard lock(store_.mu_);
    taken_ = !store_.maintenance_active_;
    store_.maintenance_active_ = true;
  }
  ~MaintenanceSlot() {
    if (!taken_) return;
    std::lock_guard lock(store_.mu_);
    store_.maintenance_active_ = false;
  }
  Status status() const {
    return taken_ ? Status::ok()
                  : Status(StatusCode::kBusy, "a compaction of " + store_.dir_ + " is already running");
  }

 private:
  Store& store_;
  bool taken_ = false;
};

namespace {

// Every epoch above k must descend from k, or removing the epochs below k would orphan it.
Status check_descends(const Catalog& catalog, uint64_t k) {
  for (auto it = catalog.entries().upper_bound(k); it != catalog.entries().end(); ++it) {
    uint64_t e = it->first;
    for (;;) {
      auto link = catalog.entries().find(e);
      if (link == catalog.entries().end() || !link->second.meta) {
        std::string what = e == it->first ? "is unreadable" : "has an unreadable ancestor " + std::to_string(e);
        return corruption("epoch " + std::to_string(it->first) + " " + what + "; verify the store before compacting");
      }
      const EpochMeta& meta = *link->second.meta;
      if (e == k || (meta.header.kind == EpochKind::kBase && e > k)) break;
      if (e < k || meta.header.kind == EpochKind::kBase) {
        return invalid_argument("epoch " + std::to_string(it->first) + " does not descend from epoch " +
                                std::to_string(k) + "; compacting to " + std::to_string(k) + " would lose it");
      }
      e = meta.parent;
    }
  }
  return Status::ok();
}

// The epochs that `kept` and their chains down to a base consist of. Each link is visited once however many kept
// epochs share it. A chain that reaches an unreadable or missing link cannot say what lies below it, so everything
// older than that link stays too (a read error must not turn into deleted ancestors; verify reports it).
std::set<uint64_t> needed_by(const Catalog& catalog, const std::set<uint64_t>& kept) {
  std::set<uint64_t> needed;
  std::optional<uint64_t> keep_below;
  for (uint64_t epoch : kept) {
    uint64_t e = epoch;
    for (;;) {
      auto it = catalog.entries().find(e);
      if (it == catalog.entries().end() || !it->second.meta) {
        keep_below = std::max(keep_below.value_or(0), e);
        break;
      }
      if (!needed.insert(e).second) break;
      const auto& meta = it->second.meta;
      if (meta->header.kind == EpochKind::kBase) break;
      e = meta->parent;
    }
  }
  if (keep_below) {
    for (auto it = catalog.entries().begin(); it != catalog.entries().end() && it->first <= *keep_below; ++it) {
      needed.insert(it->first);
    }
  }
  return needed;
}

// The epochs `policy` keeps: from the oldest any rule keeps up to the newest, and the ones it names.
// The oldest epoch any rule keeps (each rule keeps at least the newest epoch).
uint64_t oldest_kept(const Catalog& catalog, const RetentionPolicy& policy) {
  const auto& entries = catalog.entries();
  uint64_t oldest = entries.rbegin()->first;
  if (policy.keep_last) {
    uint64_t n = std::min<uint64_t>(*policy.keep_last, entries.size());
    oldest = std::min(oldest, std::next(entries.rbegin(), static_cast<long>(n - 1))->first);
  }
  if (policy.keep_newer_than_ns) {
    for (const auto& [epoch, entry] : entries) {
      if (entry.meta && entry.meta->timestamp_ns >= *policy.keep_newer_than_ns) {
        oldest = std::min(oldest, epoch);
        break;
      }
    }
  }
  return oldest;
}

}  // namespace

Status Store::rebase(uint64_t k, const std::atomic<bool>* cancel) {
  MaintenanceSlot slot(*this);
  CKPT_RETURN_IF_ERROR(slot.status());
  uint64_t floor;
  {
    std::lock_guard lock(mu_);
    floor = catalog_.floor();
  }
  return rewrite_as_base(k, floor, cancel);
}

Status Store::rewrite_as_base(uint64_t k, uint64_t floor, const std::atomic<bool>* cancel) {
  std::vector<std::shared_ptr<const EpochMeta>> chain;
  std::vector<std::string> paths;
  {
    std::lock_guard lock(mu_);
    CKPT_ASSIGN_OR_RETURN(chain, catalog_.chain(k));
    for (const auto& link : chain) paths.push_back(catalog_.path_of(link->header.epoch));
  }
  const EpochMeta& target = *chain.front();
  if (target.header.kind == EpochKind::kBase) return Status::ok();
  uint64_t guest_pages = target.header.guest_pages;
  // Every link of the chain has the target's disks (Catalog::chain checked), so the new base has them too.
  EpochOptions options{target.tag, target.timestamp_ns, std::nullopt, disk_specs(target.disks)};
  CKPT_ASSIGN_OR_RETURN(auto writer,
                        begin(EpochKind::kBase, k, f::kNoParent, floor, guest_pages, options, /*replacing=*/true));
  EpochFileCache files(*fs_, 4);  // tasks come file by file
  BlockDecompressor decompressor;
  ByteBuffer scratch(max_stored_block_size());
  ByteBuffer raw(size_t{f::kMaxDataPagesPerBlock} * f::kPageSize);
  for (uint32_t space = f::kMemorySpace; space <= target.disks.size(); ++space) {
    CKPT_ASSIGN_OR_RETURN(RestorePlan plan, plan_restore(chain, space));
    std::sort(plan.zero_runs.begin(), plan.zero_runs.end());
    for (const auto& [first, count] : plan.zero_runs) {
      CKPT_RETURN_IF_ERROR(space == f::kMemorySpace ? writer->add_zero_pages(first, count)
                                                    : writer->add_disk_zero_blocks(space, first, count));
    }
    for (const BlockTask& task : plan.tasks) {
      if (cancel && cancel->load(std::memory_order_relaxed)) {
        return Status(StatusCode::kAborted, "rebase of epoch " + std::to_string(k) + " cancelled");
      }
      const EpochMeta& meta = *chain[task.link];
      const BlockRef& block = meta.blocks[task.block];
      CKPT_ASSIGN_OR_RETURN(auto file, files.get(paths[task.link], meta));
      CKPT_RETURN_IF_ERROR(read_block(*file, meta, task.block, decompressor, scratch, raw.data()));
      CKPT_RETURN_IF_ERROR(for_each_wanted_run(block, task.wanted, raw.data(),
                                               [&](uint64_t first, uint32_t count, const uint8_t* pages) -> Status {
                                                 for (uint32_t i = 0; i < count; ++i) {
                                                   const uint8_t* page = pages + size_t{i} * f::kPageSize;
                                                   CKPT_RETURN_IF_ERROR(
                                                       space == f::kMemorySpace
                                                           ? writer->add_page(first + i, page)
                                                           : writer->add_disk_block(space, first + i, page));
                                                 }
                                                 return Status::ok();
                                               }));
    }
  }
  for (const StateBlob& s : target.states) CKPT_RETURN_IF_ERROR(writer->add_state(s.name, s.data));
  CKPT_ASSIGN_OR_RETURN(auto committed, writer->commit());
  CKPT_LOG(kInfo) << "rebased epoch " << k << " of " << dir_ << " (a chain of " << chain.size() << " epochs) into a base of "
                  << committed->stats.stored_bytes << " stored bytes";
  return Status::ok();
}

Status Store::compact(uint64_t k) {
  MaintenanceSlot slot(*this);
  CKPT_RETURN_IF_ERROR(slot.status());
  bool is_base;
  {
    std::lock_guard lock(mu_);
    auto found = catalog_.entries().find(k);
    if (found == catalog_.entries().end()) return not_found("epoch " + std::to_string(k) + " is not in store " + dir_);
    if (!found->second.meta) return found->second.error.with_context("compact to epoch " + std::to_string(k));
    CKPT_RETURN_IF_ERROR(check_descends(catalog_, k));
    is_base = found->second.meta->header.kind == EpochKind::kBase;
  }
  // Floor k: should this stop before the old epochs are gone, the next open removes them.
  if (!is_base) CKPT_RETURN_IF_ERROR(rewrite_as_base(k, k));
  std::vector<uint64_t> doomed;
  {
    std::lock_guard lock(mu_);
    for (auto it = catalog_.entries().begin(); it != catalog_.entries().end() && it->first < k; ++it) {
      doomed.push_back(it->first);
    }
  }
  size_t removed = doomed.size();
  CKPT_RETURN_IF_ERROR(remove_epochs(std::move(doomed)));
  CKPT_LOG(kInfo) << "compacted " << dir_ << " to epoch " << k << ", removed " << removed << " epochs";
  return Status::ok();
}

Result<uint64_t> Store::apply_retention(const RetentionPolicy& policy) {
  if (!policy.keep_last && !policy.keep_newer_than_ns) return invalid_argument("retention policy keeps everything");
  if (policy.keep_last && *policy.keep_last == 0) return invalid_argument("retention must keep at least one epoch");
  MaintenanceSlot slot(*this);
  CKPT_RETURN_IF_ERROR(slot.status());
  uint64_t oldest;
  std::set<uint64_t> kept;
  bool rewrite;
  auto doomed_now = [&] {  // with mu_ held
    // Epochs committed since the rules were applied (the epoch writer runs meanwhile) are newer than `oldest`:
    // kept too, with what they need.
    for (auto it = catalog_.entries().lower_bound(oldest); it != catalog_.entries().end(); ++it) kept.insert(it->first);
    std::set<uint64_t> needed = needed_by(catalog_, kept);
    std::vector<uint64_t> doomed;
    for (const auto& [epoch, entry] : catalog_.entries()) {
      if (!needed.count(epoch)) doomed.push_back(epoch);
    }
    return std::make_pair(doomed, needed.size() - std::min(needed.size(), kept.size()));
  };
  {
    std::lock_guard lock(mu_);
    if (catalog_.empty()) return uint64_t{0};
    oldest = oldest_kept(catalog_, policy);
    kept.insert(policy.also_keep.begin(), policy.also_keep.end());
    uint64_t only_needed = doomed_now().second;  // epochs that stay only because a kept chain needs them
    const CatalogEntry& entry = catalog_.entries().at(oldest);
    rewrite = policy.rewrite_above && only_needed > *policy.rewrite_above && entry.meta &&
              entry.meta->header.kind == EpochKind::kDelta;
  }
  // The floor stays: epochs of other branches kept by also_keep may still need older epochs.
  if (rewrite) {
    uint64_t floor;
    {
      std::lock_guard lock(mu_);
      floor = catalog_.floor();
    }
    CKPT_RETURN_IF_ERROR(rewrite_as_base(oldest, floor, policy.cancel));
  }
  std::vector<uint64_t> doomed;
  {
    std::lock_guard lock(mu_);
    doomed = doomed_now().first;
  }
  uint64_t removed = doomed.size();
  CKPT_RETURN_IF_ERROR(remove_epochs(std::move(doomed)));
  if (removed) {
    CKPT_LOG(kDebug) << "retention removed " << removed << " epochs of " << dir_;
  }
  return removed;
}

}  // namespace ckpt::snap
