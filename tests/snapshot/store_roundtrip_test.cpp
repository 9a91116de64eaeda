// Round trips through the store: what is written at an epoch is what restore gives back, bit for bit.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/unique_fd.h"
#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions options = {}) {
  auto store = Store::open(dir, std::move(options));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  return store.is_ok() ? std::move(store).value() : nullptr;
}

TEST(StoreRoundTrip, LongChainEveryEpochRestoresBitExact) {
  TempDir dir;
  GuestModel model(256, 1);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  auto store = open_store(dir.path());
  std::vector<std::vector<uint8_t>> expected;
  testing::write_base(*store, model);
  expected.push_back(model.bytes());
  for (int e = 1; e <= 120; ++e) {
    testing::write_random_delta(*store, model, 1 + model.rng()() % 40);
    expected.push_back(model.bytes());
  }
  ASSERT_EQ(store->newest(), 120u);
  for (uint64_t e = 0; e < expected.size(); ++e) {
    ASSERT_EQ(testing::restore_epoch(dir.path(), e), expected[e]) << "epoch " << e;
  }
  auto report = verify_store(store->fs(), dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
  EXPECT_EQ(report->epochs_checked, 121u);
}

TEST(StoreRoundTrip, ZeroPagesAreRecordedExplicitlyAndRestored) {
  TempDir dir;
  GuestModel model(128, 2);
  for (uint64_t g = 0; g < model.pages(); ++g) std::memset(model.page(g), 0x11, format::kPageSize);
  auto store = open_store(dir.path());
  testing::write_base(*store, model);
  auto writer = store->begin_delta();
  ASSERT_TRUE(writer.is_ok());
  for (uint64_t g = 10; g < 20; ++g) {
    std::memset(model.page(g), 0, format::kPageSize);
    ASSERT_TRUE((*writer)->add_page(g, model.page(g)).is_ok());
  }
  auto meta = (*writer)->commit();
  ASSERT_TRUE(meta.is_ok());
  EXPECT_EQ((*meta)->stats.zero_pages, 10u);
  EXPECT_EQ((*meta)->stats.data_pages, 0u);
  EXPECT_EQ((*meta)->stats.stored_bytes, 0u);
  EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
  EXPECT_NE(testing::restore_epoch(dir.path(), 0), model.bytes());
}

TEST(StoreRoundTrip, EmptyEpochRestoresLikeItsParent) {
  TempDir dir;
  GuestModel model(64, 3);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  auto store = open_store(dir.path());
  testing::write_base(*store, model);
  auto writer = store->begin_delta(EpochOptions{"quiet"});
  ASSERT_TRUE(writer.is_ok());
  ASSERT_TRUE((*writer)->add_state("vcpu0", std::vector<uint8_t>{1, 2, 3}).is_ok());
  auto meta = (*writer)->commit();
  ASSERT_TRUE(meta.is_ok());
  EXPECT_EQ((*meta)->blocks.size(), 0u);
  EXPECT_EQ((*meta)->tag, "quiet");
  EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
}

TEST(StoreRoundTrip, PageWrittenTwiceInOneEpochKeepsTheLaterContent) {
  TempDir dir;
  GuestModel model(200, 4);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  auto store = open_store(dir.path());
  testing::write_base(*store, model);
  auto writer = store->begin_delta();
  ASSERT_TRUE(writer.is_ok());
  std::vector<uint8_t> first(format::kPageSize, 0x42), zero(format::kPageSize, 0);
  // gfn 5: data, then (after more than a block of other pages) other data; gfn 6: data then zero; gfn 7: zero then
  // data, in the same block.
  ASSERT_TRUE((*writer)->add_page(5, first.data()).is_ok());
  ASSERT_TRUE((*writer)->add_page(6, first.data()).is_ok());
  ASSERT_TRUE((*writer)->add_page(7, zero.data()).is_ok());
  ASSERT_TRUE((*writer)->add_page(7, first.data()).is_ok());
  for (uint64_t g = 100; g < 190; ++g) {
    model.scribble(g);
    ASSERT_TRUE((*writer)->add_page(g, model.page(g)).is_ok());
  }
  std::memset(model.page(5), 0x77, format::kPageSize);
  ASSERT_TRUE((*writer)->add_page(5, model.page(5)).is_ok());
  ASSERT_TRUE((*writer)->add_page(6, zero.data()).is_ok());
  std::memset(model.page(6), 0, format::kPageSize);
  std::memset(model.page(7), 0x42, format::kPageSize);
  ASSERT_TRUE((*writer)->commit().is_ok());
  EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
}

TEST(StoreRoundTrip, HighGfnsAndBoundsChecks) {
  TempDir dir;
  const uint64_t pages = uint64_t{1} << 18;  // 1 GiB guest, almost all zero
  auto store = open_store(dir.path());
  std::vector<uint8_t> zero(format::kPageSize, 0), mark(format::kPageSize, 0);
  {
    auto base = store->begin_base(pages);
    ASSERT_TRUE(base.is_ok());
    for (uint64_t g = 0; g < pages; ++g) ASSERT_TRUE((*base)->add_page(g, zero.data()).is_ok());
    ASSERT_TRUE((*base)->commit().is_ok());
  }
  auto delta = store->begin_delta();
  ASSERT_TRUE(delta.is_ok());
  for (uint64_t g : {pages - 1, pages - 64, pages / 2}) {
    std::memcpy(mark.data(), &g, sizeof g);
    ASSERT_TRUE((*delta)->add_page(g, mark.data()).is_ok());
  }
  Status outside = (*delta)->add_page(pages, mark.data());
  EXPECT_EQ(outside.code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*delta)->commit().is_ok());

  auto catalog = Catalog::load(store->fs(), dir.path());
  ASSERT_TRUE(catalog.is_ok());
  TempDir out;  // never into the store: restore_to_file refuses that
  std::string image = out.sub("image.raw");
  auto stats = restore_to_file(store->fs(), *catalog, 1, image);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->data_pages, 3u);
  EXPECT_EQ(stats->zero_pages, pages - 3);
  auto image_file = store->fs().open(image);
  ASSERT_TRUE(image_file.is_ok());
  ASSERT_EQ((*image_file)->size(), pages * format::kPageSize);
  for (uint64_t g : {pages - 1, pages - 64, pages / 2, pages - 2}) {
    std::vector<uint8_t> got(format::kPageSize), want(format::kPageSize, 0);
    if (g != pages - 2) std::memcpy(want.data(), &g, sizeof g);
    ASSERT_TRUE((*image_file)->read(g * format::kPageSize, got.size(), got.data()).is_ok());
    EXPECT_EQ(got, want) << "gfn " << g;
  }
}

