// FaultFileSystem: injected failures hit exactly the chosen operation, and a simulated power loss keeps exactly
// what was made durable (file data by sync, names by sync_dir) and nothing else.
#include "snapshot/io/fault_file_system.h"
#include "tests/snapshot/test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace ckpt::snap {
namespace {

using testing::TempDir;

ByteBuffer make_buffer(std::string_view bytes) {
  ByteBuffer buffer(bytes.size());
  std::copy(bytes.begin(), bytes.end(), buffer.data());
  buffer.set_size(bytes.size());
  return buffer;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Read directly from the OS, not through the FS under test.
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every name in `dir` as the OS sees it, hidden ones included.
std::vector<std::string> raw_listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class FaultFileSystemTest : public ::testing::TestWithParam<WriteEngine> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    std::string why;
    if (GetParam() == WriteEngine::kIoUring && !io_uring_available(&why)) GTEST_SKIP() << "io_uring: " << why;
    fs_ = std::make_unique<FaultFileSystem>(make_posix_file_system(GetParam(), 4));
  }

  std::string at(const std::string& name) const { return dir_.path() + "/" + name; }

  // Creates `name` holding `content`, optionally fsyncing the data, and closes it.
  void write_file(const std::string& name, std::string_view content, bool sync_data) {
    auto file = fs_->create(at(name));
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    ASSERT_TRUE((*file)->write(0, make_buffer(content)).is_ok());
    if (sync_data) {
      ASSERT_TRUE((*file)->sync().is_ok());
    }
    ASSERT_TRUE((*file)->close().is_ok());
  }

  // A file whose data and name are both durable.
  void write_durable_file(const std::string& name, std::string_view content) {
    write_file(name, content, true);
    ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  }

  void drop() {
    Status s = fs_->drop_unsynced_data();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  TempDir dir_;
  std::unique_ptr<FaultFileSystem> fs_;
};

// --- counting and injected failures ---

TEST_P(FaultFileSystemTest, CountsOnlyMutatingOperations) {
  EXPECT_EQ(fs_->operations(), 0u);
  auto file = fs_->create(at("a"));  // 1
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE((*file)->write(0, make_buffer("x")).is_ok());  // 2
  ASSERT_TRUE((*file)->sync().is_ok());                      // 3
  ASSERT_TRUE((*file)->close().is_ok());
  ASSERT_TRUE(fs_->rename(at("a"), at("b")).is_ok());  // 4
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());     // 5
  ASSERT_TRUE(fs_->remove(at("b")).is_ok());           // 6
  EXPECT_EQ(fs_->operations(), 6u);

  ASSERT_TRUE(fs_->make_dir(at("sub")).is_ok());
  ASSERT_TRUE(fs_->list_dir(dir_.path()).is_ok());
  auto lock = fs_->lock(at("LOCK"));
  ASSERT_TRUE(lock.is_ok());
  write_durable_file("c", "c");  // create, write, sync, sync_dir: 4 more
  ASSERT_TRUE(fs_->open(at("c")).is_ok());
  EXPECT_EQ(fs_->operations(), 10u);
}

TEST_P(FaultFileSystemTest, NonStickyFaultFailsOnlyTheChosenOperation) {
  auto file = fs_->create(at("a"));  // op 0
  ASSERT_TRUE(file.is_ok());
  fs_->fail_at(2, EIO, false);
  ASSERT_TRUE((*file)->write(0, make_buffer("hello")).is_ok());  // op 1
  Status failed = (*file)->sync();                               // op 2
  EXPECT_EQ(failed.code(), StatusCode::kIoError);
  EXPECT_EQ(failed.sys_errno(), EIO);
  EXPECT_NE(failed.message().find("sync " + at("a") + " (injected)"), std::string::npos) << failed.message();
  EXPECT_TRUE((*file)->sync().is_ok());  // op 3: the fault fired once
  EXPECT_TRUE((*file)->write(5, make_buffer("!")).is_ok());
  EXPECT_EQ(fs_->operations(), 5u);
}

TEST_P(FaultFileSystemTest, FailedOperationDoesNothing) {
  write_durable_file("keep", "keep");
  const uint64_t base = fs_->operations();
  fs_->fail_at(base, EIO, false);
  EXPECT_FALSE(fs_->create(at("new")).is_ok());
  EXPECT_FALSE(file_exists(at("new")));

  fs_->fail_at(fs_->operations(), EIO, false);
  Status renamed = fs_->rename(at("keep"), at("other"));
  EXPECT_NE(renamed.message().find("rename " + at("keep") + " -> " + at("other") + " (injected)"),
            std::string::npos)
      << renamed.message();
  EXPECT_TRUE(file_exists(at("keep")));
  EXPECT_FALSE(file_exists(at("other")));

  fs_->fail_at(fs_->operations(), EIO, false);
  EXPECT_FALSE(fs_->remove(at("keep")).is_ok());
  EXPECT_EQ(read_file(at("keep")), "keep");

  auto file = fs_->create(at("w"));
  ASSERT_TRUE(file.is_ok());
  fs_->fail_at(fs_->operations(), EIO, false);
  EXPECT_FALSE((*file)->write(0, make_buffer("lost")).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());
  EXPECT_EQ(read_file(at("w")), "");
}

