// Rebase, lazy retention, and maintenance running beside the epoch writer; and that restore, verify and compaction
// hold a bounded number of files open however long the chain.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

std::map<uint64_t, std::vector<uint8_t>> write_chain(Store& store, GuestModel& model, uint64_t deltas,
                                                     uint64_t pages_per_delta = 7) {
  std::map<uint64_t, std::vector<uint8_t>> expected;
  if (store.epoch_count() == 0) {
    for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
    testing::write_base(store, model, EpochOptions{"base", 1000});
    expected[0] = model.bytes();
  }
  for (uint64_t i = 0; i < deltas; ++i) {
    auto meta = testing::write_random_delta(store, model, pages_per_delta);
    expected[meta->header.epoch] = model.bytes();
  }
  return expected;
}

size_t chain_length(const Store& store, uint64_t epoch) {
  auto chain = store.catalog_snapshot().chain(epoch);
  EXPECT_TRUE(chain.is_ok()) << chain.status().to_string();
  return chain.is_ok() ? chain->size() : 0;
}

// Every epoch the store holds restores to the memory it had, and the store verifies clean.
void expect_every_epoch_restores(Store& store, const std::string& dir,
                                 std::map<uint64_t, std::vector<uint8_t>>& expected) {
  Catalog catalog = store.catalog_snapshot();
  for (const auto& [epoch, entry] : catalog.entries()) {
    EXPECT_EQ(testing::restore_epoch(dir, epoch), expected[epoch]) << epoch;
  }
  auto report = verify_store(store.fs(), dir);
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
}

TEST(Rebase, RewritesADeltaAsABaseAndKeepsEveryEpoch) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(200, 41);
  auto expected = write_chain(**store, model, 30);
  EXPECT_EQ(chain_length(**store, 30), 31u);
  ASSERT_TRUE((*store)->rebase(20).is_ok());
  Catalog catalog = (*store)->catalog_snapshot();
  EXPECT_EQ(catalog.entries().size(), 31u);  // nothing removed
  const EpochMeta& base = *catalog.entries().at(20).meta;
  EXPECT_EQ(base.header.kind, EpochKind::kBase);
  EXPECT_EQ(base.floor, 0u);  // older epochs are not obsolete
  EXPECT_EQ(chain_length(**store, 30), 11u);
  EXPECT_EQ(chain_length(**store, 19), 20u);
  for (const auto& [epoch, memory] : expected) EXPECT_EQ(testing::restore_epoch(dir.path(), epoch), memory) << epoch;
  auto report = verify_store((*store)->fs(), dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE((*store)->rebase(20).is_ok());  // a base already: nothing to do
  EXPECT_EQ((*store)->rebase(99).code(), StatusCode::kNotFound);
  // New deltas carry on from the rebased chain.
  auto more = write_chain(**store, model, 3);
  for (const auto& [epoch, memory] : more) EXPECT_EQ(testing::restore_epoch(dir.path(), epoch), memory) << epoch;
}

TEST(Rebase, KeepsZeroPagesTagsTimestampsAndState) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(300, 42);  // scribble leaves some pages zero; the rest stays zero too
  testing::write_base(**store, model);
  auto writer = (*store)->begin_delta(EpochOptions{"tagged", 777});
  ASSERT_TRUE(writer.is_ok());
  for (uint64_t g : {3, 4, 5, 250}) {
    model.scribble(g);
    ASSERT_TRUE((*writer)->add_page(g, model.page(g)).is_ok());
  }
  std::vector<uint8_t> blob{1, 2, 3};
  ASSERT_TRUE((*writer)->add_state("vcpu0", blob).is_ok());
  ASSERT_TRUE((*writer)->commit().is_ok());
  ASSERT_TRUE((*store)->rebase(1).is_ok());
  const EpochMeta& base = *(*store)->catalog_snapshot().entries().at(1).meta;
  EXPECT_EQ(base.tag, "tagged");
  EXPECT_EQ(base.timestamp_ns, 777u);
  ASSERT_EQ(base.states.size(), 1u);
  EXPECT_EQ(base.states[0].data, blob);
  EXPECT_EQ(base.stats.data_pages + base.stats.zero_pages, 300u);
  EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
}