TEST(StoreRoundTrip, IncompleteBaseIsRefused) {
  TempDir dir;
  auto store = open_store(dir.path());
  auto base = store->begin_base(16);
  ASSERT_TRUE(base.is_ok());
  std::vector<uint8_t> page(format::kPageSize, 1);
  for (uint64_t g = 0; g < 15; ++g) ASSERT_TRUE((*base)->add_page(g, page.data()).is_ok());
  auto committed = (*base)->commit();
  EXPECT_EQ(committed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(committed.status().message().find("lacks 1 guest pages"), std::string::npos);
  base->reset();
  EXPECT_TRUE((store->epoch_count() == 0));
}

TEST(StoreRoundTrip, ReopenContinuesTheChain) {
  TempDir dir;
  GuestModel model(64, 5);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  std::vector<std::vector<uint8_t>> expected;
  {
    auto store = open_store(dir.path());
    testing::write_base(*store, model);
    expected.push_back(model.bytes());
    testing::write_random_delta(*store, model, 10);
    expected.push_back(model.bytes());
  }
  auto store = open_store(dir.path());
  ASSERT_EQ(store->newest(), 1u);
  testing::write_random_delta(*store, model, 10);
  expected.push_back(model.bytes());
  for (uint64_t e = 0; e < expected.size(); ++e) EXPECT_EQ(testing::restore_epoch(dir.path(), e), expected[e]);
}

TEST(StoreRoundTrip, BranchFromAnOlderParent) {
  TempDir dir;
  GuestModel model(64, 6);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  auto store = open_store(dir.path());
  testing::write_base(*store, model);
  auto at_base = model.bytes();
  testing::write_random_delta(*store, model, 20);
  // Epoch 2 continues from epoch 0, as after restarting the guest from the base.
  GuestModel branch(64, 7);
  std::memcpy(branch.page(0), at_base.data(), at_base.size());
  testing::write_random_delta(*store, branch, 5, EpochOptions{"", std::nullopt, 0});
  EXPECT_EQ(testing::restore_epoch(dir.path(), 2), branch.bytes());
  EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
}

TEST(StoreRoundTrip, OneWriterPerStore) {
  TempDir dir;
  auto first = open_store(dir.path());
  auto second = Store::open(dir.path());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
}

// Writes the same epochs with the given options; returns the bytes of every epoch file.
std::vector<std::vector<uint8_t>> write_fixed_store(const std::string& dir, StoreOptions options) {
  options.store_id = 0x1234;
  auto store = open_store(dir, std::move(options));
  GuestModel model(300, 9);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  testing::write_base(*store, model, EpochOptions{"base", 1000});
  for (uint64_t e = 1; e <= 5; ++e) testing::write_random_delta(*store, model, 150, EpochOptions{"", 1000 + e});
  std::vector<std::vector<uint8_t>> files;
  for (uint64_t e = 0; e <= 5; ++e) files.push_back(testing::read_file(dir + "/" + epoch_file_name(e)));
  return files;
}

TEST(StoreRoundTrip, IoUringAndPwriteWriteIdenticalBytes) {
  std::string why;
  if (!io_uring_available(&why)) GTEST_SKIP() << "io_uring unavailable: " << why;
  TempDir a, b, c;
  auto uring = write_fixed_store(a.path(), StoreOptions{WriteEngine::kIoUring, 4, 1, 3});
  auto pwrite = write_fixed_store(b.path(), StoreOptions{WriteEngine::kPwrite, 16, 1, 1});
  auto uring_deep = write_fixed_store(c.path(), StoreOptions{WriteEngine::kIoUring, 64, 1, 2});
  ASSERT_EQ(uring.size(), pwrite.size());
  for (size_t i = 0; i < uring.size(); ++i) {
    EXPECT_FALSE(uring[i].empty());
    EXPECT_EQ(uring[i], pwrite[i]) << "epoch " << i;
    EXPECT_EQ(uring[i], uring_deep[i]) << "epoch " << i;
  }
}

}  // namespace
}  // namespace ckpt::snap

