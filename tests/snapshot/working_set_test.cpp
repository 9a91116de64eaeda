// The working-set record (snapshot/working_set.h): what is saved loads back as it was; a damaged, truncated or
// foreign record is refused, never read as another list; a failed save leaves the previous record.
#include "snapshot/working_set.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "snapshot/io/fault_file_system.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::TempDir;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

TEST(WorkingSet, WhatIsSavedLoadsBackInItsOrder) {
  TempDir dir;
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto none = load_working_set(*fs, dir.path(), 4096);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());
  const std::vector<uint64_t> gfns = {4095, 0, 17, 3000, 64};
  ASSERT_TRUE(save_working_set(*fs, dir.path(), 4096, gfns).is_ok());
  auto loaded = load_working_set(*fs, dir.path(), 4096);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(*loaded, gfns);
  // A second save replaces the first, and leaves no temporary file behind.
  ASSERT_TRUE(save_working_set(*fs, dir.path(), 4096, std::vector<uint64_t>{5}).is_ok());
  EXPECT_EQ(*load_working_set(*fs, dir.path(), 4096), std::vector<uint64_t>{5});
  EXPECT_EQ(*fs->list_dir(dir.path()), std::vector<std::string>{kWorkingSetName});
}

TEST(WorkingSet, AnotherGuestsRecordIsRefusedNotUsed) {
  TempDir dir;
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  ASSERT_TRUE(save_working_set(*fs, dir.path(), 4096, std::vector<uint64_t>{1, 2}).is_ok());
  auto other = load_working_set(*fs, dir.path(), 8192);
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument) << other.status().to_string();
}

TEST(WorkingSet, EveryFlippedBitAndEveryTruncationIsCorruptionNamingTheFile) {
  TempDir dir;
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  ASSERT_TRUE(save_working_set(*fs, dir.path(), 1 << 20, std::vector<uint64_t>{7, 99999, 123}).is_ok());
  const std::string path = dir.sub(kWorkingSetName);
  const std::vector<uint8_t> good = read_bytes(path);
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::vector<uint8_t> bad = good;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    write_bytes(path, bad);
    auto loaded = load_working_set(*fs, dir.path(), 1 << 20);
    ASSERT_EQ(loaded.status().code(), StatusCode::kCorruption) << "bit " << bit;
    EXPECT_NE(loaded.status().message().find(path), std::string::npos) << loaded.status().to_string();
  }
  for (size_t size = 0; size < good.size(); ++size) {
    write_bytes(path, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(size)));
    EXPECT_EQ(load_working_set(*fs, dir.path(), 1 << 20).status().code(), StatusCode::kCorruption) << size;
  }
}

TEST(WorkingSet, AFailedSaveLeavesThePreviousRecord) {
  TempDir dir;
  FaultFileSystem fs(make_posix_file_system(WriteEngine::kPwrite));
  ASSERT_TRUE(save_working_set(fs, dir.path(), 4096, std::vector<uint64_t>{1, 2, 3}).is_ok());
  for (uint64_t k = 0; k < 3; ++k) {  // the create, the write, the rename
    fs.fail_at(fs.operations() + k, ENOSPC, false);
    EXPECT_FALSE(save_working_set(fs, dir.path(), 4096, std::vector<uint64_t>{9}).is_ok()) << k;
    fs.clear_faults();
    EXPECT_EQ(*load_working_set(fs, dir.path(), 4096), (std::vector<uint64_t>{1, 2, 3})) << k;
  }
}

TEST(WorkingSet, ARecordIsBounded) {
  TempDir dir;
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  std::vector<uint64_t> many(kMaxWorkingSetGfns + 10);
  for (size_t i = 0; i < many.size(); ++i) many[i] = i;
  ASSERT_TRUE(save_working_set(*fs, dir.path(), many.size(), many).is_ok());
  auto loaded = load_working_set(*fs, dir.path(), many.size());
  ASSERT_TRUE(loaded.is_ok());
  EXPECT_EQ(loaded->size(), kMaxWorkingSetGfns);
  EXPECT_EQ(loaded->back(), kMaxWorkingSetGfns - 1);
}

}  // namespace
}  // namespace ckpt::snap
