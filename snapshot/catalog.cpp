#include "snapshot/catalog.h"

#include <algorithm>

#include "snapshot/epoch_file.h"

namespace ckpt::snap {

Result<Catalog> Catalog::load(FileSystem& fs, const std::string& dir) {
  CKPT_ASSIGN_OR_RETURN(std::vector<std::string> names, fs.list_dir(dir));
  Catalog catalog;
  catalog.dir_ = dir;
  for (const std::string& name : names) {
    uint64_t epoch = 0;
    if (!parse_epoch_file_name(name, &epoch)) continue;
    CatalogEntry entry;
    entry.path = dir + "/" + name;
    auto file = fs.open(entry.path);
    Result<EpochMeta> meta = file.is_ok() ? read_epoch_meta(**file) : Result<EpochMeta>(file.status());
    if (meta.is_ok() && meta->header.epoch != epoch) {
      meta = corruption(entry.path + " offset 0: file holds epoch " + std::to_string(meta->header.epoch));
    }
    if (meta.is_ok()) {
      entry.meta = std::make_shared<const EpochMeta>(std::move(meta).value());
    } else {
      entry.error = meta.status();
    }
    catalog.add(epoch, std::move(entry));
  }
  return catalog;
}

void Catalog::add(uint64_t epoch, CatalogEntry entry) {
  erase(epoch);  // a replacement (compaction rewrites an epoch in place)
  if (entry.meta) total_bytes_ += entry.meta->file_length;
  if (entry.meta && entry.meta->header.kind == EpochKind::kBase) {
    base_floors_[epoch] = entry.meta->floor;
  }
  entries_[epoch] = std::move(entry);
}

void Catalog::erase(uint64_t epoch) {
  auto it = entries_.find(epoch);
  if (it == entries_.end()) return;
  if (it->second.meta) total_bytes_ -= it->second.meta->file_length;
  entries_.erase(it);
  base_floors_.erase(epoch);
}

Result<ChainShape> Catalog::shape(uint64_t epoch) const {
  CKPT_ASSIGN_OR_RETURN(auto links, chain(epoch));
  ChainShape shape;
  shape.links = links.size();
  shape.base_bytes = links.back()->file_length;
  for (size_t i = 0; i + 1 < links.size(); ++i) shape.delta_bytes += links[i]->file_length;
  return shape;
}

std::optional<uint64_t> Catalog::newest() const {
  if (entries_.empty()) return std::nullopt;
  return entries_.rbegin()->first;
}

uint64_t Catalog::floor() const {
  uint64_t floor = 0;
  for (const auto& [epoch, base_floor] : base_floors_) floor = std::max(floor, base_floor);
  return floor;
}

uint64_t Catalog::guest_pages() const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->second.meta) return it->second.meta->header.guest_pages;
  }
  return 0;
}

uint64_t Catalog::store_id() const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->second.meta) return it->second.meta->header.store_id;
  }
  return 0;
}

std::string Catalog::path_of(uint64_t epoch) const {
  auto it = entries_.find(epoch);
  return it != entries_.end() ? it->second.path : dir_ + "/" + epoch_file_name(epoch);
}

Result<std::vector<std::shared_ptr<const EpochMeta>>> Catalog::chain(uint64_t epoch) const {
  std::vector<std::shared_ptr<const EpochMeta>> links;
  uint64_t want = epoch;
  for (;;) {
    auto it = entries_.find(want);
    if (it == entries_.end()) {
      if (links.empty()) return not_found("epoch " + std::to_string(epoch) + " is not in store " + dir_);
      return corruption("epoch " + std::to_string(epoch) + " needs epoch " + std::to_string(want) +
                        ", which is missing from " + dir_);
    }
    if (!it->second.meta) {
      return it->second.error.with_context("epoch " + std::to_string(epoch) + " needs epoch " + std::to_string(want));
    }
    const auto& meta = it->second.meta;
    if (!links.empty() && (meta->header.store_id != links.front()->header.store_id ||
                           meta->header.guest_pages != links.front()->header.guest_pages)) {
      return corruption(it->second.path + " offset 0: epoch " + std::to_string(want) +
                        " belongs to another store or guest size than epoch " + std::to_string(epoch));
    }
    if (!links.empty() && !same_disk_layout(meta->disks, links.front()->disks)) {
      return corruption(it->second.path + ": epoch " + std::to_string(want) + " has " + describe_disks(meta->disks) +
                        ", epoch " + std::to_string(epoch) + " (in its chain) has " +
                        describe_disks(links.front()->disks) + "; a chain keeps its disks");
    }
    links.push_back(meta);
    if (meta->header.kind == EpochKind::kBase) return links;
    want = meta->parent;  // always older (checked on load), so the walk ends
  }
}

}  // namespace ckpt::snap
