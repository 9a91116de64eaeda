// LazySource, what a lazy restore reads from: blocks read in any order give exactly the memory an eager restore
// gives, every page belongs to exactly one block (or is zero), files removed under it stay readable, and a damaged
// block fails by itself, naming its file and offset.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "snapshot/epoch_file.h"
#include "snapshot/lazy_source.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;
constexpr uint64_t kPage = format::kPageSize;

class LazySourceTest : public ::testing::Test {
 protected:
  // A base and five deltas of a 2,000-page guest; memory_[e] is the guest at epoch e.
  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(2000, 7);
    for (uint64_t g = 0; g < model.pages(); g += 3) model.scribble(g);  // the rest stays zero
    testing::write_base(**store, model);
    memory_.push_back(model.bytes());
    for (int d = 0; d < 5; ++d) {
      testing::write_random_delta(**store, model, 300);
      memory_.push_back(model.bytes());
    }
  }

  std::unique_ptr<LazySource> open(uint64_t epoch) {
    auto catalog = Catalog::load(*fs_, dir_.path());
    EXPECT_TRUE(catalog.is_ok()) << catalog.status().message();
    if (!catalog.is_ok()) return nullptr;
    auto source = LazySource::open(*fs_, *catalog, epoch);
    EXPECT_TRUE(source.is_ok()) << source.status().message();
    return source.is_ok() ? std::move(*source) : nullptr;
  }

  // Every block read in a shuffled order into zeroed memory, checking that each page comes from the block that
  // block_of names, once.
  std::vector<uint8_t> read_all_shuffled(const LazySource& source, uint64_t seed) {
    std::vector<uint8_t> memory(source.pages() * kPage, 0);
    std::vector<int> filled(source.pages(), 0);
    std::vector<LazySource::BlockIndex> order(source.blocks());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<LazySource::BlockIndex>(i);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
    LazySource::Reader reader;
    for (LazySource::BlockIndex block : order) {
      uint32_t pages = 0;
      uint64_t lowest = UINT64_MAX;
      Status read = source.read(block, reader, [&](uint64_t gfn, uint32_t count, const uint8_t* data) {
        for (uint32_t i = 0; i < count; ++i) {
          EXPECT_EQ(source.block_of(gfn + i), block) << "gfn " << gfn + i;
          ++filled[gfn + i];
        }
        std::memcpy(memory.data() + gfn * kPage, data, count * kPage);
        pages += count;
        lowest = std::min(lowest, gfn);
        return Status::ok();
      });
      EXPECT_TRUE(read.is_ok()) << read.message();
      EXPECT_EQ(pages, source.pages_of(block));
      EXPECT_EQ(lowest, source.first_gfn_of(block));
    }
    for (uint64_t g = 0; g < source.pages(); ++g) {
      EXPECT_EQ(filled[g], source.block_of(g) == LazySource::kZeroBlock ? 0 : 1) << "gfn " << g;
    }
    return memory;
  }

  TempDir dir_;
  std::unique_ptr<FileSystem> fs_ = make_posix_file_system(WriteEngine::kPwrite);
  std::vector<std::vector<uint8_t>> memory_;
};

TEST_F(LazySourceTest, BlocksInAnyOrderGiveTheEpochsMemory) {
  for (uint64_t epoch : {0u, 2u, 5u}) {
    auto source = open(epoch);
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->chain_length(), epoch + 1);
    EXPECT_EQ(source->data_pages() + source->zero_pages(), source->pages());
    EXPECT_GT(source->zero_pages(), 0u);
    EXPECT_TRUE(read_all_shuffled(*source, epoch) == memory_[epoch]) << "epoch " << epoch;
    EXPECT_TRUE(testing::restore_epoch(dir_.path(), epoch) == memory_[epoch]);
  }
}

