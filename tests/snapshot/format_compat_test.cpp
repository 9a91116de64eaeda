// Format 1.0 compatibility: a store without disks is written exactly as the 1.0 writer wrote it (the file checksums
// below were taken from the writer before format 1.1 existed), and such files still read, restore and verify.
//
// Every input is fixed: store id, timestamps, and page contents from std::mt19937_64 (whose output the C++ standard
// fixes). Data pages are random, so every block is stored raw and the bytes do not depend on the zstd version.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

constexpr uint64_t kPages = 24;

struct Golden {
  uint64_t size;
  uint64_t xxh3;
};
// Taken from the 1.0 writer (git b41ff75). A change here is a change of the 1.0 format: readers of older builds
// would no longer read what this build writes for a VM without disks.
constexpr Golden kGolden[] = {
    {16827, 0x89842818811b3fa2ull},
    {12697, 0x16ff93a73ecb4b3dull},
    {237, 0xd763bbad58dda608ull},
};

void random_page(std::mt19937_64& rng, uint8_t* page) {
  for (size_t i = 0; i < format::kPageSize; i += 8) {
    uint64_t v = rng();
    std::memcpy(page + i, &v, 8);
  }
}

// Writes the three epochs; returns the memory each should restore to.
std::vector<std::vector<uint8_t>> write_v1_0_store(const std::string& dir) {
  StoreOptions options;
  options.engine = WriteEngine::kPwrite;
  options.workers = 1;
  options.store_id = 0x0123456789abcdefull;
  auto store = Store::open(dir, options);
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store.is_ok()) return {};
  std::mt19937_64 rng(10);
  std::vector<uint8_t> memory(kPages * format::kPageSize, 0);
  auto page = [&](uint64_t gfn) { return memory.data() + gfn * format::kPageSize; };
  std::vector<std::vector<uint8_t>> expected;
  {  // base: data pages 0-2 and 10, a zero range 3-9 added as such, pages 11-23 added as zero pages; two states
    auto w = (*store)->begin_base(kPages, EpochOptions{"v1.0 base", 1'600'000'000'000'000'000ull});
    EXPECT_TRUE(w.is_ok());
    for (uint64_t g : {0, 1, 2}) {
      random_page(rng, page(g));
      EXPECT_TRUE((*w)->add_page(g, page(g)).is_ok());
    }
    EXPECT_TRUE((*w)->add_zero_pages(3, 7).is_ok());
    random_page(rng, page(10));
    EXPECT_TRUE((*w)->add_page(10, page(10)).is_ok());
    for (uint64_t g = 11; g < kPages; ++g) EXPECT_TRUE((*w)->add_page(g, page(g)).is_ok());
    EXPECT_TRUE((*w)->add_state("vcpu0", std::vector<uint8_t>(32, 0x5c)).is_ok());
    EXPECT_TRUE((*w)->add_state("vm", std::vector<uint8_t>{1, 2, 3}).is_ok());
    EXPECT_TRUE((*w)->commit().is_ok());
    expected.push_back(memory);
  }
  {  // delta: page 2 written twice (the later content wins), page 5 gets data, page 10 becomes zero
    auto w = (*store)->begin_delta(EpochOptions{"", 1'600'000'000'000'000'001ull});
    EXPECT_TRUE(w.is_ok());
    random_page(rng, page(2));
    EXPECT_TRUE((*w)->add_page(2, page(2)).is_ok());
    random_page(rng, page(5));
    EXPECT_TRUE((*w)->add_page(5, page(5)).is_ok());
    std::memset(page(10), 0, format::kPageSize);
    EXPECT_TRUE((*w)->add_page(10, page(10)).is_ok());
    random_page(rng, page(2));
    EXPECT_TRUE((*w)->add_page(2, page(2)).is_ok());
    EXPECT_TRUE((*w)->add_state("vcpu0", std::vector<uint8_t>(32, 0x6d)).is_ok());
    EXPECT_TRUE((*w)->commit().is_ok());
    expected.push_back(memory);
  }
  {  // an empty, tagged delta
    auto w = (*store)->begin_delta(EpochOptions{"empty", 1'600'000'000'000'000'002ull});
    EXPECT_TRUE(w.is_ok());
    EXPECT_TRUE((*w)->commit().is_ok());
    expected.push_back(memory);
  }
  return expected;
}

TEST(FormatCompat, StoreWithoutDisksIsWrittenByteForByteAsVersion1_0) {
  testing::TempDir dir;
  auto expected = write_v1_0_store(dir.path());
  ASSERT_EQ(expected.size(), 3u);
  for (uint64_t e = 0; e < 3; ++e) {
    auto bytes = testing::read_file(dir.sub(epoch_file_name(e)));
    ASSERT_GE(bytes.size(), format::kHeaderSize);
    EXPECT_EQ(bytes[format::kHdrMinor], 0) << "epoch " << e;  // a file without disks says 1.0
    EXPECT_EQ(bytes.size(), kGolden[e].size) << "epoch " << e;
    EXPECT_EQ(checksum64(bytes.data(), bytes.size()), kGolden[e].xxh3) << "epoch " << e;
  }
}

TEST(FormatCompat, Version1_0FilesReadRestoreAndVerify) {
  testing::TempDir dir;
  auto expected = write_v1_0_store(dir.path());
  ASSERT_EQ(expected.size(), 3u);
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok()) << catalog.status().to_string();
  for (uint64_t e = 0; e < 3; ++e) {
    const CatalogEntry& entry = catalog->entries().at(e);
    ASSERT_TRUE(entry.meta) << entry.error.to_string();
    EXPECT_EQ(testing::restore_epoch(dir.path(), e), expected[e]) << "epoch " << e;
  }
  auto report = verify_store(*fs, dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
  EXPECT_EQ(report->epochs_checked, 3u);
}

}  // namespace
}  // namespace ckpt::snap
