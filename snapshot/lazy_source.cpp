#include "snapshot/lazy_source.h"

#include <algorithm>

#include "snapshot/epoch_file.h"
#include "snapshot/epoch_file_cache.h"

namespace ckpt::snap {

Result<std::unique_ptr<LazySource>> LazySource::open(FileSystem& fs, const Catalog& catalog, uint64_t epoch) {
  const std::string what = "lazy restore of epoch " + std::to_string(epoch);
  std::unique_ptr<LazySource> source(new LazySource());
  source->epoch_ = epoch;
  CKPT_ASSIGN_OR_RETURN(source->chain_, catalog.chain(epoch));
  auto plan = plan_restore(source->chain_, format::kMemorySpace);
  if (!plan.is_ok()) return plan.status().with_context(what);
  source->plan_ = std::move(*plan);
  if (source->plan_.tasks.size() >= kZeroBlock) {
    return invalid_argument(what + ": " + std::to_string(source->plan_.tasks.size()) + " blocks, more than it indexes");
  }
  // Every file now, each the version the plan was made from: once open, no compaction can take it away.
  for (const auto& link : source->chain_) {
    const std::string path = catalog.path_of(link->header.epoch);
    auto file = fs.open(path);
    if (!file.is_ok()) return file.status().with_context(what);
    Status same = check_same_version(**file, *link);
    if (!same.is_ok()) return same.with_context(what);
    source->files_.push_back(std::move(*file));
  }
  source->bounds_.resize(source->plan_.tasks.size());
  for (size_t t = 0; t < source->plan_.tasks.size(); ++t) {
    Bounds& bounds = source->bounds_[t];
    for (const PageRun& run : source->block_ref(static_cast<BlockIndex>(t)).runs) {
      if (run.zero) continue;
      bounds.first = std::min(bounds.first, run.first_gfn);
      bounds.end = std::max(bounds.end, run.first_gfn + run.count);
    }
  }
  return source;
}

void LazySource::build_index() {
  std::vector<BlockIndex> index(plan_.pages, kZeroBlock);
  for (size_t t = 0; t < plan_.tasks.size(); ++t) {
    // plan_restore gave each page to exactly one block, and every run lies inside the guest (checked on load).
    (void)for_each_wanted_span(block_ref(static_cast<BlockIndex>(t)), plan_.tasks[t].wanted,
                               [&](uint64_t gfn, uint32_t count, uint32_t) {
                                 std::fill_n(index.begin() + static_cast<ptrdiff_t>(gfn), count,
                                             static_cast<BlockIndex>(t));
                                 return Status::ok();
                               });
  }
  page_block_ = std::move(index);
  indexed_.store(true, std::memory_order_release);
}

// The page's one block is the one whose wanted pages include it (plan_restore gave each page to exactly one).
LazySource::BlockIndex LazySource::search(uint64_t gfn) const {
  for (size_t t = 0; t < bounds_.size(); ++t) {
    if (gfn < bounds_[t].first || gfn >= bounds_[t].end) continue;
    const uint64_t wanted = plan_.tasks[t].wanted;
    uint32_t data_index = 0;
    for (const PageRun& run : block_ref(static_cast<BlockIndex>(t)).runs) {
      if (run.zero) continue;
      if (gfn >= run.first_gfn && gfn < run.first_gfn + run.count &&
          ((wanted >> (data_index + (gfn - run.first_gfn))) & 1)) {
        return static_cast<BlockIndex>(t);
      }
      data_index += run.count;
    }
  }
  return kZeroBlock;
}

uint64_t LazySource::first_gfn_of(BlockIndex block) const {
  uint64_t first = UINT64_MAX;
  (void)for_each_wanted_span(block_ref(block), plan_.tasks[block].wanted, [&](uint64_t gfn, uint32_t, uint32_t) {
    first = std::min(first, gfn);
    return Status::ok();
  });
  return first;
}

uint32_t LazySource::pages_of(BlockIndex block) const {
  return static_cast<uint32_t>(__builtin_popcountll(plan_.tasks[block].wanted));
}

uint32_t LazySource::stored_bytes_of(BlockIndex block) const {
  const BlockTask& task = plan_.tasks[block];
  return chain_[task.link]->blocks[task.block].stored_len;
}

Status LazySource::read(BlockIndex block, Reader& reader,
                        const std::function<Status(uint64_t gfn, uint32_t count, const uint8_t* pages)>& put) const {
  if (files_.empty()) {
    return Status(StatusCode::kAborted,
                  "lazy restore of epoch " + std::to_string(epoch_) + ": block read after the files were closed");
  }
  const BlockTask& task = plan_.tasks[block];
  const EpochMeta& meta = *chain_[task.link];
  Status read = read_block(*files_[task.link], meta, task.block, reader.decompressor, reader.scratch, reader.raw.data());
  if (!read.is_ok()) return read.with_context("lazy restore of epoch " + std::to_string(epoch_));
  return for_each_wanted_run(meta.blocks[task.block], task.wanted, reader.raw.data(), put);
}

}  // namespace ckpt::snap