TEST_P(FaultFileSystemTest, StickyFaultFailsEveryLaterOperationUntilCleared) {
  auto file = fs_->create(at("a"));  // op 0
  ASSERT_TRUE(file.is_ok());
  fs_->fail_at(1, EIO, true);
  EXPECT_FALSE((*file)->write(0, make_buffer("x")).is_ok());  // op 1
  EXPECT_FALSE((*file)->sync().is_ok());
  EXPECT_FALSE(fs_->create(at("b")).is_ok());
  EXPECT_FALSE(fs_->sync_dir(dir_.path()).is_ok());
  Status later = fs_->remove(at("a"));
  EXPECT_EQ(later.sys_errno(), EIO);
  EXPECT_NE(later.message().find("remove " + at("a") + " (injected)"), std::string::npos) << later.message();
  EXPECT_TRUE(file_exists(at("a")));
  EXPECT_FALSE(file_exists(at("b")));

  fs_->clear_faults();
  EXPECT_TRUE((*file)->write(0, make_buffer("x")).is_ok());
  EXPECT_TRUE((*file)->sync().is_ok());
}

TEST_P(FaultFileSystemTest, StickyFaultSetInThePastFailsFromNowOn) {
  write_durable_file("a", "a");
  fs_->fail_at(0, EIO, true);
  EXPECT_FALSE(fs_->sync_dir(dir_.path()).is_ok());
}

TEST_P(FaultFileSystemTest, EnospcSurfacesAsNoSpace) {
  auto file = fs_->create(at("a"));
  ASSERT_TRUE(file.is_ok());
  fs_->fail_at(fs_->operations(), ENOSPC, false);
  Status s = (*file)->write(0, make_buffer("data"));
  EXPECT_EQ(s.code(), StatusCode::kNoSpace);
  EXPECT_EQ(s.sys_errno(), ENOSPC);
  EXPECT_NE(s.message().find("write " + at("a") + " (injected)"), std::string::npos) << s.message();
  EXPECT_TRUE((*file)->write(0, make_buffer("data")).is_ok());  // space "came back"
  EXPECT_TRUE((*file)->close().is_ok());
  EXPECT_EQ(read_file(at("a")), "data");
}

TEST_P(FaultFileSystemTest, ForwardsWriteEngine) { EXPECT_EQ(fs_->write_engine(), GetParam()); }

// --- power loss: file data ---

TEST_P(FaultFileSystemTest, DropKeepsSyncedDataAndTruncatesUnsyncedTail) {
  auto file = fs_->create(at("a"));
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  const std::string synced(5000, 's');
  ASSERT_TRUE((*file)->write(0, make_buffer(synced)).is_ok());
  ASSERT_TRUE((*file)->sync().is_ok());
  ASSERT_TRUE((*file)->write(5000, make_buffer(std::string(3000, 'u'))).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());
  ASSERT_EQ(read_file(at("a")).size(), 8000u);

  drop();
  EXPECT_EQ(read_file(at("a")), synced);
}

TEST_P(FaultFileSystemTest, DropZeroFillsUnsyncedOverwritesOfSyncedData) {
  auto file = fs_->create(at("a"));
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  ASSERT_TRUE((*file)->write(0, make_buffer(std::string(8192, 's'))).is_ok());
  ASSERT_TRUE((*file)->sync().is_ok());
  ASSERT_TRUE((*file)->write(1000, make_buffer(std::string(500, 'u'))).is_ok());
  ASSERT_TRUE((*file)->write(8000, make_buffer(std::string(1000, 'u'))).is_ok());  // straddles the synced end
  ASSERT_TRUE((*file)->close().is_ok());

  drop();
  std::string expected(8192, 's');
  std::fill_n(expected.begin() + 1000, 500, '\0');
  std::fill_n(expected.begin() + 8000, 192, '\0');
  EXPECT_EQ(read_file(at("a")), expected);
}

TEST_P(FaultFileSystemTest, NeverSyncedFileLosesAllItsData) {
  auto file = fs_->create(at("a"));
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());  // the name is durable, the data is not
  ASSERT_TRUE((*file)->write(0, make_buffer("unsynced")).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());

  drop();
  EXPECT_TRUE(file_exists(at("a")));
  EXPECT_EQ(read_file(at("a")), "");
}

