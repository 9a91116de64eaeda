#include "snapshot/restore_plan.h"

#include <algorithm>
#include <string>

#include "snapshot/page_bitmap.h"

namespace ckpt::snap {

namespace {

std::string space_name(uint32_t space) {
  return space == format::kMemorySpace ? "guest memory" : "disk " + std::to_string(space);
}

}  // namespace

Result<RestorePlan> plan_restore(const std::vector<std::shared_ptr<const EpochMeta>>& chain, uint32_t space) {
  if (chain.empty()) return invalid_argument("plan a restore of an empty chain");
  const EpochMeta& newest = *chain.front();
  RestorePlan plan;
  plan.pages = newest.space_size(space);
  if (plan.pages == 0) {
    return not_found("epoch " + std::to_string(newest.header.epoch) + " has no disk " + std::to_string(space) +
                     " (it has " + std::to_string(newest.disks.size()) + " disks)");
  }
  // Every run was checked against its own epoch's size of the space when its metadata was read; the same size in
  // every link keeps all of them inside `claimed` (Catalog::chain checks this too, but a plan must not trust it).
  for (const auto& link : chain) {
    if (link->space_size(space) != plan.pages) {
      return corruption("epoch " + std::to_string(link->header.epoch) + " has another size of " + space_name(space) +
                        " than epoch " + std::to_string(newest.header.epoch) + " in the chain of the latter");
    }
  }
  PageBitmap claimed(plan.pages);
  for (size_t link = 0; link < chain.size(); ++link) {
    const EpochMeta& meta = *chain[link];
    for (size_t b = meta.blocks.size(); b-- > 0;) {
      const BlockRef& block = meta.blocks[b];
      if (block.space != space) continue;
      uint64_t wanted = 0;
      uint32_t data_index = block.data_pages;
      for (size_t r = block.runs.size(); r-- > 0;) {
        const PageRun& run = block.runs[r];
        if (!run.zero) data_index -= run.count;
        claimed.claim(run.first_gfn, run.count, [&](uint64_t first, uint64_t count) {
          if (!run.zero) {
            const uint64_t bits = count == 64 ? ~uint64_t{0} : (uint64_t{1} << count) - 1;
            wanted |= bits << (data_index + (first - run.first_gfn));
            plan.data_pages += count;
            return;
          }
          plan.zero_pages += count;
          auto& runs = plan.zero_runs;
          if (!runs.empty() && runs.back().first == first + count) {  // walking down: extend the run above down
            runs.back().first = first;
            runs.back().second += count;
          } else if (!runs.empty() && runs.back().first + runs.back().second == first) {
            runs.back().second += count;
          } else {
            runs.emplace_back(first, count);
          }
        });
      }
      if (wanted != 0) plan.tasks.push_back(BlockTask{link, b, wanted});
    }
  }
  if (!claimed.full()) {
    std::string page = space == format::kMemorySpace ? "gfn " + std::to_string(claimed.first_clear())
                                                     : "block " + std::to_string(claimed.first_clear()) + " of disk " +
                                                           std::to_string(space);
    return corruption("the chain of epoch " + std::to_string(newest.header.epoch) + " holds no content for " + page +
                      " (its base is incomplete)");
  }
  // Read each file front to back: oldest epoch first, blocks in file order.
  std::sort(plan.tasks.begin(), plan.tasks.end(), [](const BlockTask& a, const BlockTask& b) {
    return a.link != b.link ? a.link > b.link : a.block < b.block;
  });
  return plan;
}


Status for_each_wanted_span(const BlockRef& block, uint64_t wanted,
                            const std::function<Status(uint64_t gfn, uint32_t count, uint32_t data_index)>& span) {
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
      CKPT_RETURN_IF_ERROR(span(run.first_gfn + start, i - start, data_index + start));
    }
    data_index += run.count;
  }
  return Status::ok();
}

Status for_each_wanted_run(const BlockRef& block, uint64_t wanted, const uint8_t* raw,
                           const std::function<Status(uint64_t gfn, uint32_t count, const uint8_t* pages)>& put) {
  return for_each_wanted_span(block, wanted, [&](uint64_t gfn, uint32_t count, uint32_t data_index) {
    return put(gfn, count, raw + size_t{data_index} * format::kPageSize);
  });
}

}  // namespace ckpt::snap
