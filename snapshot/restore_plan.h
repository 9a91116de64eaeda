// Which block of which epoch in a chain holds each page of one address space (guest memory, or one disk) at the
// chain's newest epoch: the plan restore and compaction (rebase) both follow, so that each page is read exactly
// once, from the newest epoch that has it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "common/status.h"
#include "snapshot/epoch_meta.h"

namespace ckpt::snap {

// One block with at least one page that the restore takes from it. Bit i of `wanted` is data page i of the block.
struct BlockTask {
  size_t link;   // index into the chain
  size_t block;  // index into that epoch's blocks
  uint64_t wanted;
};

struct RestorePlan {
  uint64_t pages = 0;  // the size of the space: guest pages, or the disk's blocks
  std::vector<BlockTask> tasks;
  std::vector<std::pair<uint64_t, uint64_t>> zero_runs;  // (first gfn or disk block, count)
  uint64_t data_pages = 0;
  uint64_t zero_pages = 0;
};

// Plans address space `space` (format::kMemorySpace, or a disk id). Walks the chain (newest first, as
// Catalog::chain returns it) and, inside an epoch, that space's blocks and runs last first, so the first claim of a
// page is the content it had at the target epoch. Tasks come oldest epoch first and in file order within an epoch,
// so that files are read front to back. Fails naming a page no link holds, a disk the newest epoch lacks
// (kNotFound), or a link whose space has another size.
Result<RestorePlan> plan_restore(const std::vector<std::shared_ptr<const EpochMeta>>& chain, uint32_t space);

// Calls span(first gfn, count, index of its first data page in the block) for each run of consecutive gfns of
// `block` that `wanted` selects (bit i = data page i), in run order. Stops at the first error span returns.
Status for_each_wanted_span(const BlockRef& block, uint64_t wanted,
                            const std::function<Status(uint64_t gfn, uint32_t count, uint32_t data_index)>& span);

// Calls put(first gfn, count, pages) for each run of consecutive gfns of `block` that `wanted` selects (bit i = data
// page i), `raw` being the block's decoded data pages, in run order. Stops at the first error put returns.
Status for_each_wanted_run(const BlockRef& block, uint64_t wanted, const uint8_t* raw,
                           const std::function<Status(uint64_t gfn, uint32_t count, const uint8_t* pages)>& put);

}  // namespace ckpt::snap