TEST_P(FaultFileSystemTest, DropResetsTracking) {
  write_file("a", "first", false);
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  drop();
  EXPECT_EQ(read_file(at("a")), "");
  // What survived the first power loss is durable: a second one changes nothing.
  std::filesystem::resize_file(at("a"), 3);
  drop();
  EXPECT_EQ(read_file(at("a")).size(), 3u);
}

// --- power loss: directory operations ---

TEST_P(FaultFileSystemTest, UnsyncedCreateDisappears) {
  write_file("a", "synced data, unsynced name", true);
  drop();
  EXPECT_FALSE(file_exists(at("a")));
}

TEST_P(FaultFileSystemTest, UnsyncedRenameIsRevertedAndReplacedFileComesBack) {
  write_durable_file("CURRENT", "old");
  write_durable_file("CURRENT.tmp", "new");
  ASSERT_TRUE(fs_->rename(at("CURRENT.tmp"), at("CURRENT")).is_ok());
  EXPECT_EQ(read_file(at("CURRENT")), "new");
  EXPECT_FALSE(file_exists(at("CURRENT.tmp")));
  auto names = fs_->list_dir(dir_.path());
  ASSERT_TRUE(names.is_ok());
  EXPECT_EQ(*names, std::vector<std::string>{"CURRENT"});  // the aside copy of the old file is hidden

  drop();
  EXPECT_EQ(read_file(at("CURRENT")), "old");
  EXPECT_EQ(read_file(at("CURRENT.tmp")), "new");
  EXPECT_EQ(raw_listing(dir_.path()), (std::vector<std::string>{"CURRENT", "CURRENT.tmp"}));
}

