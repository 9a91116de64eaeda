// Compaction and retention (Store::compact, Store::apply_retention).
//
// compact(k) writes the memory at epoch k as a new base file under k's own name. The rename that replaces the delta
// is the atomic commit point: before it, the old chain is intact; after it, epochs > k read k's pages from the new
// base and the epochs < k are obsolete (the base's floor says so), so they are removed, also by the next open should
// this process die first.
#include <sys/mman.h>

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"

namespace ckpt::snap {
namespace f = format;

namespace {

// Anonymous memory for one materialised epoch, returned to the kernel on destruction.
class GuestImage {
 public:
  static Result<GuestImage> allocate(uint64_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Status::from_errno(errno, "mmap " + std::to_string(bytes) + " bytes for compaction");
    return GuestImage(static_cast<uint8_t*>(p), bytes);
  }
  GuestImage(GuestImage&& o) noexcept : data_(std::exchange(o.data_, nullptr)), bytes_(o.bytes_) {}
  ~GuestImage() {
    if (data_) ::munmap(data_, bytes_);
  }
  std::span<uint8_t> span() { return {data_, bytes_}; }

 private:
  GuestImage(uint8_t* data, uint64_t bytes) : data_(data), bytes_(bytes) {}
  uint8_t* data_;
  uint64_t bytes_;
};

}  // namespace

// Every epoch above k must descend from k, or removing the epochs below k would orphan it.
static Status check_descends(const Catalog& catalog, uint64_t k) {
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

Status Store::compact(uint64_t k) {
  if (writer_active_) return Status(StatusCode::kBusy, "an epoch is being written to " + dir_);
  auto found = catalog_.entries().find(k);
  if (found == catalog_.entries().end()) return not_found("epoch " + std::to_string(k) + " is not in store " + dir_);
  if (!found->second.meta) return found->second.error.with_context("compact to epoch " + std::to_string(k));
  CKPT_RETURN_IF_ERROR(check_descends(catalog_, k));
  std::shared_ptr<const EpochMeta> target = found->second.meta;

  if (target->header.kind != EpochKind::kBase) {
    uint64_t guest_pages = target->header.guest_pages;
    CKPT_ASSIGN_OR_RETURN(GuestImage image, GuestImage::allocate(guest_pages * f::kPageSize));
    RestoreOptions restore_options;
    restore_options.threads = options_.workers;
    restore_options.memory_is_zeroed = true;  // fresh anonymous memory
    CKPT_RETURN_IF_ERROR(restore_to_memory(*fs_, catalog_, k, image.span(), restore_options).status());
    EpochOptions options{target->tag, target->timestamp_ns, std::nullopt};
    CKPT_ASSIGN_OR_RETURN(auto writer, begin(EpochKind::kBase, k, f::kNoParent, k, guest_pages, options));
    const uint8_t* pages = image.span().data();
    for (uint64_t gfn = 0; gfn < guest_pages; ++gfn) {
      CKPT_RETURN_IF_ERROR(writer->add_page(gfn, pages + gfn * f::kPageSize));
    }
    for (const StateBlob& s : target->states) CKPT_RETURN_IF_ERROR(writer->add_state(s.name, s.data));
    CKPT_RETURN_IF_ERROR(writer->commit().status());
  }
  // Newest first, so that every epoch still present keeps its whole chain should this stop half way.
  std::vector<uint64_t> doomed;
  for (auto it = catalog_.entries().begin(); it != catalog_.entries().end() && it->first < k; ++it) {
    doomed.push_back(it->first);
  }
  std::reverse(doomed.begin(), doomed.end());
  for (uint64_t epoch : doomed) {
    CKPT_RETURN_IF_ERROR(fs_->remove(catalog_.path_of(epoch)));
    catalog_.erase(epoch);
  }
  if (!doomed.empty()) CKPT_RETURN_IF_ERROR(fs_->sync_dir(dir_));
  CKPT_LOG(kInfo) << "compacted " << dir_ << " to epoch " << k << ", removed " << doomed.size() << " epochs";
  return Status::ok();
}

Result<uint64_t> Store::apply_retention(const RetentionPolicy& policy) {
  if (!policy.keep_last && !policy.keep_newer_than_ns) return invalid_argument("retention policy keeps everything");
  if (policy.keep_last && *policy.keep_last == 0) return invalid_argument("retention must keep at least one epoch");
  if (catalog_.empty()) return uint64_t{0};
  // An epoch stays if any rule keeps it; the oldest one kept becomes the base.
  std::vector<uint64_t> epochs;
  for (const auto& [epoch, entry] : catalog_.entries()) epochs.push_back(epoch);
  uint64_t oldest_kept = epochs.back();
  if (policy.keep_last) oldest_kept = epochs[epochs.size() - std::min<uint64_t>(*policy.keep_last, epochs.size())];
  if (policy.keep_newer_than_ns) {
    for (const auto& [epoch, entry] : catalog_.entries()) {
      if (entry.meta && entry.meta->timestamp_ns >= *policy.keep_newer_than_ns) {
        oldest_kept = std::min(oldest_kept, epoch);
        break;
      }
    }
  }
  size_t before = catalog_.entries().size();
  if (oldest_kept == epochs.front()) return uint64_t{0};
  CKPT_RETURN_IF_ERROR(compact(oldest_kept));
  return uint64_t{before - catalog_.entries().size()};
}

}  // namespace ckpt::snap
