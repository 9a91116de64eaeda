// repair_store moves exactly the epochs that cannot be restored: a damaged one and every epoch whose chain runs
// through it, and a stray file (junk, or a valid epoch of another store) above the newest; nothing is deleted and
// everything else stays restorable.
#include <gtest/gtest.h>

#include <filesystem>

#include "snapshot/epoch_file.h"
#include "snapshot/repair.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

std::map<uint64_t, std::vector<uint8_t>> write_store(const std::string& dir, uint64_t deltas, uint64_t seed) {
  std::map<uint64_t, std::vector<uint8_t>> expected;
  auto store = Store::open(dir);
  EXPECT_TRUE(store.is_ok());
  GuestModel model(64, seed);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  testing::write_base(**store, model);
  expected[0] = model.bytes();
  for (uint64_t e = 1; e <= deltas; ++e) {
    testing::write_random_delta(**store, model, 6);
    expected[e] = model.bytes();
  }
  return expected;
}

std::vector<std::string> moved_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& sub : std::filesystem::directory_iterator(dir)) {
    if (!sub.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(sub)) names.push_back(f.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Repair, MovesADamagedEpochAndEveryEpochThatNeedsIt) {
  TempDir dir;
  auto expected = write_store(dir.path(), 5, 61);
  std::string three = dir.sub(epoch_file_name(3));
  auto bytes = testing::read_file(three);
  bytes[format::kHeaderSize + 5] ^= 0x40;  // a data block of epoch 3: only verify's block check sees it
  testing::write_file(three, bytes);
  auto dry = repair_store(dir.path(), RepairOptions{true, 0});
  ASSERT_TRUE(dry.is_ok()) << dry.status().to_string();
  EXPECT_EQ(dry->moved.size(), 3u);
  EXPECT_TRUE(moved_files(dir.path()).empty());
  auto report = repair_store(dir.path());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  ASSERT_EQ(report->moved.size(), 3u);
  EXPECT_EQ(report->moved[0].epoch, 3u);
  EXPECT_NE(report->moved[1].why.find("needs epoch 3"), std::string::npos) << report->moved[1].why;
  EXPECT_EQ(report->newest_intact, 2u);
  EXPECT_EQ(moved_files(dir.path()),
            (std::vector<std::string>{epoch_file_name(3), epoch_file_name(4), epoch_file_name(5)}));
  for (uint64_t e = 0; e <= 2; ++e) EXPECT_EQ(testing::restore_epoch(dir.path(), e), expected[e]);
  auto fs = make_posix_file_system();
  auto verified = verify_store(*fs, dir.path());
  ASSERT_TRUE(verified.is_ok());
  EXPECT_TRUE(verified->ok());
}

TEST(Repair, AStrayEpochOfAnotherStoreIsTheOneMoved) {
  TempDir dir, other;
  auto expected = write_store(dir.path(), 3, 62);
  write_store(other.path(), 1, 63);  // a valid file, another store id
  std::filesystem::copy_file(other.sub(epoch_file_name(1)), dir.sub(epoch_file_name(99)));
  testing::write_file(dir.sub(epoch_file_name(100)), {1, 2, 3});  // junk named like an epoch
  auto report = repair_store(dir.path());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  ASSERT_EQ(report->moved.size(), 2u) << (report->moved.empty() ? "" : report->moved[0].why);
  EXPECT_EQ(report->moved[0].epoch, 99u);
  EXPECT_EQ(report->moved[1].epoch, 100u);
  EXPECT_EQ(report->newest_intact, 3u);
  for (uint64_t e = 0; e <= 3; ++e) EXPECT_EQ(testing::restore_epoch(dir.path(), e), expected[e]);
}

TEST(Repair, RefusesAMissingStoreAndChangesNothingInAnIntactOne) {
  TempDir dir;
  EXPECT_EQ(repair_store(dir.sub("none")).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.sub("none")));
  write_store(dir.path(), 2, 64);
  testing::write_file(dir.sub(epoch_file_name(3) + ".tmp"), {1});  // an unfinished epoch: ckptd's to remove
  auto report = repair_store(dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->moved.empty());
  EXPECT_EQ(report->newest_intact, 2u);
  EXPECT_TRUE(std::filesystem::exists(dir.sub(epoch_file_name(3) + ".tmp")));
}

}  // namespace
}  // namespace ckpt::snap