// A durable name whose file has a synced head and an unsynced tail.
TEST_P(FaultFileSystemTest, ReplacedFileComesBackWithOnlyItsSyncedData) {
  auto file = fs_->create(at("CURRENT"));
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE((*file)->write(0, make_buffer("old")).is_ok());
  ASSERT_TRUE((*file)->sync().is_ok());
  ASSERT_TRUE((*file)->write(3, make_buffer(" unsynced tail")).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  write_durable_file("CURRENT.tmp", "new");
  ASSERT_TRUE(fs_->rename(at("CURRENT.tmp"), at("CURRENT")).is_ok());

  drop();
  EXPECT_EQ(read_file(at("CURRENT")), "old");
  EXPECT_EQ(read_file(at("CURRENT.tmp")), "new");
}

TEST_P(FaultFileSystemTest, UnsyncedRenameWithoutTargetIsReverted) {
  write_durable_file("a", "content");
  ASSERT_TRUE(fs_->rename(at("a"), at("b")).is_ok());
  drop();
  EXPECT_EQ(read_file(at("a")), "content");
  EXPECT_FALSE(file_exists(at("b")));
}

TEST_P(FaultFileSystemTest, RenamedFileKeepsItsUnsyncedData) {
  // Tracking follows the file, not the name: data never synced is lost under the new name too.
  write_file("tmp", "unsynced", false);
  ASSERT_TRUE(fs_->rename(at("tmp"), at("final")).is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  drop();
  EXPECT_FALSE(file_exists(at("tmp")));
  EXPECT_EQ(read_file(at("final")), "");
}

TEST_P(FaultFileSystemTest, UnsyncedRemoveIsReverted) {
  write_durable_file("a", "content");
  ASSERT_TRUE(fs_->remove(at("a")).is_ok());
  EXPECT_FALSE(file_exists(at("a")));
  auto names = fs_->list_dir(dir_.path());
  ASSERT_TRUE(names.is_ok());
  EXPECT_TRUE(names->empty());

  drop();
  EXPECT_EQ(read_file(at("a")), "content");
}

TEST_P(FaultFileSystemTest, RemovedFileComesBackWithOnlyItsSyncedData) {
  auto file = fs_->create(at("a"));
  ASSERT_TRUE(file.is_ok());
  ASSERT_TRUE((*file)->write(0, make_buffer("synced")).is_ok());
  ASSERT_TRUE((*file)->sync().is_ok());
  ASSERT_TRUE((*file)->write(6, make_buffer(" unsynced")).is_ok());
  ASSERT_TRUE((*file)->close().is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  ASSERT_TRUE(fs_->remove(at("a")).is_ok());

  drop();
  EXPECT_EQ(read_file(at("a")), "synced");
}

TEST_P(FaultFileSystemTest, RemoveOfMissingFileIsNotFound) {
  Status s = fs_->remove(at("missing"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find(at("missing")), std::string::npos) << s.message();
}

TEST_P(FaultFileSystemTest, SyncDirMakesDirectoryOperationsSurvive) {
  write_durable_file("CURRENT", "old");
  write_durable_file("victim", "v");
  write_file("created", "c", true);
  write_file("CURRENT.tmp", "new", true);
  ASSERT_TRUE(fs_->rename(at("CURRENT.tmp"), at("CURRENT")).is_ok());
  ASSERT_TRUE(fs_->remove(at("victim")).is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  // Durable operations need no aside copies any more.
  EXPECT_EQ(raw_listing(dir_.path()), (std::vector<std::string>{"CURRENT", "created"}));

  drop();
  EXPECT_EQ(read_file(at("CURRENT")), "new");
  EXPECT_EQ(read_file(at("created")), "c");
  EXPECT_FALSE(file_exists(at("CURRENT.tmp")));
  EXPECT_FALSE(file_exists(at("victim")));
}

TEST_P(FaultFileSystemTest, OnlyOperationsBeforeTheSyncDirSurvive) {
  write_durable_file("a", "a");
  ASSERT_TRUE(fs_->rename(at("a"), at("b")).is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  ASSERT_TRUE(fs_->rename(at("b"), at("c")).is_ok());
  drop();
  EXPECT_FALSE(file_exists(at("a")));
  EXPECT_EQ(read_file(at("b")), "a");
  EXPECT_FALSE(file_exists(at("c")));
}

TEST_P(FaultFileSystemTest, FailedSyncDirDoesNotMakeAnythingDurable) {
  write_file("a", "a", true);
  fs_->fail_at(fs_->operations(), EIO, false);
  EXPECT_FALSE(fs_->sync_dir(dir_.path()).is_ok());
  drop();
  EXPECT_FALSE(file_exists(at("a")));
}

TEST_P(FaultFileSystemTest, SyncOfAnotherDirectoryDoesNotHelp) {
  ASSERT_TRUE(fs_->make_dir(at("sub")).is_ok());
  write_file("a", "a", true);
  ASSERT_TRUE(fs_->sync_dir(at("sub")).is_ok());
  drop();
  EXPECT_FALSE(file_exists(at("a")));
}

TEST_P(FaultFileSystemTest, RenameAcrossDirectoriesNeedsBothSynced) {
  ASSERT_TRUE(fs_->make_dir(at("sub")).is_ok());
  write_durable_file("a", "a");
  ASSERT_TRUE(fs_->rename(at("a"), at("sub/a")).is_ok());
  ASSERT_TRUE(fs_->sync_dir(at("sub")).is_ok());
  drop();
  EXPECT_EQ(read_file(at("a")), "a");
  EXPECT_FALSE(file_exists(at("sub/a")));

  ASSERT_TRUE(fs_->rename(at("a"), at("sub/a")).is_ok());
  ASSERT_TRUE(fs_->sync_dir(at("sub") + "/").is_ok());  // spelled differently, same directory
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  drop();
  EXPECT_FALSE(file_exists(at("a")));
  EXPECT_EQ(read_file(at("sub/a")), "a");
}

TEST_P(FaultFileSystemTest, CreateThenRemoveThenDropLeavesNothing) {
  write_file("a", "a", true);
  ASSERT_TRUE(fs_->remove(at("a")).is_ok());
  drop();
  EXPECT_TRUE(raw_listing(dir_.path()).empty());
}

// --- thread safety ---

TEST_P(FaultFileSystemTest, WritesOnOneThreadWhileAnotherListsAndRenames) {
  constexpr int kWrites = 500;
  auto file = fs_->create(at("data"));
  ASSERT_TRUE(file.is_ok());
  std::atomic<bool> done{false};
  std::thread lister([&] {
    int i = 0;
    while (!done.load()) {
      EXPECT_TRUE(fs_->list_dir(dir_.path()).is_ok());
      write_file("side" + std::to_string(i % 4), "s", false);
      EXPECT_TRUE(fs_->rename(at("side" + std::to_string(i % 4)), at("moved")).is_ok());
      ++i;
    }
  });
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE((*file)->write(static_cast<uint64_t>(i) * 3, make_buffer("abc")).is_ok());
  }
  ASSERT_TRUE((*file)->sync().is_ok());
  done = true;
  lister.join();
  ASSERT_TRUE((*file)->close().is_ok());
  ASSERT_TRUE(fs_->sync_dir(dir_.path()).is_ok());
  drop();
  EXPECT_EQ(read_file(at("data")).size(), kWrites * 3u);
}

INSTANTIATE_TEST_SUITE_P(Engines, FaultFileSystemTest, ::testing::Values(WriteEngine::kPwrite, WriteEngine::kIoUring),
                         [](const auto& info) { return std::string(info.param == WriteEngine::kPwrite ? "pwrite" : "io_uring"); });

}  // namespace
}  // namespace ckpt::snap