namespace ckpt::snap {
namespace {

// restore_to_zeroed_fd (the eager restore into a new VM's memfd): into a file that already reads as zero, the result
// is the same without writing zero pages; the pages it skips are exactly the zero pages (a file that is not zeroed
// shows them untouched).
TEST(StoreRoundTrip, RestoreIntoAZeroedFileSkipsOnlyZeroPages) {
  testing::TempDir dir;
  testing::GuestModel model(192, 9);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  for (uint64_t g = 40; g < 60; ++g) std::memset(model.page(g), 0, format::kPageSize);
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  testing::write_base(**store, model);
  testing::write_random_delta(**store, model, 30);
  const uint64_t newest = *(*store)->newest();
  auto fs = make_posix_file_system();
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok());
  const size_t bytes = model.bytes().size();
  auto restore_into = [&](uint8_t fill) {
    UniqueFd fd(::memfd_create("restore-test", MFD_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    std::vector<uint8_t> image(bytes, fill);
    EXPECT_EQ(::pwrite(fd.get(), image.data(), bytes, 0), static_cast<ssize_t>(bytes));
    auto restored = restore_to_zeroed_fd(*fs, *catalog, newest, fd.get(), bytes, "the test's memfd");
    EXPECT_TRUE(restored.is_ok()) << restored.status().to_string();
    EXPECT_EQ(::pread(fd.get(), image.data(), bytes, 0), static_cast<ssize_t>(bytes));
    return image;
  };
  EXPECT_EQ(restore_into(0), model.bytes());
  const std::vector<uint8_t> marked = restore_into(0xA5);
  for (uint64_t g = 0; g < model.pages(); ++g) {
    const uint8_t* want = model.page(g);
    bool zero = std::all_of(want, want + format::kPageSize, [](uint8_t b) { return b == 0; });
    const uint8_t* got = marked.data() + g * format::kPageSize;
    if (zero) EXPECT_EQ(got[0], 0xA5) << "zero page " << g << " was written";
    else EXPECT_EQ(std::memcmp(got, want, format::kPageSize), 0) << "data page " << g;
  }
}

}  // namespace
}  // namespace ckpt::snap
