// restore_to_file never damages what it was pointed at: the image appears only once every checksum passed, and a
// target inside the store (an epoch file above all) is refused.
#include <gtest/gtest.h>

#include <filesystem>

#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

class RestoreToFile : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(store_dir_.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(64, 51);
    for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
    testing::write_base(**store, model);
    testing::write_random_delta(**store, model, 10);
    memory_ = model.bytes();
  }
  Result<RestoreStats> restore(const std::string& path) {
    auto catalog = Catalog::load(*fs_, store_dir_.path());
    if (!catalog.is_ok()) return catalog.status();
    return restore_to_file(*fs_, *catalog, 1, path);
  }
  size_t files_in(const std::string& dir) {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
  }

  TempDir store_dir_, out_;
  std::unique_ptr<FileSystem> fs_ = make_posix_file_system(WriteEngine::kPwrite);
  std::vector<uint8_t> memory_;
};

TEST_F(RestoreToFile, ReplacesAnExistingFileWithTheImage) {
  std::string image = out_.sub("image.raw");
  testing::write_file(image, {1, 2, 3});
  ASSERT_TRUE(restore(image).is_ok());
  EXPECT_EQ(testing::read_file(image), memory_);
  EXPECT_EQ(files_in(out_.path()), 1u);  // no temporary file left
}

TEST_F(RestoreToFile, AFailedRestoreLeavesTheTargetUntouched) {
  std::string image = out_.sub("image.raw");
  std::vector<uint8_t> precious(5000, 0x5A);
  testing::write_file(image, precious);
  // Damage the delta's data block: the restore fails its checksum half way.
  std::string delta = store_dir_.sub(epoch_file_name(1));
  auto bytes = testing::read_file(delta);
  bytes[format::kHeaderSize + 10] ^= 0xFF;
  testing::write_file(delta, bytes);
  auto restored = restore(image);
  ASSERT_FALSE(restored.is_ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kCorruption) << restored.status().to_string();
  EXPECT_EQ(testing::read_file(image), precious);
  EXPECT_EQ(files_in(out_.path()), 1u);
}

TEST_F(RestoreToFile, RefusesATargetInsideTheStore) {
  std::string base = store_dir_.sub(epoch_file_name(0));
  auto before = testing::read_file(base);
  for (const std::string& target : {base, store_dir_.sub("image.raw")}) {
    auto restored = restore(target);
    ASSERT_FALSE(restored.is_ok()) << target;
    EXPECT_EQ(restored.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(restored.status().message().find("is inside the store"), std::string::npos);
  }
  std::filesystem::create_directory_symlink(store_dir_.path(), out_.sub("link"));  // another path to the store
  EXPECT_FALSE(restore(out_.sub("link/image.raw")).is_ok());
  std::filesystem::create_directory(store_dir_.sub("sub"));
  EXPECT_FALSE(restore(store_dir_.sub("sub/image.raw")).is_ok());
  EXPECT_EQ(testing::read_file(base), before);
  EXPECT_FALSE(std::filesystem::exists(store_dir_.sub("image.raw")));
}

TEST_F(RestoreToFile, RefusesATargetInsideAnotherStore) {
  auto expect_refused = [&](const std::string& target) {
    auto restored = restore(target);
    ASSERT_FALSE(restored.is_ok()) << target;
    EXPECT_EQ(restored.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(restored.status().message().find("another ckptd store"), std::string::npos)
        << restored.status().message();
  };
  // A store with no epoch yet (only its LOCK file): an image named like an epoch would stop its first start.
  TempDir fresh;
  ASSERT_TRUE(Store::open(fresh.path()).is_ok());
  expect_refused(fresh.sub(epoch_file_name(99999)));
  // A store with epochs: nothing may be written anywhere in it.
  TempDir other;
  {
    auto store = Store::open(other.path());
    ASSERT_TRUE(store.is_ok());
    GuestModel model(16, 7);
    testing::write_base(**store, model);
  }
  std::filesystem::create_directory(other.sub("sub"));
  for (const std::string& target :
       {other.sub(epoch_file_name(99999)), other.sub("image.raw"), other.sub("sub/image.raw")}) {
    expect_refused(target);
  }
  EXPECT_EQ(files_in(other.path()), 3u);  // LOCK, its base and sub/: nothing written
  // Another program's LOCK file alone does not make a store.
  EXPECT_TRUE(restore(fresh.sub("image.raw")).is_ok());
}

TEST_F(RestoreToFile, RefusesATargetThatIsNoRegularFile) {
  auto restored = restore(out_.path());
  ASSERT_FALSE(restored.is_ok());
  EXPECT_NE(restored.status().message().find("not a regular file"), std::string::npos);
  EXPECT_FALSE(restore("/dev/null").is_ok());
  EXPECT_FALSE(restore(out_.sub("missing-dir/image.raw")).is_ok());
}

}  // namespace
}  // namespace ckpt::snap
