// Compaction folds old epochs into a new base atomically; retention picks the epoch to compact to.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <map>

#include "snapshot/epoch_file.h"
#include "snapshot/io/fault_file_system.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

// Writes a base and `deltas` deltas with timestamps 1000 + epoch; returns each epoch's memory.
std::map<uint64_t, std::vector<uint8_t>> write_chain(Store& store, uint64_t deltas, uint64_t seed = 31) {
  std::map<uint64_t, std::vector<uint8_t>> expected;
  GuestModel model(130, seed);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  testing::write_base(store, model, EpochOptions{"", 1000});
  expected[0] = model.bytes();
  for (uint64_t e = 1; e <= deltas; ++e) {
    testing::write_random_delta(store, model, 20, EpochOptions{"t" + std::to_string(e), 1000 + e});
    expected[e] = model.bytes();
  }
  return expected;
}

void expect_restorable(const std::string& dir, const std::map<uint64_t, std::vector<uint8_t>>& expected,
                       uint64_t from) {
  for (const auto& [epoch, memory] : expected) {
    if (epoch < from) continue;
    EXPECT_EQ(testing::restore_epoch(dir, epoch), memory) << "epoch " << epoch;
  }
}

TEST(Compaction, FoldsOlderEpochsIntoANewBase) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto expected = write_chain(**store, 30);
  ASSERT_TRUE((*store)->compact(20).is_ok());
  Catalog catalog = (*store)->catalog_snapshot();
  EXPECT_EQ(catalog.entries().begin()->first, 20u);
  EXPECT_EQ(catalog.entries().size(), 11u);
  const EpochMeta& base = *catalog.entries().at(20).meta;
  EXPECT_EQ(base.header.kind, EpochKind::kBase);
  EXPECT_EQ(base.floor, 20u);
  EXPECT_EQ(base.tag, "t20");
  EXPECT_EQ(base.timestamp_ns, 1020u);
  expect_restorable(dir.path(), expected, 20);
  for (uint64_t e = 0; e < 20; ++e) EXPECT_FALSE(std::filesystem::exists(dir.sub(epoch_file_name(e))));
  auto report = verify_store((*store)->fs(), dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok());

  // The store carries on from the compacted chain, also after reopening.
  store->reset();
  auto reopened = Store::open(dir.path());
  ASSERT_TRUE(reopened.is_ok());
  EXPECT_EQ((*reopened)->newest(), 30u);
  EXPECT_TRUE((*reopened)->compact(30).is_ok());
  expect_restorable(dir.path(), expected, 30);
}

TEST(Compaction, ToTheBaseItselfChangesNothing) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto expected = write_chain(**store, 3);
  ASSERT_TRUE((*store)->compact(0).is_ok());
  EXPECT_EQ((*store)->epoch_count(), 4u);
  expect_restorable(dir.path(), expected, 0);
  EXPECT_EQ((*store)->compact(9).code(), StatusCode::kNotFound);
}

TEST(Compaction, RefusesToOrphanABranch) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(40, 32);
  testing::write_base(**store, model);
  testing::write_random_delta(**store, model, 5);
  testing::write_random_delta(**store, model, 5);
  testing::write_random_delta(**store, model, 5, EpochOptions{"", std::nullopt, 1});  // epoch 3 branches off 1
  Status s = (*store)->compact(2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("epoch 3 does not descend from epoch 2"), std::string::npos) << s.to_string();
  EXPECT_EQ((*store)->epoch_count(), 4u);
}

TEST(Compaction, CrashAtEveryOperationLeavesARestorableStore) {
  TempDir prepared;
  std::map<uint64_t, std::vector<uint8_t>> expected;
  {
    auto store = Store::open(prepared.path());
    ASSERT_TRUE(store.is_ok());
    expected = write_chain(**store, 8);
  }
  const uint64_t k = 5;
  uint64_t total_ops = 0;
  for (uint64_t n = 0; total_ops == 0 || n <= total_ops; ++n) {
    TempDir dir;
    std::filesystem::copy(prepared.path(), dir.path(), std::filesystem::copy_options::recursive |
                                                           std::filesystem::copy_options::overwrite_existing);
    {
      auto fs = std::make_shared<FaultFileSystem>(make_posix_file_system(WriteEngine::kIoUring));
      StoreOptions options;
      options.fs = fs;
      auto store = Store::open(dir.path(), options);
      ASSERT_TRUE(store.is_ok());
      uint64_t start = fs->operations();
      fs->fail_at(start + n, EIO, /*sticky=*/true);
      Status s = (*store)->compact(k);
      if (s.is_ok()) total_ops = fs->operations() - start;  // ran past the end: the fault never fired
      store->reset();
      ASSERT_TRUE(fs->drop_unsynced_data().is_ok());
    }
    auto store = Store::open(dir.path());  // finishes an interrupted compaction's clean-up
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    Catalog catalog = (*store)->catalog_snapshot();
    for (const auto& [epoch, entry] : catalog.entries()) {
      EXPECT_EQ(testing::restore_epoch(dir.path(), epoch), expected.at(epoch)) << "crash at op " << n;
    }
    expect_restorable(dir.path(), expected, k);
    auto report = verify_store((*store)->fs(), dir.path());
    ASSERT_TRUE(report.is_ok());
    EXPECT_TRUE(report->ok()) << "crash at op " << n << ": " << report->problems.front().status.to_string();
    if (total_ops != 0) break;
  }
  EXPECT_GT(total_ops, 5u);
}

TEST(Retention, KeepLastN) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto expected = write_chain(**store, 12);
  auto removed = (*store)->apply_retention(RetentionPolicy{5, std::nullopt});
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 8u);
  EXPECT_EQ((*store)->catalog_snapshot().entries().begin()->first, 8u);
  expect_restorable(dir.path(), expected, 8);
  auto again = (*store)->apply_retention(RetentionPolicy{5, std::nullopt});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(*again, 0u);
}

TEST(Retention, KeepNewerThanAndUnionOfRules) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto expected = write_chain(**store, 12);
  // Timestamps are 1000 + epoch: "newer than 1007" keeps 7..12, "last 3" keeps 10..12; together 7..12.
  auto removed = (*store)->apply_retention(RetentionPolicy{3, 1007});
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 7u);
  expect_restorable(dir.path(), expected, 7);
  EXPECT_EQ((*store)->apply_retention(RetentionPolicy{}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->apply_retention(RetentionPolicy{0, std::nullopt}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ckpt::snap