TEST(Retention, WithoutRewriteRemovesOnlyWhatNoKeptEpochNeeds) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(64, 43);
  auto expected = write_chain(**store, model, 20);
  ASSERT_TRUE((*store)->rebase(10).is_ok());
  auto more = write_chain(**store, model, 10);  // 21..30 on the base at 10
  expected.insert(more.begin(), more.end());
  RetentionPolicy lazy{5, std::nullopt, {}, /*rewrite_above=*/std::nullopt};
  auto removed = (*store)->apply_retention(lazy);
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 10u);  // 0..9; 10..25 stay because the kept 26..30 need them
  Catalog catalog = (*store)->catalog_snapshot();
  EXPECT_EQ(catalog.entries().begin()->first, 10u);
  for (const auto& [epoch, memory] : expected) {
    if (epoch >= 10) {
      EXPECT_EQ(testing::restore_epoch(dir.path(), epoch), memory) << epoch;
    }
  }
  for (uint64_t e = 0; e < 10; ++e) EXPECT_FALSE(std::filesystem::exists(dir.sub(epoch_file_name(e))));
}

TEST(Retention, KeepsTheRunningBranchAndWhatItNeeds) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(64, 44);
  auto expected = write_chain(**store, model, 10);
  // A VM restored to epoch 3 carries on from there: epochs 11.. branch off 3.
  GuestModel branch(64, 0);
  std::copy(expected[3].begin(), expected[3].end(), const_cast<uint8_t*>(branch.bytes().data()));
  for (int i = 0; i < 3; ++i) {
    auto meta = testing::write_random_delta(**store, branch, 5, EpochOptions{"", std::nullopt, i == 0 ? 3 : 10 + i});
    expected[meta->header.epoch] = branch.bytes();
  }
  RetentionPolicy policy{2, std::nullopt, {13}, /*rewrite_above=*/0};
  auto removed = (*store)->apply_retention(policy);  // keeps 12, 13; 12 becomes a base
  ASSERT_TRUE(removed.is_ok()) << removed.status().to_string();
  Catalog catalog = (*store)->catalog_snapshot();
  EXPECT_EQ(catalog.entries().size(), 2u);
  EXPECT_EQ(testing::restore_epoch(dir.path(), 12), expected[12]);
  EXPECT_EQ(testing::restore_epoch(dir.path(), 13), expected[13]);
}

TEST(Retention, RewritesOnlyWhenChainsWouldKeepTooManyExtraEpochs) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(64, 48);
  write_chain(**store, model, 30);  // timestamps: now
  // Everything is young enough to keep: a long keep-seconds window never needs a rewrite.
  RetentionPolicy window{std::nullopt, 0, {}, /*rewrite_above=*/5};
  auto removed = (*store)->apply_retention(window);
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 0u);
  EXPECT_EQ((*store)->catalog_snapshot().entries().at(20).meta->header.kind, EpochKind::kDelta);
  // Keep 21..30: their chain needs 0..20, 21 epochs kept only for it: above 5, so 21 becomes a base.
  RetentionPolicy last{10, std::nullopt, {}, /*rewrite_above=*/5};
  removed = (*store)->apply_retention(last);
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 21u);
  EXPECT_EQ((*store)->catalog_snapshot().entries().begin()->second.meta->header.kind, EpochKind::kBase);
}

