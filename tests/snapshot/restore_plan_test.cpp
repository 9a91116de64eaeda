// The restore plan claims pages a word at a time (PageBitmap::claim); these tests hold it to the rule it implements,
// written here the slow way: a page's content is the first claim of it, walking the chain newest first and, within
// an epoch, blocks and runs last first.
#include <gtest/gtest.h>

#include <random>

#include "snapshot/page_bitmap.h"
#include "snapshot/restore_plan.h"

namespace ckpt::snap {
namespace {

TEST(PageBitmap, ClaimReportsExactlyTheNewlySetPagesAsMaximalAscendingRuns) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const uint64_t size = 1 + rng() % 700;
    PageBitmap fast(size);
    std::vector<bool> slow(size, false);
    for (int op = 0; op < 30; ++op) {
      const uint64_t first = rng() % size;
      const uint64_t count = 1 + rng() % (size - first);
      std::vector<std::pair<uint64_t, uint64_t>> pieces;
      fast.claim(first, count, [&](uint64_t f, uint64_t n) { pieces.emplace_back(f, n); });
      std::vector<std::pair<uint64_t, uint64_t>> expected;
      for (uint64_t p = first; p < first + count; ++p) {
        if (slow[p]) continue;
        slow[p] = true;
        if (!expected.empty() && expected.back().first + expected.back().second == p) {
          ++expected.back().second;
        } else {
          expected.emplace_back(p, 1);
        }
      }
      ASSERT_EQ(pieces, expected) << "trial " << trial << " op " << op << ": claim " << first << "+" << count;
    }
    uint64_t set = 0;
    for (uint64_t p = 0; p < size; ++p) {
      ASSERT_EQ(fast.test(p), slow[p]) << p;
      set += slow[p];
    }
    EXPECT_EQ(fast.count(), set);
  }
}

// A chain of `links` epochs over `pages` pages: a base whose blocks cover every page (runs of mixed sizes, some
// zero), then deltas whose blocks hold random runs that overlap each other, inside an epoch as across epochs.
std::vector<std::shared_ptr<const EpochMeta>> random_chain(std::mt19937_64& rng, uint64_t pages, size_t links) {
  std::vector<std::shared_ptr<const EpochMeta>> chain;  // newest first
  auto block_of = [&](std::vector<PageRun> runs) {
    BlockRef block;
    for (const PageRun& run : runs) block.data_pages += run.zero ? 0 : run.count;
    block.runs = std::move(runs);
    return block;
  };
  for (size_t link = 0; link < links; ++link) {
    auto meta = std::make_shared<EpochMeta>();
    meta->header.epoch = link + 1;
    meta->header.guest_pages = pages;
    if (link == 0) {
      std::vector<PageRun> runs;
      uint32_t data = 0;
      for (uint64_t gfn = 0; gfn < pages;) {
        const bool zero = rng() % 3 == 0;
        uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(1 + rng() % (zero ? 300 : 70), pages - gfn));
        if (!zero) count = std::min<uint32_t>(count, 64 - data);
        runs.push_back(PageRun{gfn, count, zero});
        gfn += count;
        if (!zero) data += count;
        if (data == 64 || rng() % 4 == 0) {
          meta->blocks.push_back(block_of(std::move(runs)));
          runs.clear();
          data = 0;
        }
      }
      if (!runs.empty()) meta->blocks.push_back(block_of(std::move(runs)));
    } else {
      for (int b = 0, blocks = 1 + static_cast<int>(rng() % 6); b < blocks; ++b) {
        std::vector<PageRun> runs;
        uint32_t data = 0;
        for (int r = 0, n = 1 + static_cast<int>(rng() % 5); r < n && data < 64; ++r) {
          const bool zero = rng() % 3 == 0;
          const uint64_t first = rng() % pages;
          uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(1 + rng() % 80, pages - first));
          if (!zero) count = std::min<uint32_t>(count, 64 - data);
          runs.push_back(PageRun{first, count, zero});
          if (!zero) data += count;
        }
        meta->blocks.push_back(block_of(std::move(runs)));
      }
    }
    chain.insert(chain.begin(), std::move(meta));
  }
  return chain;
}

struct PageSource {
  size_t link, block;
  int data_index;  // -1: zero
  bool operator==(const PageSource&) const = default;
};

