// Faults while writing: a crash (every operation failing from some point on, then a power loss that drops whatever
// was not durable) at every single operation of a run, and transient ENOSPC/EIO, never cost a committed epoch.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>

#include "snapshot/io/fault_file_system.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

constexpr uint64_t kPages = 150;  // a little over two blocks of data pages

struct RunResult {
  std::map<uint64_t, std::vector<uint8_t>> committed;  // epochs whose commit() returned ok, with their memory
  std::map<uint64_t, std::vector<uint8_t>> attempted;  // every epoch begun, with the memory it would hold
};

// A base and three deltas through `fs`; stops at the first failure, as a crashed process would.
RunResult write_until_failure(const std::string& dir, std::shared_ptr<FileSystem> fs) {
  RunResult result;
  StoreOptions options;
  options.fs = std::move(fs);
  auto store = Store::open(dir, options);
  if (!store.is_ok()) return result;
  GuestModel model(kPages, 11);
  for (uint64_t g = 0; g < kPages; ++g) model.scribble(g);
  for (uint64_t epoch = 0; epoch < 4; ++epoch) {
    auto writer = epoch == 0 ? (*store)->begin_base(kPages) : (*store)->begin_delta();
    if (!writer.is_ok()) return result;
    bool failed = false;
    for (uint64_t g = 0; g < kPages && !failed; ++g) {
      if (epoch > 0 && model.rng()() % 3 != 0) continue;
      if (epoch > 0) model.scribble(g);
      failed = !(*writer)->add_page(g, model.page(g)).is_ok();
    }
    result.attempted[epoch] = model.bytes();
    if (failed || !(*writer)->commit().is_ok()) return result;
    result.committed[epoch] = model.bytes();
  }
  return result;
}

// After the crash: every committed epoch restores exactly; any other epoch present is a complete one.
void check_after_crash(const std::string& dir, const RunResult& run, uint64_t crash_op) {
  auto store = Store::open(dir, StoreOptions{WriteEngine::kPwrite});
  ASSERT_TRUE(store.is_ok()) << "crash at op " << crash_op << ": " << store.status().to_string();
  Catalog catalog = (*store)->catalog_snapshot();
  for (const auto& [epoch, memory] : run.committed) {
    ASSERT_TRUE(catalog.entries().count(epoch)) << "crash at op " << crash_op << " lost committed epoch " << epoch;
  }
  for (const auto& [epoch, entry] : catalog.entries()) {
    ASSERT_TRUE(run.attempted.count(epoch)) << "unexpected epoch " << epoch;
    EXPECT_EQ(testing::restore_epoch(dir, epoch), run.attempted.at(epoch))
        << "crash at op " << crash_op << ", epoch " << epoch;
  }
  auto report = verify_store((*store)->fs(), dir);
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok()) << "crash at op " << crash_op << ": " << report->problems.front().status.to_string();
}

TEST(CrashConsistency, CrashAtEveryOperationKeepsEveryCommittedEpoch) {
  uint64_t total_ops = 0;
  {
    TempDir dir;
    auto fs = std::make_shared<FaultFileSystem>(make_posix_file_system(WriteEngine::kIoUring));
    RunResult clean = write_until_failure(dir.path(), fs);
    ASSERT_EQ(clean.committed.size(), 4u);
    total_ops = fs->operations();
  }
  ASSERT_GT(total_ops, 20u);
  uint64_t restored_epochs = 0;
  for (uint64_t n = 0; n <= total_ops; ++n) {
    TempDir dir;
    RunResult run;
    {
      auto fs = std::make_shared<FaultFileSystem>(make_posix_file_system(WriteEngine::kIoUring));
      fs->fail_at(n, EIO, /*sticky=*/true);
      run = write_until_failure(dir.path(), fs);
      ASSERT_TRUE(fs->drop_unsynced_data().is_ok());
    }
    check_after_crash(dir.path(), run, n);
    restored_epochs += run.committed.size();
  }
  std::printf("crash points: %llu, committed epochs checked after them: %llu\n",
              static_cast<unsigned long long>(total_ops + 1), static_cast<unsigned long long>(restored_epochs));
}

// ENOSPC or EIO at one operation of an epoch: that commit fails, the store stays usable, and writing the same pages
// again (as the daemon does with pages it still owes) commits an epoch with all of them.
void retry_after_transient_fault(int err) {
  for (uint64_t k = 0;; ++k) {
    TempDir dir;
    auto fs = std::make_shared<FaultFileSystem>(make_posix_file_system(WriteEngine::kIoUring));
    StoreOptions options;
    options.fs = fs;
    auto store = Store::open(dir.path(), options);
    ASSERT_TRUE(store.is_ok());
    GuestModel model(kPages, 12);
    for (uint64_t g = 0; g < kPages; ++g) model.scribble(g);
    testing::write_base(**store, model);
    auto before = model.bytes();
    std::vector<uint64_t> dirty;
    for (uint64_t g = 0; g < kPages; g += 2) {
      model.scribble(g);
      dirty.push_back(g);
    }
    uint64_t ops_before = fs->operations();
    fs->fail_at(ops_before + k, err, /*sticky=*/false);
    auto attempt = [&]() -> Status {
      CKPT_ASSIGN_OR_RETURN(auto writer, (*store)->begin_delta());
      for (uint64_t g : dirty) CKPT_RETURN_IF_ERROR(writer->add_page(g, model.page(g)));
      return writer->commit().status();
    };
    Status first = attempt();
    if (first.is_ok()) {
      ASSERT_GT(k, 5u) << "the fault never hit an operation";
      break;  // k ran past the epoch's operations
    }
    EXPECT_EQ(first.sys_errno(), err) << first.to_string();
    EXPECT_EQ((*store)->newest(), 0u);
    ASSERT_TRUE(attempt().is_ok()) << "retry after fault at op " << k;
    EXPECT_EQ(testing::restore_epoch(dir.path(), 0), before);
    EXPECT_EQ(testing::restore_epoch(dir.path(), 1), model.bytes());
  }
}

TEST(CrashConsistency, NoSpaceAtAnyOperationThenRetrySucceeds) { retry_after_transient_fault(ENOSPC); }
TEST(CrashConsistency, IoErrorAtAnyOperationThenRetrySucceeds) { retry_after_transient_fault(EIO); }

TEST(CrashConsistency, LeftoverTempFilesAreRemovedOnOpen) {
  TempDir dir;
  {
    auto store = Store::open(dir.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(16, 13);
    testing::write_base(**store, model);
  }
  testing::write_file(dir.sub("0000000000000001.epoch.tmp"), std::vector<uint8_t>(100, 7));
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.is_ok());
  auto names = (*store)->fs().list_dir(dir.path());
  ASSERT_TRUE(names.is_ok());
  for (const auto& name : *names) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  EXPECT_EQ((*store)->newest(), 0u);
}

}  // namespace
}  // namespace ckpt::snap