// Until build_index() block_of() searches the plan's blocks; both answers must agree on every page (the reads above
// hold the search to the blocks' contents).
TEST_F(LazySourceTest, TheSearchAndTheIndexNameTheSameBlockForEveryPage) {
  for (uint64_t epoch : {0u, 3u, 5u}) {
    auto source = open(epoch);
    ASSERT_NE(source, nullptr);
    ASSERT_FALSE(source->indexed());
    std::vector<LazySource::BlockIndex> searched(source->pages());
    for (uint64_t g = 0; g < source->pages(); ++g) searched[g] = source->block_of(g);
    source->build_index();
    ASSERT_TRUE(source->indexed());
    size_t differ = 0;
    for (uint64_t g = 0; g < source->pages(); ++g) differ += source->block_of(g) != searched[g];
    EXPECT_EQ(differ, 0u) << "epoch " << epoch;
    EXPECT_TRUE(read_all_shuffled(*source, epoch + 10) == memory_[epoch]) << "epoch " << epoch;
  }
}

TEST_F(LazySourceTest, FilesRemovedAfterOpenStayReadable) {
  auto source = open(4);
  ASSERT_NE(source, nullptr);
  // What a compaction and retention could do while a lazily restored guest runs: every file of the chain gone.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    uint64_t epoch = 0;
    if (parse_epoch_file_name(entry.path().filename().string(), &epoch)) std::filesystem::remove(entry.path());
  }
  EXPECT_TRUE(read_all_shuffled(*source, 1) == memory_[4]);
}

TEST_F(LazySourceTest, AFileRenamedOverAfterOpenIsReadAsItWas) {
  // A compaction's rewrite: a new file renamed over the old one. The source keeps reading the old one.
  auto source = open(5);
  ASSERT_NE(source, nullptr);
  std::string delta = dir_.sub(epoch_file_name(3)), replacement = dir_.sub("replacement");
  auto bytes = testing::read_file(delta);
  bytes[format::kHeaderSize + 10] ^= 0xFF;
  testing::write_file(replacement, bytes);
  std::filesystem::rename(replacement, delta);
  EXPECT_TRUE(read_all_shuffled(*source, 2) == memory_[5]);
}

TEST_F(LazySourceTest, ADamagedBlockFailsAloneNamingItsFileAndOffset) {
  auto source = open(5);
  ASSERT_NE(source, nullptr);
  std::string delta = dir_.sub(epoch_file_name(3));
  {
    auto file = std::fopen(delta.c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    std::fseek(file, static_cast<long>(format::kHeaderSize + 10), SEEK_SET);
    int byte = std::fgetc(file);
    std::fseek(file, static_cast<long>(format::kHeaderSize + 10), SEEK_SET);
    std::fputc(byte ^ 0xFF, file);
    std::fclose(file);
  }
  LazySource::Reader reader;
  size_t failed = 0, good = 0;
  for (LazySource::BlockIndex b = 0; b < source->blocks(); ++b) {
    Status read = source->read(b, reader, [](uint64_t, uint32_t, const uint8_t*) { return Status::ok(); });
    if (read.is_ok()) {
      ++good;
      continue;
    }
    ++failed;
    EXPECT_EQ(read.code(), StatusCode::kCorruption) << read.message();
    EXPECT_NE(read.message().find(delta), std::string::npos) << read.message();
    EXPECT_NE(read.message().find("offset"), std::string::npos) << read.message();
  }
  EXPECT_EQ(failed, 1u);
  EXPECT_GT(good, 0u);
}

TEST_F(LazySourceTest, AFileReplacedSinceTheCatalogWasLoadedIsRefused) {
  auto catalog = Catalog::load(*fs_, dir_.path());
  ASSERT_TRUE(catalog.is_ok());
  // Epoch 2's file replaced by another epoch's (a stand-in for a compaction's rewrite): not the version planned.
  std::filesystem::copy_file(dir_.sub(epoch_file_name(1)), dir_.sub(epoch_file_name(2)),
                             std::filesystem::copy_options::overwrite_existing);
  auto source = LazySource::open(*fs_, *catalog, 3);
  ASSERT_FALSE(source.is_ok());
  EXPECT_NE(source.status().message().find(epoch_file_name(2)), std::string::npos) << source.status().message();
}

}  // namespace
}  // namespace ckpt::snap