// The rule, a page at a time.
std::vector<PageSource> reference_plan(const std::vector<std::shared_ptr<const EpochMeta>>& chain, uint64_t pages) {
  std::vector<PageSource> source(pages, PageSource{SIZE_MAX, SIZE_MAX, -2});
  std::vector<bool> claimed(pages, false);
  for (size_t link = 0; link < chain.size(); ++link) {
    const auto& blocks = chain[link]->blocks;
    for (size_t b = blocks.size(); b-- > 0;) {
      int data_index = static_cast<int>(blocks[b].data_pages);
      for (size_t r = blocks[b].runs.size(); r-- > 0;) {
        const PageRun& run = blocks[b].runs[r];
        if (!run.zero) data_index -= static_cast<int>(run.count);
        for (uint32_t i = run.count; i-- > 0;) {
          const uint64_t gfn = run.first_gfn + i;
          if (claimed[gfn]) continue;
          claimed[gfn] = true;
          source[gfn] = PageSource{link, b, run.zero ? -1 : data_index + static_cast<int>(i)};
        }
      }
    }
  }
  return source;
}

TEST(RestorePlan, EveryPageComesFromItsFirstClaimNewestFirst) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const uint64_t pages = 1 + rng() % 2000;
    auto chain = random_chain(rng, pages, 1 + rng() % 5);
    auto plan = plan_restore(chain, format::kMemorySpace);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    const std::vector<PageSource> expected = reference_plan(chain, pages);

    std::vector<PageSource> planned(pages, PageSource{SIZE_MAX, SIZE_MAX, -2});
    std::vector<int> claims(pages, 0);
    for (const BlockTask& task : plan->tasks) {
      ASSERT_NE(task.wanted, 0u);
      Status spans = for_each_wanted_span(chain[task.link]->blocks[task.block], task.wanted,
                                          [&](uint64_t gfn, uint32_t count, uint32_t data_index) {
                                            for (uint32_t i = 0; i < count; ++i) {
                                              planned[gfn + i] = PageSource{task.link, task.block,
                                                                            static_cast<int>(data_index + i)};
                                              ++claims[gfn + i];
                                            }
                                            return Status::ok();
                                          });
      ASSERT_TRUE(spans.is_ok());
    }
    uint64_t zero_pages = 0;
    for (const auto& [first, count] : plan->zero_runs) {
      for (uint64_t gfn = first; gfn < first + count; ++gfn) {
        ASSERT_EQ(expected[gfn].data_index, -1) << "trial " << trial << ": gfn " << gfn << " planned zero";
        ++claims[gfn];
        ++zero_pages;
      }
    }
    uint64_t data_pages = 0;
    for (uint64_t gfn = 0; gfn < pages; ++gfn) {
      ASSERT_EQ(claims[gfn], 1) << "trial " << trial << ": gfn " << gfn << " planned " << claims[gfn] << " times";
      if (expected[gfn].data_index >= 0) {
        ASSERT_EQ(planned[gfn], expected[gfn]) << "trial " << trial << ": gfn " << gfn;
        ++data_pages;
      }
    }
    EXPECT_EQ(plan->data_pages, data_pages);
    EXPECT_EQ(plan->zero_pages, zero_pages);
    // Files front to back: oldest epoch first, blocks in file order, each block once.
    for (size_t t = 1; t < plan->tasks.size(); ++t) {
      const BlockTask& a = plan->tasks[t - 1];
      const BlockTask& b = plan->tasks[t];
      EXPECT_TRUE(a.link > b.link || (a.link == b.link && a.block < b.block)) << "task " << t;
    }
  }
}

TEST(RestorePlan, AChainMissingAPageIsCorruptionNamingIt) {
  auto meta = std::make_shared<EpochMeta>();
  meta->header.epoch = 3;
  meta->header.guest_pages = 200;
  BlockRef block;
  block.runs = {PageRun{0, 130, true}, PageRun{131, 69, true}};
  meta->blocks.push_back(block);
  auto plan = plan_restore({meta}, format::kMemorySpace);
  ASSERT_EQ(plan.status().code(), StatusCode::kCorruption);
  EXPECT_NE(plan.status().message().find("gfn 130"), std::string::npos) << plan.status().to_string();
}

}  // namespace
}  // namespace ckpt::snap
