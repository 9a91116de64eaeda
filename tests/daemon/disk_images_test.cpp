// The working images of a VM's disks (daemon/disk_images.h): a sparse, exact copy of the user's image at the first
// start; a rebuild from the chain that is only put in place when published; reading blocks and finding holes.
#include "daemon/disk_images.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "snapshot/catalog.h"
#include "snapshot/store.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::daemon {
namespace {

using snap::testing::TempDir;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_at(const std::string& path, off_t offset, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

TEST(DiskImages, ParseTakesAPathAndAReadOnlyFlag) {
  EXPECT_EQ(parse_disk_setting("/a.img")->path, "/a.img");
  EXPECT_FALSE(parse_disk_setting("/a.img")->read_only);
  EXPECT_TRUE(parse_disk_setting("/a.img,ro")->read_only);
  EXPECT_EQ(parse_disk_setting("/a.img,ro")->path, "/a.img");
  EXPECT_FALSE(parse_disk_setting("/a.img,rw")->read_only);
  EXPECT_FALSE(parse_disk_setting(",ro").is_ok());
  EXPECT_FALSE(parse_disk_setting("").is_ok());
}

TEST(DiskImages, TheWorkingImageIsAnExactSparseCopyAndTheOriginalStaysAsItWas) {
  TempDir dir;
  const std::string source = dir.sub("user.img");
  write_at(source, 0, std::vector<uint8_t>(4096, 0xab));
  write_at(source, 3 << 20, std::vector<uint8_t>(8192, 0x5c));
  ASSERT_EQ(::truncate(source.c_str(), 8 << 20), 0);
  const std::vector<uint8_t> original = read_all(source);

  Result<uint64_t> size = create_working_image(source, dir.path(), 0);
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  EXPECT_EQ(*size, 8u << 20);
  const std::string work = working_image_path(dir.path(), 0);
  EXPECT_EQ(work, dir.sub("disk0.img"));
  EXPECT_EQ(read_all(work), original);
  struct stat st {};
  ASSERT_EQ(::stat(work.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 1u << 20) << "the holes were filled in";
  EXPECT_FALSE(std::ifstream(work + ".tmp").good());

  // Reading blocks and finding data for the epoch pipeline.
  auto disk = open_disk("user.img", work, false);
  ASSERT_TRUE(disk.is_ok()) << disk.status().to_string();
  EXPECT_EQ(disk->blocks, 2048u);
  std::vector<uint8_t> block(2 * 4096);
  ASSERT_TRUE(read_disk_blocks(*disk, 768, 2, block.data()).is_ok());
  EXPECT_EQ(block, std::vector<uint8_t>(8192, 0x5c));
  auto ranges = disk_data_ranges(*disk);
  uint64_t covered = 0;
  for (auto [first, count] : ranges) {
    covered += count;
    EXPECT_LE(first + count, 2048u);
  }
  EXPECT_LT(covered, 2048u) << "holes are found";
  auto in = [&](uint64_t b) {
    for (auto [first, count] : ranges) if (b >= first && b < first + count) return true;
    return false;
  };
  EXPECT_TRUE(in(0));
  EXPECT_TRUE(in(768));
  EXPECT_TRUE(in(769));
  EXPECT_FALSE(read_disk_blocks(*disk, 2047, 2, block.data()).is_ok()) << "past the end";

  // Writes to the working image never reach the user's file.
  write_at(work, 0, std::vector<uint8_t>(4096, 0x11));
  EXPECT_EQ(read_all(source), original);
}

TEST(DiskImages, BadSourcesAreRefusedNamingTheFile) {
  TempDir dir;
  EXPECT_NE(create_working_image(dir.sub("missing.img"), dir.path(), 0).status().message().find("missing.img"),
            std::string::npos);
  write_at(dir.sub("odd.img"), 0, std::vector<uint8_t>(100, 1));
  Status odd = create_working_image(dir.sub("odd.img"), dir.path(), 0).status();
  EXPECT_NE(odd.message().find("multiple of 4096"), std::string::npos) << odd.to_string();
  EXPECT_FALSE(create_working_image(dir.path(), dir.path(), 0).is_ok()) << "a directory";
  EXPECT_FALSE(std::ifstream(working_image_path(dir.path(), 0)).good());
}

// A store holding a one-page guest and a 16-block disk: the base, then a delta that changes block 3 and zeroes 5.
void write_store(const std::string& dir, std::vector<uint8_t>* at0, std::vector<uint8_t>* at1) {
  auto store = snap::Store::open(dir);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  snap::EpochOptions options;
  options.disks = {snap::DiskSpec{"d.img", 16, false}};
  auto base = (*store)->begin_base(1, options);
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  std::vector<uint8_t> page(4096, 0);
  ASSERT_TRUE((*base)->add_page(0, page.data()).is_ok());
  at0->assign(16 * 4096, 0);
  for (uint64_t b = 0; b < 16; ++b) {
    std::fill_n(at0->begin() + b * 4096, 4096, static_cast<uint8_t>(b + 1));
    ASSERT_TRUE((*base)->add_disk_block(1, b, at0->data() + b * 4096).is_ok());
  }
  ASSERT_TRUE((*base)->commit().is_ok());
  auto delta = (*store)->begin_delta();
  ASSERT_TRUE(delta.is_ok()) << delta.status().to_string();
  *at1 = *at0;
  std::fill_n(at1->begin() + 3 * 4096, 4096, 0xee);
  std::fill_n(at1->begin() + 5 * 4096, 4096, 0);
  ASSERT_TRUE((*delta)->add_disk_block(1, 3, at1->data() + 3 * 4096).is_ok());
  ASSERT_TRUE((*delta)->add_disk_block(1, 5, at1->data() + 5 * 4096).is_ok());
  ASSERT_TRUE((*delta)->commit().is_ok());
}

TEST(DiskImages, ARebuildMatchesItsEpochAndReplacesTheImageOnlyWhenPublished) {
  TempDir dir;
  std::vector<uint8_t> at0, at1;
  write_store(dir.path(), &at0, &at1);
  auto fs = snap::make_posix_file_system();
  auto catalog = snap::Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok()) << catalog.status().to_string();
  const std::string work = working_image_path(dir.path(), 0);
  write_at(work, 0, std::vector<uint8_t>(20 * 4096, 0x77));  // a working image ahead of every epoch, and larger

  {
    auto unpublished = rebuild_working_image(*fs, *catalog, 0, 1, dir.path(), 0);
    ASSERT_TRUE(unpublished.is_ok()) << unpublished.status().to_string();
    EXPECT_EQ(read_all(unpublished->path()), at0);
  }  // dropped: the current image stays
  EXPECT_EQ(read_all(work), std::vector<uint8_t>(20 * 4096, 0x77));
  EXPECT_FALSE(std::ifstream(work + ".tmp").good());

  auto image = rebuild_working_image(*fs, *catalog, 1, 1, dir.path(), 0);
  ASSERT_TRUE(image.is_ok()) << image.status().to_string();
  ASSERT_TRUE(image->publish().is_ok());
  EXPECT_EQ(read_all(work), at1);
  EXPECT_FALSE(image->publish().is_ok()) << "twice";

  EXPECT_FALSE(rebuild_working_image(*fs, *catalog, 1, 2, dir.path(), 1).is_ok()) << "no disk 2";
  EXPECT_FALSE(rebuild_working_image(*fs, *catalog, 7, 1, dir.path(), 0).is_ok()) << "no epoch 7";
  EXPECT_EQ(read_all(work), at1) << "a failed rebuild leaves the image";
}

}  // namespace
}  // namespace ckpt::daemon
