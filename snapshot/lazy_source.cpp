#include "snapshot/lazy_source.h"

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
  source->page_block_.assign(source->plan_.pages, kZeroBlock);
  source->first_gfn_.assign(source->plan_.tasks.size(), UINT64_MAX);
  for (size_t t = 0; t < source->plan_.tasks.size(); ++t) {
    const BlockTask& task = source->plan_.tasks[t];
    const BlockRef& block = source->chain_[task.link]->blocks[task.block];
    Status indexed = for_each_wanted_span(block, task.wanted, [&](uint64_t gfn, uint32_t count, uint32_t) {
      // plan_restore gave each page to exactly one block, and every run lies inside the guest (checked on load).
      for (uint32_t i = 0; i < count; ++i) source->page_block_[gfn + i] = static_cast<BlockIndex>(t);
      source->first_gfn_[t] = std::min(source->first_gfn_[t], gfn);
      return Status::ok();
    });
    CKPT_RETURN_IF_ERROR(indexed);
  }
  return source;
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
