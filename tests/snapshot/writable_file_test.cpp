// The posix FileSystem's writable files, for both engines: scattered writes (more than the io_uring queue depth,
// pooled buffers, odd sizes) land exactly where asked; errors name the path; the writer lock excludes a second
// holder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "snapshot/io/file_system.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::TempDir;

struct EngineCase {
  WriteEngine engine;
  unsigned queue_depth;
};

std::string case_name(const ::testing::TestParamInfo<EngineCase>& info) {
  return std::string(write_engine_name(info.param.engine)) + "_depth" + std::to_string(info.param.queue_depth);
}

class WritableFileTest : public ::testing::TestWithParam<EngineCase> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    std::string why;
    if (GetParam().engine == WriteEngine::kIoUring && !io_uring_available(&why)) {
      GTEST_SKIP() << "io_uring unavailable: " << why;
    }
    fs_ = make_posix_file_system(GetParam().engine, GetParam().queue_depth);
    ASSERT_EQ(fs_->write_engine(), GetParam().engine);
  }

  std::vector<uint8_t> read_back(const std::string& path) {
    auto file = fs_->open(path);
    EXPECT_TRUE(file.is_ok()) << file.status().to_string();
    if (!file.is_ok()) return {};
    std::vector<uint8_t> bytes((*file)->size());
    Status s = (*file)->read(0, bytes.size(), bytes.data());
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return bytes;
  }

  TempDir dir_;
  std::unique_ptr<FileSystem> fs_;
};

// A write plan: non-overlapping extents with odd sizes and gaps between them, issued in shuffled order. Overlaps
// are avoided on purpose: the order in which two in-flight io_uring writes land is unspecified.
struct Extent {
  uint64_t offset;
  size_t size;
};

std::vector<Extent> scattered_extents(size_t count, size_t max_size, std::mt19937_64& rng) {
  std::uniform_int_distribution<size_t> size_dist(1, max_size);
  std::uniform_int_distribution<uint64_t> gap_dist(0, 5000);
  std::vector<Extent> extents;
  uint64_t next = 0;
  for (size_t i = 0; i < count; ++i) {
    size_t size = size_dist(rng);
    if (size % 4096 == 0) --size;  // keep every size off the page grid
    next += gap_dist(rng);
    extents.push_back({next, size});
    next += size;
  }
  std::shuffle(extents.begin(), extents.end(), rng);
  return extents;
}

// Writes `extents` with buffers from `pool`, filling `expected` with what the file must then hold.
Status write_extents(WritableFile& file, const std::vector<Extent>& extents, BufferPool& pool,
                     std::mt19937_64& rng, std::vector<uint8_t>& expected) {
  for (const Extent& e : extents) {
    ByteBuffer buffer = pool.take();
    for (size_t i = 0; i < e.size; ++i) buffer.data()[i] = static_cast<uint8_t>(rng());
    buffer.set_size(e.size);
    if (expected.size() < e.offset + e.size) expected.resize(e.offset + e.size, 0);
    std::copy_n(buffer.data(), e.size, expected.begin() + static_cast<ptrdiff_t>(e.offset));
    CKPT_RETURN_IF_ERROR(file.write(e.offset, std::move(buffer)));
  }
  return Status::ok();
}

TEST_P(WritableFileTest, ScatteredWritesProduceExactBytes) {
  constexpr size_t kMaxWrite = 3 * 4096 + 123;
  auto pool = BufferPool::create(kMaxWrite);
  std::mt19937_64 rng(42);
  const auto extents = scattered_extents(300, kMaxWrite, rng);  // far more than any queue depth here
  const std::string path = dir_.path() + "/scattered";
  auto file = fs_->create(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->path(), path);

  std::vector<uint8_t> expected;
  Status s = write_extents(**file, extents, *pool, rng, expected);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  s = (*file)->sync();
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_TRUE((*file)->close().is_ok());

  std::vector<uint8_t> actual = read_back(path);
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << "file bytes differ from the writes";
}

TEST_P(WritableFileTest, CloseWithoutSyncStillDrainsEveryWrite) {
  auto pool = BufferPool::create(10000);
  std::mt19937_64 rng(7);
  const auto extents = scattered_extents(64, 10000, rng);
  const std::string path = dir_.path() + "/unsynced";
  auto file = fs_->create(path);
  ASSERT_TRUE(file.is_ok());
  std::vector<uint8_t> expected;
  ASSERT_TRUE(write_extents(**file, extents, *pool, rng, expected).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());
  EXPECT_TRUE(read_back(path) == expected);
}

TEST_P(WritableFileTest, CreateTruncatesAnExistingFile) {
  const std::string path = dir_.path() + "/f";
  for (std::string_view content : {std::string_view("a long first version"), std::string_view("short")}) {
    auto file = fs_->create(path);
    ASSERT_TRUE(file.is_ok());
    ByteBuffer buffer(content.size());
    std::copy(content.begin(), content.end(), buffer.data());
    buffer.set_size(content.size());
    ASSERT_TRUE((*file)->write(0, std::move(buffer)).is_ok());
    ASSERT_TRUE((*file)->close().is_ok());
  }
  std::vector<uint8_t> bytes = read_back(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "short");
}

TEST_P(WritableFileTest, CreateInMissingDirectoryIsNotFoundNamingThePath) {
  const std::string path = dir_.path() + "/no/such/dir/file";
  auto file = fs_->create(path);
  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status().message();
}

INSTANTIATE_TEST_SUITE_P(Engines, WritableFileTest,
                         ::testing::Values(EngineCase{WriteEngine::kPwrite, 1}, EngineCase{WriteEngine::kIoUring, 1},
                                           EngineCase{WriteEngine::kIoUring, 4},
                                           EngineCase{WriteEngine::kIoUring, 16}),
                         case_name);

TEST(IoUringProbe, AvailableOnThisKernel) {
  std::string why;
  if (!io_uring_available(&why)) GTEST_SKIP() << "io_uring unavailable: " << why;
  EXPECT_TRUE(why.empty());
  // kAuto must pick io_uring when the probe says it works.
  EXPECT_EQ(make_posix_file_system(WriteEngine::kAuto)->write_engine(), WriteEngine::kIoUring);
}

TEST(FileLockTest, SecondLockOfTheSamePathIsBusy) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  const std::string path = dir.path() + "/LOCK";
  auto first = fs->lock(path);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  // flock locks belong to the open file description, so a second open in the same process conflicts.
  auto second = fs->lock(path);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy);
  EXPECT_NE(second.status().message().find(path), std::string::npos) << second.status().message();

  first->reset();  // releases the lock
  auto third = fs->lock(path);
  EXPECT_TRUE(third.is_ok()) << third.status().to_string();
}

}  // namespace
}  // namespace ckpt::snap
