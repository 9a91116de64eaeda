#include "snapshot/store.h"

#include <time.h>

#include <algorithm>
#include <random>

#include "common/log.h"
#include "snapshot/epoch_file.h"

namespace ckpt::snap {
namespace f = format;

namespace {

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

uint64_t timestamp_seconds_ago(uint64_t seconds) {
  uint64_t now = now_ns();
  return now - std::min<uint64_t>(seconds, now / 1'000'000'000ull) * 1'000'000'000ull;
}

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, StoreOptions options) {
  std::unique_ptr<Store> store(new Store());
  store->dir_ = dir;
  store->fs_ = options.fs ? options.fs : std::shared_ptr<FileSystem>(
                                             make_posix_file_system(options.engine, options.queue_depth));
  store->options_ = std::move(options);
  if (store->options_.create_if_missing) {
    CKPT_RETURN_IF_ERROR(store->fs_->make_dir(dir));
  } else {
    // Listing proves the directory exists (and is one) before the lock file is created in it.
    CKPT_RETURN_IF_ERROR(store->fs_->list_dir(dir).status().with_context("open store " + dir));
  }
  CKPT_ASSIGN_OR_RETURN(store->lock_, store->fs_->lock(dir + "/" + std::string(f::kLockName)));
  if (store->options_.clean_up_on_open) CKPT_RETURN_IF_ERROR(store->clean_up());
  CKPT_ASSIGN_OR_RETURN(store->catalog_, Catalog::load(*store->fs_, dir));
  if (store->options_.clean_up_on_open) CKPT_RETURN_IF_ERROR(store->remove_epochs_below(store->catalog_.floor()));
  store->resources_ = std::make_unique<WriterResources>(store->options_.workers, store->options_.compression_level);
  CKPT_LOG(kDebug) << "store " << dir << " open: " << store->catalog_.entries().size() << " epochs, writes via "
                   << write_engine_name(store->fs_->write_engine());
  return store;
}

Store::~Store() = default;

Catalog Store::catalog_snapshot() const {
  std::lock_guard lock(mu_);
  return catalog_;
}

std::optional<uint64_t> Store::newest() const {
  std::lock_guard lock(mu_);
  return catalog_.newest();
}

size_t Store::epoch_count() const {
  std::lock_guard lock(mu_);
  return catalog_.entries().size();
}

uint64_t Store::total_bytes() const {
  std::lock_guard lock(mu_);
  return catalog_.total_bytes();
}

Result<ChainShape> Store::chain_shape(uint64_t epoch) const {
  std::lock_guard lock(mu_);
  return catalog_.shape(epoch);
}

std::vector<std::pair<uint64_t, CatalogEntry>> Store::entries_after(std::optional<uint64_t> after, size_t limit,
                                                                     bool* more) const {
  std::lock_guard lock(mu_);
  const auto& entries = catalog_.entries();
  auto it = after ? entries.upper_bound(*after) : entries.begin();
  std::vector<std::pair<uint64_t, CatalogEntry>> page;
  for (; it != entries.end() && page.size() < limit; ++it) page.emplace_back(it->first, it->second);
  *more = it != entries.end();
  return page;
}

void Store::committed(uint64_t epoch, CatalogEntry entry) {
  std::lock_guard lock(mu_);
  catalog_.add(epoch, std::move(entry));
}

void Store::writer_finished() {
  std::lock_guard lock(mu_);
  writer_active_ = false;
}

// Temp files are epochs whose commit never finished; no committed record refers to them. Only epoch temp files:
// the daemon keeps other files in the directory (a disk's working image being rebuilt) that are not the store's.
Status Store::clean_up() {
  CKPT_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->list_dir(dir_));
  bool removed = false;
  const std::string epoch_temp = std::string(f::kEpochSuffix) + std::string(f::kTempSuffix);
  for (const std::string& name : names) {
    if (!ends_with(name, epoch_temp)) continue;
    CKPT_LOG(kInfo) << "removing unfinished epoch file " << dir_ << "/" << name;
    CKPT_RETURN_IF_ERROR(fs_->remove(dir_ + "/" + name));
    removed = true;
  }
  return removed ? fs_->sync_dir(dir_) : Status::ok();
}

// Epochs below the floor were folded into a base by a compaction that was interrupted before removing them.
Status Store::remove_epochs_below(uint64_t floor) {
  std::vector<uint64_t> doomed;
  for (const auto& [epoch, entry] : catalog_.entries()) {
    if (epoch < floor) doomed.push_back(epoch);
  }
  return remove_epochs(std::move(doomed));
}

// Out of the catalog first (under the lock, so the epoch writer never picks one as a parent), then off the disk,
// newest first: should this stop half way, every epoch still present keeps its whole chain.
Status Store::remove_epochs(std::vector<uint64_t> doomed) {
  if (doomed.empty()) return Status::ok();
  std::sort(doomed.rbegin(), doomed.rend());
  std::vector<std::string> paths;
  {
    std::lock_guard lock(mu_);
    for (uint64_t epoch : doomed) {
      paths.push_back(catalog_.path_of(epoch));
      catalog_.erase(epoch);
    }
  }
  for (const std::string& path : paths) {
    Status s = fs_->remove(path);
    if (!s.is_ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return fs_->sync_dir(dir_);
}

Result<std::unique_ptr<EpochWriter>> Store::begin(EpochKind kind, uint64_t epoch, uint64_t parent, uint64_t floor,
                                                  uint64_t guest_pages, const EpochOptions& options, bool replacing) {
  if (options.tag.size() > f::kMaxTagLength) return invalid_argument("tag longer than 256 bytes");
  EpochMeta meta;
  CKPT_ASSIGN_OR_RETURN(meta.disks, disks_from_specs(options.disks));
  {
    std::lock_guard lock(mu_);
    if (!replacing && writer_active_) {
      return Status(StatusCode::kBusy, "an epoch is already being written to " + dir_);
    }
    meta.header = EpochHeader{catalog_.store_id(), epoch, guest_pages, kind};
  }
  // 1.0 without disks: older readers keep reading stores of VMs that have none.
  meta.header.minor = meta.disks.empty() ? 0 : f::kMinorDisks;
  if (meta.header.store_id == 0 && options_.store_id) meta.header.store_id = *options_.store_id;
  if (meta.header.store_id == 0) {
    std::random_device random;
    meta.header.store_id = (uint64_t{random()} << 32) | random() | 1;  // never 0
  }
  meta.parent = parent;
  meta.floor = floor;
  meta.timestamp_ns = options.timestamp_ns.value_or(now_ns());
  meta.tag = options.tag;
  std::string final_path = dir_ + "/" + epoch_file_name(epoch);
  std::string temp_path = final_path + std::string(f::kTempSuffix);
  CKPT_ASSIGN_OR_RETURN(auto file, fs_->create(temp_path));
  WriterResources& resources = replacing ? maintenance_resources() : *resources_;
  std::unique_ptr<EpochWriter> writer(new EpochWriter(*this, resources, std::move(meta), std::move(file), temp_path,
                                                      final_path, replacing));
  if (!replacing) {
    std::lock_guard lock(mu_);
    writer_active_ = true;
  }
  CKPT_RETURN_IF_ERROR(writer->start());
  return writer;
}

WriterResources& Store::maintenance_resources() {
  if (!maintenance_resources_) {
    maintenance_resources_ =
        std::make_unique<WriterResources>(options_.maintenance_workers, options_.compression_level);
  }
  return *maintenance_resources_;
}

Result<std::unique_ptr<EpochWriter>> Store::begin_base(uint64_t guest_pages, EpochOptions options) {
  if (guest_pages == 0 || guest_pages > f::kMaxGuestPages) {
    return invalid_argument("guest size of " + std::to_string(guest_pages) + " pages out of range");
  }
  uint64_t epoch, floor;
  {
    std::lock_guard lock(mu_);
    if (!catalog_.empty() && catalog_.guest_pages() != guest_pages) {
      return invalid_argument("store " + dir_ + " holds a guest of " + std::to_string(catalog_.guest_pages()) +
                              " pages, not " + std::to_string(guest_pages));
    }
    epoch = catalog_.empty() ? 0 : *catalog_.newest() + 1;
    floor = catalog_.floor();
  }
  return begin(EpochKind::kBase, epoch, f::kNoParent, floor, guest_pages, options, /*replacing=*/false);
}

Result<std::unique_ptr<EpochWriter>> Store::begin_delta(EpochOptions options) {
  uint64_t parent, epoch, floor, guest_pages;
  std::vector<DiskSpace> parent_disks;
  {
    std::lock_guard lock(mu_);
    if (catalog_.empty()) return invalid_argument("store " + dir_ + " has no base epoch to build a delta on");
    parent = options.parent.value_or(*catalog_.newest());
    auto it = catalog_.entries().find(parent);
    if (it == catalog_.entries().end() || !it->second.meta) {
      return not_found("parent epoch " + std::to_string(parent) + " is not a readable epoch of " + dir_);
    }
    epoch = *catalog_.newest() + 1;
    floor = catalog_.floor();
    guest_pages = catalog_.guest_pages();
    parent_disks = it->second.meta->disks;
  }
  // Every link of a chain has the same disks (restore reads a disk's blocks from any of them).
  if (options.disks.empty()) {
    options.disks = disk_specs(parent_disks);
  } else {
    CKPT_ASSIGN_OR_RETURN(std::vector<DiskSpace> disks, disks_from_specs(options.disks));
    if (!same_disk_layout(disks, parent_disks)) {
      return invalid_argument("epoch " + std::to_string(epoch) + " would have " + describe_disks(disks) +
                              ", its parent epoch " + std::to_string(parent) + " has " +
                              describe_disks(parent_disks) + "; every epoch of a chain has the same disks");
    }
  }
  options.parent = parent;
  return begin(EpochKind::kDelta, epoch, parent, floor, guest_pages, options, /*replacing=*/false);
}

}  // namespace ckpt::snap
