// The staging area: usable at once, every page of it touched once wait_populated() returns (no pause pays for a
// first touch), and torn down cleanly while it is still being touched.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "daemon/staging_area.h"

namespace ckpt::daemon {
namespace {

uint64_t resident_pages(const uint8_t* data, uint64_t pages) {
  std::vector<unsigned char> in_core(pages);
  EXPECT_EQ(::mincore(const_cast<uint8_t*>(data), pages * StagingArea::kPage, in_core.data()), 0);
  uint64_t resident = 0;
  for (unsigned char c : in_core) resident += c & 1;
  return resident;
}

TEST(StagingAreaTest, EveryPageIsTouchedOnceWaitPopulatedReturns) {
  constexpr uint64_t kPages = (64ull << 20) / StagingArea::kPage;
  auto area = StagingArea::create(kPages * StagingArea::kPage);
  ASSERT_TRUE(area.is_ok()) << area.status().to_string();
  StagingArea moved = std::move(*area);  // the touching thread does not care where the area object lives
  moved.wait_populated();
  EXPECT_EQ(resident_pages(moved.slot(0), kPages), kPages);
  moved.wait_populated();  // again: at once
  std::vector<uint8_t> memory(3 * StagingArea::kPage, 7);
  const std::vector<uint64_t> gfns = {2, 0};
  moved.copy_in(memory, gfns, kPages - 2);
  EXPECT_EQ(moved.slot(kPages - 1)[0], 7);
}

TEST(StagingAreaTest, DestroyedWhileStillBeingTouched) {
  for (int i = 0; i < 20; ++i) {
    auto area = StagingArea::create(256ull << 20);
    ASSERT_TRUE(area.is_ok()) << area.status().to_string();
  }  // each goes at once: its thread stops at the next chunk and is joined before the unmap
}

}  // namespace
}  // namespace ckpt::daemon
