#include "snapshot/restore_plan.h"

#include <algorithm>
#include <string>

namespace ckpt::snap {

Result<RestorePlan> plan_restore(const std::vector<std::shared_ptr<const EpochMeta>>& chain, uint64_t guest_pages) {
  std::vector<uint64_t> claimed((guest_pages + 63) / 64, 0);
  RestorePlan plan;
  for (size_t link = 0; link < chain.size(); ++link) {
    const EpochMeta& meta = *chain[link];
    for (size_t b = meta.blocks.size(); b-- > 0;) {
      const BlockRef& block = meta.blocks[b];
      uint64_t wanted = 0;
      uint32_t data_index = block.data_pages;
      for (size_t r = block.runs.size(); r-- > 0;) {
        const PageRun& run = block.runs[r];
        if (!run.zero) data_index -= run.count;
        for (uint32_t i = run.count; i-- > 0;) {
          uint64_t gfn = run.first_gfn + i;
          uint64_t bit = uint64_t{1} << (gfn % 64);
          if (claimed[gfn / 64] & bit) continue;
          claimed[gfn / 64] |= bit;
          if (!run.zero) {
            wanted |= uint64_t{1} << (data_index + i);
            ++plan.data_pages;
          } else if (!plan.zero_runs.empty() && plan.zero_runs.back().first == gfn + 1) {
            --plan.zero_runs.back().first;  // walking down: extend the run below
            ++plan.zero_runs.back().second;
            ++plan.zero_pages;
          } else {
            plan.zero_runs.emplace_back(gfn, 1);
            ++plan.zero_pages;
          }
        }
      }
      if (wanted != 0) plan.tasks.push_back(BlockTask{link, b, wanted});
    }
  }
  if (plan.data_pages + plan.zero_pages != guest_pages) {
    for (uint64_t w = 0; w < claimed.size(); ++w) {
      if (~claimed[w] == 0) continue;
      uint64_t gfn = w * 64 + static_cast<uint64_t>(__builtin_ctzll(~claimed[w]));
      return corruption("the chain of epoch " + std::to_string(chain.front()->header.epoch) +
                        " holds no content for gfn " + std::to_string(gfn) + " (its base is incomplete)");
    }
  }
  // Read each file front to back: oldest epoch first, blocks in file order.
  std::sort(plan.tasks.begin(), plan.tasks.end(), [](const BlockTask& a, const BlockTask& b) {
    return a.link != b.link ? a.link > b.link : a.block < b.block;
  });
  return plan;
}


Status for_each_wanted_run(const BlockRef& block, uint64_t wanted, const uint8_t* raw,
                           const std::function<Status(uint64_t gfn, uint32_t count, const uint8_t* pages)>& put) {
  uint32_t data_index = 0;
  for (const PageRun& run : block.runs) {
    if (run.zero) continue;
    uint32_t i = 0;
    while (i < run.count) {
      if (!(wanted >> (data_index + i) & 1)) {
        ++i;
        continue;
      }
      uint32_t start = i;
      while (i < run.count && (wanted >> (data_index + i) & 1)) ++i;
      CKPT_RETURN_IF_ERROR(put(run.first_gfn + start, i - start, raw + size_t{data_index + start} * format::kPageSize));
    }
    data_index += run.count;
  }
  return Status::ok();
}

}  // namespace ckpt::snap
