// A store directory is input: someone else may have written it. Whatever it holds, readers report errors and never
// write outside the restore destination, follow a link out of the store, or hang on a special file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "snapshot/catalog.h"
#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::GuestModel;
using testing::TempDir;

std::unique_ptr<Store> open_store(const std::string& dir, uint64_t store_id) {
  StoreOptions options;
  options.store_id = store_id;
  auto store = Store::open(dir, options);
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  return store.is_ok() ? std::move(*store) : nullptr;
}

// Epoch 0 of a 128-page guest next to an epoch 1 of a 64-page guest (same store id): sizing the buffer by the
// store's newest epoch and restoring epoch 0 into it must fail, not write 64 pages past the end.
TEST(HostileStore, EpochsOfDifferentGuestSizesCannotOverrunTheRestoreBuffer) {
  TempDir big_dir, small_dir;
  GuestModel big(128, 1), small(64, 2);
  for (uint64_t g = 0; g < big.pages(); ++g) big.scribble(g);
  for (uint64_t g = 0; g < small.pages(); ++g) small.scribble(g);
  {
    auto a = open_store(big_dir.path(), 7);
    testing::write_base(*a, big);
    auto b = open_store(small_dir.path(), 7);
    testing::write_base(*b, small);
    testing::write_random_delta(*b, small, 5);
  }
  std::filesystem::copy_file(small_dir.sub(epoch_file_name(1)), big_dir.sub(epoch_file_name(1)));
  auto fs = make_posix_file_system();
  auto catalog = Catalog::load(*fs, big_dir.path());
  ASSERT_TRUE(catalog.is_ok());
  ASSERT_EQ(catalog->guest_pages(), 64u);  // the newest epoch's size
  std::vector<uint8_t> memory(catalog->guest_pages() * format::kPageSize + format::kPageSize, 0xEE);
  std::span<uint8_t> guest(memory.data(), catalog->guest_pages() * format::kPageSize);
  auto restored = restore_to_memory(*fs, *catalog, 0, guest);
  ASSERT_FALSE(restored.is_ok());
  EXPECT_NE(restored.status().message().find("holds a guest of 128 pages"), std::string::npos)
      << restored.status().to_string();
  EXPECT_TRUE(std::all_of(memory.end() - format::kPageSize, memory.end(), [](uint8_t b) { return b == 0xEE; }));
  auto linked = restore_to_memory(*fs, *catalog, 1, guest);  // its parent is the 128-page base
  EXPECT_FALSE(linked.is_ok());
  auto pages = guest_pages_of(*catalog, 0);
  ASSERT_TRUE(pages.is_ok());
  EXPECT_EQ(*pages, 128u);
  std::vector<uint8_t> right(*pages * format::kPageSize);
  ASSERT_TRUE(restore_to_memory(*fs, *catalog, 0, right).is_ok());
  EXPECT_EQ(right, big.bytes());
  auto report = verify_store(*fs, big_dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_FALSE(report->problems.empty()) << "verify must flag the mixed guest sizes";
}

// A planted symlink (to a file outside the store) and a FIFO under epoch file names: reported as unreadable
// entries, no read through the link, no hang on the FIFO.
TEST(HostileStore, SymlinksAndSpecialFilesAreRefusedNotFollowed) {
  TempDir dir, outside;
  GuestModel model(32, 3);
  for (uint64_t g = 0; g < model.pages(); ++g) model.scribble(g);
  {
    auto store = open_store(dir.path(), 9);
    testing::write_base(*store, model);
    testing::write_random_delta(*store, model, 3);
  }
  // A genuine epoch file moved outside, and a link to it planted in its place.
  std::filesystem::rename(dir.sub(epoch_file_name(1)), outside.sub("elsewhere.epoch"));
  std::filesystem::create_symlink(outside.sub("elsewhere.epoch"), dir.sub(epoch_file_name(1)));
  ASSERT_EQ(::mkfifo(dir.sub(epoch_file_name(2)).c_str(), 0600), 0);
  auto fs = make_posix_file_system();
  auto catalog = Catalog::load(*fs, dir.path());  // would block forever opening the FIFO without O_NONBLOCK
  ASSERT_TRUE(catalog.is_ok()) << catalog.status().to_string();
  ASSERT_EQ(catalog->entries().size(), 3u);
  for (uint64_t e : {1, 2}) {
    const CatalogEntry& entry = catalog->entries().at(e);
    EXPECT_EQ(entry.meta, nullptr) << "epoch " << e;
    EXPECT_EQ(entry.error.code(), StatusCode::kCorruption) << entry.error.to_string();
  }
  EXPECT_NE(catalog->entries().at(1).error.message().find("symbolic link"), std::string::npos);
  EXPECT_FALSE(restore_to_memory(*fs, *catalog, 1, std::span<uint8_t>()).is_ok());
  auto report = verify_store(*fs, dir.path());
  ASSERT_TRUE(report.is_ok());
  EXPECT_GE(report->problems.size(), 2u);
}

}  // namespace
}  // namespace ckpt::snap