TEST(Retention, AnUnreadableKeptEpochKeepsEverythingBelowIt) {
  TempDir dir;
  std::map<uint64_t, std::vector<uint8_t>> expected;
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(64, 49);
    expected = write_chain(**store, model, 10);
  }
  auto bytes = testing::read_file(dir.sub(epoch_file_name(8)));
  bytes[0] ^= 1;  // its header: the epoch's metadata cannot be read, so its chain is unknown
  testing::write_file(dir.sub(epoch_file_name(8)), bytes);
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto removed = (*store)->apply_retention(RetentionPolicy{3, std::nullopt, {}, std::nullopt});
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 0u);  // 8 is kept and may need any of 0..7
  for (uint64_t e = 0; e <= 7; ++e) EXPECT_EQ(testing::restore_epoch(dir.path(), e), expected[e]);
}

// Lowers the soft limit on open files for the test's duration.
class OpenFileLimit {
 public:
  explicit OpenFileLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  ~OpenFileLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }

 private:
  rlimit saved_{};
};

TEST(LongChains, RestoreVerifyAndCompactHoldFewFilesOpen) {
  TempDir dir;
  std::map<uint64_t, std::vector<uint8_t>> expected;
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(96, 45);
    expected = write_chain(**store, model, 400, 1);
  }
  OpenFileLimit limit(64);  // a chain of 401 files; the test binary itself holds a few descriptors
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok());
  std::vector<uint8_t> memory(96 * format::kPageSize);
  auto restored = restore_to_memory(*fs, *catalog, 400, memory);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  EXPECT_EQ(memory, expected[400]);
  EXPECT_EQ(restored->epochs_in_chain, 401u);
  auto report = verify_store(*fs, dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
  EXPECT_EQ(report->epochs_checked, 401u);
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  ASSERT_TRUE((*store)->compact(390).is_ok());
  EXPECT_EQ(testing::restore_epoch(dir.path(), 400), expected[400]);
}

TEST(Maintenance, RebaseRunsWhileEpochsAreWritten) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(256, 46);
  auto expected = write_chain(**store, model, 50);
  std::thread writer([&] {
    auto more = write_chain(**store, model, 100, 3);
    expected.insert(more.begin(), more.end());
  });
  for (uint64_t k = 10; k <= 50; k += 10) EXPECT_TRUE((*store)->rebase(k).is_ok());
  auto retention = (*store)->apply_retention(RetentionPolicy{60, std::nullopt, {}, std::nullopt});
  writer.join();
  ASSERT_TRUE(retention.is_ok());
  EXPECT_EQ((*store)->newest(), 150u);
  expect_every_epoch_restores(**store, dir.path(), expected);
}

TEST(Maintenance, RetentionWithRewritesKeepsEpochsCommittedMeanwhile) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(256, 50);
  auto expected = write_chain(**store, model, 20);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    auto more = write_chain(**store, model, 150, 3);
    expected.insert(more.begin(), more.end());
    done = true;
  });
  int runs = 0;
  while (!done) {  // each run rewrites its oldest kept epoch while new epochs commit
    auto removed = (*store)->apply_retention(RetentionPolicy{10, std::nullopt, {}, 0});
    ASSERT_TRUE(removed.is_ok()) << removed.status().to_string();
    ++runs;
  }
  writer.join();
  EXPECT_GT(runs, 2);
  EXPECT_EQ((*store)->newest(), 170u);
  expect_every_epoch_restores(**store, dir.path(), expected);
}

TEST(Maintenance, AReaderNoticesAFileReplacedUnderIt) {
  TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  GuestModel model(64, 47);
  write_chain(**store, model, 5);
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto stale = Catalog::load(*fs, dir.path());  // planned before the rebase
  ASSERT_TRUE(stale.is_ok());
  ASSERT_TRUE((*store)->rebase(4).is_ok());
  std::vector<uint8_t> memory(64 * format::kPageSize);
  auto restored = restore_to_memory(*fs, *stale, 5, memory);
  ASSERT_FALSE(restored.is_ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kBusy) << restored.status().to_string();
  EXPECT_NE(restored.status().message().find("changed while being read"), std::string::npos);
  auto fresh = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_TRUE(restore_to_memory(*fs, *fresh, 5, memory).is_ok());
}

}  // namespace
}  // namespace ckpt::snap
