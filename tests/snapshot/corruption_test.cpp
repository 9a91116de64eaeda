// Byte flips at chosen offsets in every part of every epoch file: verify reports each one, naming the file and the
// offset, and restore either fails with a corruption error or returns exactly the right memory; never a wrong page.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(100, 21);
    for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
    testing::write_base(**store, model, EpochOptions{"base"});
    expected_[0] = model.bytes();
    for (uint64_t e = 1; e <= 3; ++e) {
      auto writer = (*store)->begin_delta(EpochOptions{"e" + std::to_string(e)});
      ASSERT_TRUE(writer.is_ok());
      for (int i = 0; i < 80; ++i) {
        uint64_t g = model.rng()() % model.pages();
        model.scribble(g);
        ASSERT_TRUE((*writer)->add_page(g, model.page(g)).is_ok());
      }
      ASSERT_TRUE((*writer)->add_state("vcpu0", std::vector<uint8_t>(300, static_cast<uint8_t>(e))).is_ok());
      ASSERT_TRUE((*writer)->commit().is_ok());
      expected_[e] = model.bytes();
    }
  }

  // Offsets worth flipping in one file: every byte of the header and the footer, every third byte of the metadata
  // section (each record's header bytes among them), and a spread of bytes across the data blocks.
  std::set<uint64_t> chosen_offsets(const std::string& path, const EpochMeta& meta) {
    uint64_t size = testing::read_file(path).size();
    uint64_t meta_offset = format::kHeaderSize + meta.stats.stored_bytes;
    std::set<uint64_t> offsets;
    for (uint64_t i = 0; i < format::kHeaderSize; ++i) offsets.insert(i);
    for (uint64_t i = size - format::kFooterSize; i < size; ++i) offsets.insert(i);
    for (uint64_t i = meta_offset; i < size; i += 3) offsets.insert(i);
    for (uint64_t i = meta_offset; i < meta_offset + format::kRecordHeaderSize; ++i) offsets.insert(i);
    for (uint64_t i = format::kHeaderSize; i < meta_offset; i += 997) offsets.insert(i);
    for (const BlockRef& b : meta.blocks) {
      if (b.stored_len == 0) continue;
      offsets.insert(b.offset);
      offsets.insert(b.offset + b.stored_len - 1);
    }
    return offsets;
  }

  TempDir dir_;
  std::map<uint64_t, std::vector<uint8_t>> expected_;
};

TEST_F(CorruptionTest, EveryFlipIsDetectedAndNeverRestoresWrongMemory) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto clean = Catalog::load(*fs, dir_.path());
  ASSERT_TRUE(clean.is_ok());
  uint64_t flips = 0, restores_refused = 0, restores_exact = 0;
  for (const auto& [epoch, entry] : clean->entries()) {
    const std::vector<uint8_t> original = testing::read_file(entry.path);
    for (uint64_t offset : chosen_offsets(entry.path, *entry.meta)) {
      std::vector<uint8_t> bad = original;
      bad[offset] ^= static_cast<uint8_t>(1u << (offset % 8));
      testing::write_file(entry.path, bad);
      ++flips;

      auto report = verify_store(*fs, dir_.path());
      ASSERT_TRUE(report.is_ok());
      bool named = false;
      for (const VerifyProblem& p : report->problems) {
        named |= p.epoch == epoch && p.status.message().find(entry.path) != std::string::npos &&
                 p.status.message().find("offset") != std::string::npos;
      }
      ASSERT_TRUE(named) << "flip in epoch " << epoch << " at offset " << offset << " went unreported";

      auto catalog = Catalog::load(*fs, dir_.path());
      ASSERT_TRUE(catalog.is_ok());
      for (uint64_t target : {epoch, uint64_t{3}}) {
        const std::vector<uint8_t>& memory = expected_.at(target);
        std::vector<uint8_t> out(memory.size(), 0xEE);
        auto stats = restore_to_memory(*fs, *catalog, target, out);
        if (stats.is_ok()) {
          ASSERT_EQ(out, memory) << "flip in epoch " << epoch << " at offset " << offset
                                 << " silently changed epoch " << target;
          ++restores_exact;
        } else {
          EXPECT_TRUE(stats.status().code() == StatusCode::kCorruption ||
                      stats.status().code() == StatusCode::kUnsupported)
              << stats.status().to_string();
          ++restores_refused;
        }
      }
    }
    testing::write_file(entry.path, original);
  }
  std::printf("flips: %llu, all reported by verify; restores refused: %llu, exact: %llu, wrong: 0\n",
              static_cast<unsigned long long>(flips), static_cast<unsigned long long>(restores_refused),
              static_cast<unsigned long long>(restores_exact));
  auto report = verify_store(*fs, dir_.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->ok());
}

TEST_F(CorruptionTest, TruncatedAndMissingFilesAreReported) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  std::string path = dir_.sub(epoch_file_name(2));
  auto bytes = testing::read_file(path);
  bytes.resize(bytes.size() - 10);
  testing::write_file(path, bytes);
  auto report = verify_store(*fs, dir_.path());
  ASSERT_TRUE(report.is_ok());
  ASSERT_FALSE(report->ok());
  EXPECT_EQ(report->problems.front().epoch, 2u);

  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto catalog = Catalog::load(*fs, dir_.path());
  ASSERT_TRUE(catalog.is_ok());
  std::vector<uint8_t> out(expected_[3].size());
  auto restored = restore_to_memory(*fs, *catalog, 3, out);
  EXPECT_EQ(restored.status().code(), StatusCode::kCorruption);
  EXPECT_NE(restored.status().message().find("needs epoch 2, which is missing"), std::string::npos)
      << restored.status().to_string();
  report = verify_store(*fs, dir_.path());
  ASSERT_TRUE(report.is_ok());
  ASSERT_FALSE(report->ok());
  EXPECT_EQ(report->problems.front().epoch, 3u);
}

TEST_F(CorruptionTest, VerifyOfOneEpochChecksOnlyItsChain) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  std::string path = dir_.sub(epoch_file_name(3));
  auto bytes = testing::read_file(path);
  bytes[format::kHeaderSize + 5] ^= 0x10;
  testing::write_file(path, bytes);
  auto two = verify_store(*fs, dir_.path(), VerifyOptions{2});
  ASSERT_TRUE(two.is_ok());
  EXPECT_TRUE(two->ok());
  EXPECT_EQ(two->epochs_checked, 3u);
  auto three = verify_store(*fs, dir_.path(), VerifyOptions{3});
  ASSERT_TRUE(three.is_ok());
  ASSERT_FALSE(three->ok());
  EXPECT_NE(three->problems.front().status.message().find("offset " + std::to_string(format::kHeaderSize)),
            std::string::npos)
      << three->problems.front().status.to_string();
}

}  // namespace
}  // namespace ckpt::snap
