// Which block of which epoch in a chain holds each guest page at the chain's newest epoch: the plan restore and
// compaction (rebase) both follow, so that each page is read exactly once, from the newest epoch that has it.
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
  std::vector<BlockTask> tasks;
  std::vector<std::pair<uint64_t, uint64_t>> zero_runs;  // (first gfn, count)
  uint64_t data_pages = 0;
  uint64_t zero_pages = 0;
};

// Walks the chain (newest first, as Catalog::chain returns it) and, inside an epoch, the blocks and runs last
// first, so the first claim of a gfn is the content it had at the target epoch. Tasks come oldest epoch first and in
// file order within an epoch, so that files are read front to back. Fails naming a gfn no link holds.
Result<RestorePlan> plan_restore(const std::vector<std::shared_ptr<const EpochMeta>>& chain, uint64_t guest_pages);

// Calls put(first gfn, count, pages) for each run of consecutive gfns of `block` that `wanted` selects (bit i = data
// page i), `raw` being the block's decoded data pages, in run order. Stops at the first error put returns.
Status for_each_wanted_run(const BlockRef& block, uint64_t wanted, const uint8_t* raw,
                           const std::function<Status(uint64_t gfn, uint32_t count, const uint8_t* pages)>& put);

}  // namespace ckpt::snap
