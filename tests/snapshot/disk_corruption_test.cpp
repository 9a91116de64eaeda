// Corruption of what format 1.1 added: every byte of every disk record, and sampled bytes of disk block records and
// of disks' data blocks (CKPT_CORRUPTION_FLIPS sets how many; default 2000). Each flip: verify reports it naming the
// file and an offset, and every restore (memory and each disk, of the flipped epoch and of the newest) is refused
// with a corruption error or is exact. Never a wrong page or block.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>

#include "common/unique_fd.h"
#include "snapshot/byte_order.h"
#include "snapshot/epoch_file.h"
#include "snapshot/repair.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

namespace f = format;
using testing::TempDir;
using testing::VmModel;

// Memory, then each disk: what one epoch restores to.
using Image = std::vector<std::vector<uint8_t>>;

Image image_of(const VmModel& model) {
  Image image{model.memory.bytes()};
  for (const auto& disk : model.disks) image.push_back(disk.bytes());
  return image;
}

// A base and deltas with disk data, zeroed disk ranges and state; blocks of the spaces interleave in the deltas.
std::map<uint64_t, Image> build_store(const std::string& dir) {
  std::map<uint64_t, Image> expected;
  auto store = Store::open(dir);
  EXPECT_TRUE(store.is_ok());
  VmModel model(48, {{"d0", 80, false}, {"d1", 40, true}}, 91);
  model.scribble_all();
  EXPECT_TRUE(testing::write_vm_base(**store, model, EpochOptions{"base"}));
  expected[0] = image_of(model);
  EXPECT_TRUE(testing::write_vm_delta(**store, model, 10, 12, EpochOptions{"one"}));
  expected[1] = image_of(model);
  {
    auto w = (*store)->begin_delta(EpochOptions{"zeroed"});
    EXPECT_TRUE((*w)->add_disk_zero_blocks(1, 5, 30).is_ok());
    for (uint64_t b = 5; b < 35; ++b) std::memset(model.disks[0].page(b), 0, f::kPageSize);
    model.disks[1].scribble(39);
    EXPECT_TRUE((*w)->add_disk_block(2, 39, model.disks[1].page(39)).is_ok());
    EXPECT_TRUE((*w)->add_state("vcpu0", std::vector<uint8_t>(100, 0x42)).is_ok());
    EXPECT_TRUE((*w)->commit().is_ok());
    expected[2] = image_of(model);
  }
  EXPECT_TRUE(testing::write_vm_delta(**store, model, 4, 20));
  expected[3] = image_of(model);
  return expected;
}

struct Range {
  uint64_t begin, end;
};

// The byte ranges of the records of `type` in a file's metadata section (header and payload).
std::vector<Range> records_of(const std::vector<uint8_t>& file, uint64_t meta_offset, f::RecordType type) {
  std::vector<Range> ranges;
  uint64_t end = file.size() - f::kFooterSize;
  for (uint64_t pos = meta_offset; pos < end;) {
    uint32_t t = load_le<uint32_t>(file.data() + pos);
    uint64_t next = pos + f::kRecordHeaderSize + load_le<uint32_t>(file.data() + pos + 4);
    if (t == static_cast<uint32_t>(type)) ranges.push_back(Range{pos, next});
    pos = next;
  }
  return ranges;
}

bool poke(const std::string& path, uint64_t offset, uint8_t value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::pwrite(fd, &value, 1, static_cast<off_t>(offset)) == 1;
  if (fd >= 0) ::close(fd);
  return ok;
}

class DiskCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    expected_ = build_store(dir_.path());
    auto clean = Catalog::load(*fs_, dir_.path());
    ASSERT_TRUE(clean.is_ok());
    for (const auto& [epoch, entry] : clean->entries()) {
      ASSERT_TRUE(entry.meta);
      File file{epoch, entry.path, testing::read_file(entry.path), {}, {}, {}};
      uint64_t meta_offset = f::kHeaderSize + entry.meta->stats.stored_bytes;
      file.disk_records = records_of(file.bytes, meta_offset, f::RecordType::kDisk);
      file.disk_block_records = records_of(file.bytes, meta_offset, f::RecordType::kDiskBlock);
      for (const BlockRef& b : entry.meta->blocks) {
        if (b.space != f::kMemorySpace && b.stored_len > 0) file.disk_data.push_back(Range{b.offset, b.offset + b.stored_len});
      }
      EXPECT_EQ(file.disk_records.size(), 2u);
      files_.push_back(std::move(file));
    }
  }

  // Flips one bit at `offset` of file `index`, checks verify and every restore, and puts the byte back.
  void flip(size_t index, uint64_t offset, unsigned bit) {
    const File& file = files_[index];
    ASSERT_TRUE(poke(file.path, offset, file.bytes[offset] ^ static_cast<uint8_t>(1u << bit)));
    auto report = verify_store(*fs_, dir_.path(), VerifyOptions{file.epoch, 1, {}});
    ASSERT_TRUE(report.is_ok());
    bool named = false;
    for (const VerifyProblem& p : report->problems) {
      named |= p.status.message().find(file.path) != std::string::npos &&
               p.status.message().find("offset") != std::string::npos;
    }
    ASSERT_TRUE(named) << "flip in epoch " << file.epoch << " at offset " << offset << " went unreported";
    auto catalog = Catalog::load(*fs_, dir_.path());
    ASSERT_TRUE(catalog.is_ok());
    RestoreOptions one_thread;
    one_thread.threads = 1;
    for (uint64_t target : {file.epoch, expected_.rbegin()->first}) {
      const Image& want = expected_.at(target);
      for (uint32_t space = 0; space < want.size(); ++space) {
        Result<RestoreStats> restored = Status::ok();
        std::vector<uint8_t> got(want[space].size(), 0xEE);
        if (space == 0) {
          restored = restore_to_memory(*fs_, *catalog, target, got, one_thread);
        } else {
          UniqueFd fd(::memfd_create("disk", MFD_CLOEXEC));
          restored = restore_disk_to_fd(*fs_, *catalog, target, space, fd.get(), "memfd", one_thread);
          if (restored.is_ok()) {
            got.resize(static_cast<size_t>(::lseek(fd.get(), 0, SEEK_END)));
            ASSERT_EQ(::pread(fd.get(), got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
          }
        }
        if (restored.is_ok()) {
          ASSERT_EQ(got, want[space]) << "flip in epoch " << file.epoch << " at offset " << offset << " changed space "
                                      << space << " of epoch " << target;
          ++exact_;
        } else {
          ASSERT_TRUE(restored.status().code() == StatusCode::kCorruption ||
                      restored.status().code() == StatusCode::kUnsupported)
              << restored.status().to_string();
          ++refused_[space];
        }
      }
    }
    ASSERT_TRUE(poke(file.path, offset, file.bytes[offset]));
  }

  struct File {
    uint64_t epoch;
    std::string path;
    std::vector<uint8_t> bytes;
    std::vector<Range> disk_records, disk_block_records, disk_data;
  };
  TempDir dir_;
  std::unique_ptr<FileSystem> fs_ = make_posix_file_system(WriteEngine::kPwrite);
  std::map<uint64_t, Image> expected_;
  std::vector<File> files_;
  uint64_t exact_ = 0;
  std::map<uint32_t, uint64_t> refused_;
};

TEST_F(DiskCorruption, EveryByteOfEveryDiskRecord) {
  uint64_t flips = 0;
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const Range& r : files_[i].disk_records) {
      for (uint64_t offset = r.begin; offset < r.end; ++offset, ++flips) {
        ASSERT_NO_FATAL_FAILURE(flip(i, offset, static_cast<unsigned>(offset % 8)));
      }
    }
  }
  // A damaged disk record makes its whole file unreadable: every restore through it is refused, memory included.
  EXPECT_GT(refused_[0], 0u);
  EXPECT_GT(refused_[1], 0u);
  EXPECT_GT(refused_[2], 0u);
  std::printf("disk record flips: %llu, all reported; restores exact %llu\n", static_cast<unsigned long long>(flips),
              static_cast<unsigned long long>(exact_));
}

TEST_F(DiskCorruption, SampledFlipsInDiskBlockRecordsAndDiskData) {
  const char* env = std::getenv("CKPT_CORRUPTION_FLIPS");
  const uint64_t flips = env ? std::strtoull(env, nullptr, 10) : 2000;
  std::mt19937_64 rng(std::random_device{}());
  for (uint64_t n = 0; n < flips; ++n) {
    size_t i = rng() % files_.size();
    const File& file = files_[i];
    const std::vector<Range>& ranges = n % 2 || file.disk_data.empty() ? file.disk_block_records : file.disk_data;
    if (ranges.empty()) continue;
    const Range& r = ranges[rng() % ranges.size()];
    ASSERT_NO_FATAL_FAILURE(flip(i, r.begin + rng() % (r.end - r.begin), static_cast<unsigned>(rng() % 8)));
  }
  // A damaged disk block is refused by the restore of its disk; the other spaces never read it.
  EXPECT_GT(refused_[1] + refused_[2], 0u);
  std::printf("disk block flips: %llu, all reported; restores refused: memory %llu, disk 1 %llu, disk 2 %llu; "
              "exact %llu\n",
              static_cast<unsigned long long>(flips), static_cast<unsigned long long>(refused_[0]),
              static_cast<unsigned long long>(refused_[1]), static_cast<unsigned long long>(refused_[2]),
              static_cast<unsigned long long>(exact_));
}

// What a user does about a damaged disk block: `ckpt repair` moves aside its epoch and every epoch whose chain runs
// through it, and what is left restores memory and disks exactly and verifies clean, so ckptd can resume from it.
TEST_F(DiskCorruption, RepairMovesAsideTheEpochsBehindADamagedDiskBlock) {
  const File& one = files_[1];
  ASSERT_EQ(one.epoch, 1u);
  ASSERT_FALSE(one.disk_data.empty());
  const uint64_t offset = one.disk_data.front().begin + 3;
  ASSERT_TRUE(poke(one.path, offset, one.bytes[offset] ^ 0x10));
  auto report = repair_store(dir_.path());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  ASSERT_EQ(report->moved.size(), 3u);
  EXPECT_EQ(report->moved[0].epoch, 1u);
  EXPECT_NE(report->moved[0].why.find("offset"), std::string::npos) << report->moved[0].why;
  EXPECT_NE(report->moved[1].why.find("needs epoch 1"), std::string::npos) << report->moved[1].why;
  EXPECT_EQ(report->moved[2].epoch, 3u);
  EXPECT_EQ(report->newest_intact, 0u);
  for (uint32_t space = 0; space < expected_[0].size(); ++space) {
    EXPECT_EQ(space == 0 ? testing::restore_epoch(dir_.path(), 0) : testing::restore_disk(dir_.path(), 0, space),
              expected_[0][space])
        << "space " << space << " of the base after the repair";
  }
  auto verified = verify_store(*fs_, dir_.path());
  ASSERT_TRUE(verified.is_ok()) << verified.status().to_string();
  EXPECT_TRUE(verified->ok()) << verified->problems.front().status.to_string();
}

}  // namespace
}  // namespace ckpt::snap
