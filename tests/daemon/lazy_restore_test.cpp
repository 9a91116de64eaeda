// LazyRestore on real userfaultfds (no VM: a thread stands in for the guest): the guest sees the epoch's memory
// whatever it touches and whenever, the filler makes every page resident and lets go of the store, only the guest's
// writes are dirty, and a damaged block stops the access that needs it, is reported naming its file and offset, and
// never lets that access run on wrong memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "daemon/lazy_restore.h"
#include "snapshot/epoch_file.h"
#include "tests/snapshot/test_util.h"
#include "tests/vmm/userfaultfd_skip.h"
#include "vmm/software/uffd_wp_tracker.h"

namespace ckpt::daemon {
namespace {

using snap::testing::GuestModel;
using snap::testing::TempDir;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPages = 4096;  // 16 MiB

class LazyRestoreTest : public ::testing::Test {
 protected:
  // A base with a third of the pages zero, and three deltas; expected_ is the guest at epoch 3.
  void SetUp() override {
    auto store = snap::Store::open(dir_.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(kPages, 11);
    for (uint64_t g = 0; g < kPages; ++g) {
      if (g % 3 != 0) model.scribble(g);
    }
    snap::testing::write_base(**store, model);
    for (int d = 0; d < 3; ++d) snap::testing::write_random_delta(**store, model, 400);
    expected_ = model.bytes();
    auto memory = vmm::GuestMemory::create(kPages * kPage);
    ASSERT_TRUE(memory.is_ok());
    memory_ = std::move(*memory);
  }

  std::unique_ptr<snap::LazySource> source(uint64_t epoch = 3) {
    auto catalog = snap::Catalog::load(*fs_, dir_.path());
    EXPECT_TRUE(catalog.is_ok());
    auto opened = snap::LazySource::open(*fs_, *catalog, epoch);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    return opened.is_ok() ? std::move(*opened) : nullptr;
  }

  // Reads every page in a random order, as a guest would; the count of pages that differ from the epoch.
  size_t read_all_and_compare(uint64_t seed) {
    std::vector<uint64_t> order(kPages);
    for (uint64_t g = 0; g < kPages; ++g) order[g] = g;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
    size_t wrong = 0;
    for (uint64_t g : order) {
      if (std::memcmp(memory_->host() + g * kPage, expected_.data() + g * kPage, kPage) != 0) ++wrong;
    }
    return wrong;
  }

  TempDir dir_;
  std::unique_ptr<snap::FileSystem> fs_ = snap::make_posix_file_system(snap::WriteEngine::kPwrite);
  std::vector<uint8_t> expected_;
  std::unique_ptr<vmm::GuestMemory> memory_;
};

TEST_F(LazyRestoreTest, TheGuestSeesTheEpochWhileTheFillerRuns) {
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
  auto src = source();
  const uint64_t data_pages = src->data_pages();
  auto lazy = LazyRestore::start(std::move(src), std::move(*pages), {});
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  EXPECT_EQ(read_all_and_compare(1), 0u);
  ASSERT_TRUE((*lazy)->wait_filled(20000));
  LazyRestore::Progress p = (*lazy)->progress();
  EXPECT_TRUE(p.filled);
  EXPECT_TRUE((*lazy)->error().is_ok());
  EXPECT_EQ(p.installed_pages, data_pages);
  EXPECT_EQ(p.blocks_installed, p.blocks);
  EXPECT_EQ(p.epoch, 3u);
}

TEST_F(LazyRestoreTest, FaultsAloneBringEveryPageOneReadPerBlock) {
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
  auto src = source();
  const uint64_t blocks = src->blocks(), zero_pages = src->zero_pages();
  LazyRestore::Options options;
  options.fill_in_background = false;
  auto lazy = LazyRestore::start(std::move(src), std::move(*pages), options);
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  EXPECT_EQ(read_all_and_compare(2), 0u);
  LazyRestore::Progress p = (*lazy)->progress();
  EXPECT_TRUE(p.filled) << "every block was faulted in";
  EXPECT_EQ(p.fault_reads, blocks) << "a block's pages all come with its first fault";
  EXPECT_EQ(p.faults, blocks + zero_pages) << "each zero page is a fault of its own, with no read";
  EXPECT_EQ((*lazy)->working_set().size(), blocks);
  EXPECT_EQ(read_all_and_compare(3), 0u);
}

// The software backend: the same userfaultfd tracks writes. Pages the restore only filled in are not dirty.
TEST_F(LazyRestoreTest, OnlyTheGuestsWritesAreDirty) {
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(
      tracker, vmm::software::UffdWpTracker::create(*memory_, vmm::software::UffdWpTracker::kDefaultVectorRegions,
                                                    /*missing_too=*/true));
  auto lazy = LazyRestore::start(source(), (*tracker)->missing_pages(), {});
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  std::vector<uint64_t> written = {0, 1, 2, 77, 1000, 4095};  // zero pages and data pages, faulted by the write
  for (uint64_t g : written) memory_->host()[g * kPage + 100] ^= 0x5A;
  ASSERT_TRUE((*lazy)->wait_filled(20000));
  EXPECT_NE(read_all_and_compare(4), 0u);
  vmm::DirtyBitmap dirty(kPages);
  ASSERT_TRUE((*tracker)->harvest_and_rearm(dirty).is_ok());
  EXPECT_EQ(dirty.to_gfns(), written);
  for (uint64_t g : written) memory_->host()[g * kPage + 100] ^= 0x5A;
  EXPECT_EQ(read_all_and_compare(5), 0u);
}

TEST_F(LazyRestoreTest, ADamagedBlockStopsTheAccessThatNeedsItAndIsReported) {
  // Find a block of delta 2 (the file damaged below) and a page it holds.
  auto probe = source();
  ASSERT_NE(probe, nullptr);
  const std::string delta = dir_.sub(snap::epoch_file_name(2));
  auto bytes = snap::testing::read_file(delta);
  bytes[snap::format::kHeaderSize + 20] ^= 0xFF;  // inside the delta's first data block
  snap::testing::write_file(delta, bytes);
  uint64_t victim = UINT64_MAX;
  snap::LazySource::Reader reader;
  for (snap::LazySource::BlockIndex b = 0; b < probe->blocks() && victim == UINT64_MAX; ++b) {
    if (!probe->read(b, reader, [](uint64_t, uint32_t, const uint8_t*) { return Status::ok(); }).is_ok()) {
      victim = probe->first_gfn_of(b);
    }
  }
  ASSERT_NE(victim, UINT64_MAX);

  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
  std::atomic<int> errors{0};
  std::string message;
  LazyRestore::Options options;
  options.fill_in_background = false;
  options.on_error = [&](const Status& error) {
    message = error.to_string();
    ++errors;
  };
  auto lazy = LazyRestore::start(source(), std::move(*pages), options);
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  std::atomic<bool> done{false};
  std::thread guest([&] {
    volatile uint8_t byte = memory_->host()[victim * kPage];
    (void)byte;
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done) << "the access to a damaged block must not go on";
  EXPECT_EQ(errors.load(), 1);
  EXPECT_NE(message.find(delta), std::string::npos) << message;
  EXPECT_NE(message.find("offset"), std::string::npos) << message;
  EXPECT_FALSE((*lazy)->error().is_ok());
  // Other pages are still served (a page of epoch 3's own blocks, or a zero page).
  EXPECT_EQ(std::memcmp(memory_->host(), expected_.data(), kPage), 0);
  // Tearing the guest down: the stuck access ends (on zeros).
  (*lazy)->abandon();
  guest.join();
  EXPECT_TRUE(done);
}

// The working-set record: what the guest faulted on first, in its order, then the prefetch list's other blocks.
TEST_F(LazyRestoreTest, TheWorkingSetIsTheGuestsFaultsInOrderThenThePrefetchLeftovers) {
  auto probe = source();
  ASSERT_NE(probe, nullptr);
  // Three data pages in three different blocks, and a zero page.
  std::vector<uint64_t> data;
  for (uint64_t g = 0; g < kPages && data.size() < 3; ++g) {
    if (probe->block_of(g) == snap::LazySource::kZeroBlock) continue;
    bool new_block = true;
    for (uint64_t d : data) new_block &= probe->block_of(d) != probe->block_of(g);
    if (new_block) data.push_back(g);
  }
  ASSERT_EQ(data.size(), 3u);
  uint64_t zero = 0;
  while (probe->block_of(zero) != snap::LazySource::kZeroBlock) ++zero;
  auto first_of = [&](uint64_t g) { return probe->first_gfn_of(probe->block_of(g)); };

  for (size_t limit : {size_t{16}, size_t{2}}) {
    SCOPED_TRACE(limit);
    auto fresh = vmm::GuestMemory::create(kPages * kPage);  // all missing again
    ASSERT_TRUE(fresh.is_ok());
    memory_ = std::move(*fresh);
    ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
    LazyRestore::Options options;
    options.fill_in_background = false;
    options.record_limit = limit;
    // Listed: the third page's block, the first page's (faulted below, so listed once), a zero page, a gfn beyond.
    options.prefetch_gfns = {data[2], data[0], zero, kPages + 5};
    auto lazy = LazyRestore::start(source(), std::move(*pages), options);
    ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
    for (uint64_t g : {data[1], zero, data[0], data[1]}) {
      EXPECT_EQ(std::memcmp(memory_->host() + g * kPage, expected_.data() + g * kPage, kPage), 0) << g;
    }
    std::vector<uint64_t> want = {first_of(data[1]), first_of(data[0]), first_of(data[2])};
    want.resize(std::min(want.size(), limit));
    // The filler thread makes the fill order after the guest starts (the prefetch leftovers come from it): wait for
    // it, as the record is only ever taken once the fill is over.
    for (int i = 0; i < 2000 && (*lazy)->progress().prefetch_blocks == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ((*lazy)->working_set(), want);
    EXPECT_EQ((*lazy)->progress().prefetch_blocks, 2u);
  }
}

TEST_F(LazyRestoreTest, ThePrefetchListsBlocksComeFirstThenTheRestInFileOrder) {
  auto probe = source();
  ASSERT_NE(probe, nullptr);
  ASSERT_GE(probe->blocks(), 10u);
  const uint64_t b7 = probe->first_gfn_of(7), b2 = probe->first_gfn_of(2);
  uint64_t zero = 0;
  while (probe->block_of(zero) != snap::LazySource::kZeroBlock) ++zero;
  LazyRestore::FillOrder order =
      LazyRestore::fill_order(*probe, std::vector<uint64_t>{b7, zero, b2, b7 + 1, kPages, b2});
  EXPECT_EQ(order.prefetched, 2u);
  ASSERT_EQ(order.blocks.size(), probe->blocks());
  EXPECT_EQ(order.blocks[0], 7u);
  EXPECT_EQ(order.blocks[1], 2u);
  std::vector<snap::LazySource::BlockIndex> rest(order.blocks.begin() + 2, order.blocks.end());
  EXPECT_TRUE(std::is_sorted(rest.begin(), rest.end()));
  EXPECT_EQ(std::count(rest.begin(), rest.end(), 7u) + std::count(rest.begin(), rest.end(), 2u), 0);
}

TEST_F(LazyRestoreTest, OnceFilledTheRecordIsHandedOverOnce) {
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
  auto probe = source();
  ASSERT_NE(probe, nullptr);
  std::mutex mu;
  std::vector<std::vector<uint64_t>> handed;
  LazyRestore::Options options;
  options.prefetch_gfns = {probe->first_gfn_of(3), probe->first_gfn_of(1)};
  options.on_filled = [&](std::vector<uint64_t> working_set) {
    std::lock_guard lock(mu);
    handed.push_back(std::move(working_set));
  };
  auto lazy = LazyRestore::start(source(), std::move(*pages), options);
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  ASSERT_TRUE((*lazy)->wait_filled(20000));
  // The filler hands the record over after the last block went in: wait for it, then end the restore.
  for (int i = 0; i < 2000; ++i) {
    {
      std::lock_guard lock(mu);
      if (!handed.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  lazy->reset();
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0], (std::vector<uint64_t>{probe->first_gfn_of(3), probe->first_gfn_of(1)}));
  EXPECT_EQ(read_all_and_compare(6), 0u);
}

// Once every page is in, a machine's own registration (KVM's) ends: a hole the guest touches later is the kernel's
// zero page, with no round trip to the fault thread.
TEST_F(LazyRestoreTest, OnceAllIsInHolesNoLongerFault) {
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, vmm::MissingPages::create(*memory_));
  auto probe = source();
  ASSERT_NE(probe, nullptr);
  std::vector<uint64_t> zeros;
  for (uint64_t g = 0; g < kPages && zeros.size() < 16; ++g) {
    if (probe->block_of(g) == snap::LazySource::kZeroBlock) zeros.push_back(g);
  }
  ASSERT_EQ(zeros.size(), 16u);
  std::atomic<bool> handed{false};
  LazyRestore::Options options;
  options.on_filled = [&](std::vector<uint64_t>) { handed = true; };  // called after the release
  auto lazy = LazyRestore::start(source(), std::move(*pages), options);
  ASSERT_TRUE(lazy.is_ok()) << lazy.status().to_string();
  ASSERT_TRUE((*lazy)->wait_filled(20000));
  for (int i = 0; i < 2000 && !handed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(handed);
  const uint64_t faults = (*lazy)->progress().faults;
  for (uint64_t g : zeros) EXPECT_EQ(memory_->host()[g * kPage + 7], 0) << g;
  EXPECT_EQ((*lazy)->progress().faults, faults) << "holes still went through the fault thread";
  EXPECT_TRUE((*lazy)->error().is_ok());
  EXPECT_EQ(read_all_and_compare(7), 0u);
}

}  // namespace
}  // namespace ckpt::daemon
