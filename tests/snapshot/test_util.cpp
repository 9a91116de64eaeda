#include "tests/snapshot/test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/unique_fd.h"
#include "snapshot/restore.h"

namespace ckpt::snap::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/ckpt-test-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  if (p == nullptr) ADD_FAILURE() << "mkdtemp failed";
  path_ = p ? p : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void GuestModel::scribble(uint64_t gfn) {
  uint8_t* p = page(gfn);
  switch (rng_() % 4) {
    case 0:
      std::memset(p, 0, format::kPageSize);
      break;
    case 1:
    case 2: {  // compressible: short repeating records with a counter
      uint64_t base = rng_();
      for (size_t i = 0; i < format::kPageSize; i += 16) {
        uint64_t words[2] = {base + i / 16, 0x2020202041424344ull};
        std::memcpy(p + i, words, 16);
      }
      break;
    }
    default:
      for (size_t i = 0; i < format::kPageSize; i += 8) {
        uint64_t v = rng_();
        std::memcpy(p + i, &v, 8);
      }
  }
}

std::shared_ptr<const EpochMeta> write_base(Store& store, GuestModel& model, EpochOptions options) {
  auto writer = store.begin_base(model.pages(), std::move(options));
  EXPECT_TRUE(writer.is_ok()) << writer.status().to_string();
  if (!writer.is_ok()) return nullptr;
  for (uint64_t gfn = 0; gfn < model.pages(); ++gfn) EXPECT_TRUE((*writer)->add_page(gfn, model.page(gfn)).is_ok());
  auto meta = (*writer)->commit();
  EXPECT_TRUE(meta.is_ok()) << meta.status().to_string();
  return meta.is_ok() ? *meta : nullptr;
}

std::shared_ptr<const EpochMeta> write_random_delta(Store& store, GuestModel& model, uint64_t count,
                                                    EpochOptions options) {
  auto writer = store.begin_delta(std::move(options));
  EXPECT_TRUE(writer.is_ok()) << writer.status().to_string();
  if (!writer.is_ok()) return nullptr;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t gfn = model.rng()() % model.pages();
    model.scribble(gfn);
    EXPECT_TRUE((*writer)->add_page(gfn, model.page(gfn)).is_ok());
  }
  auto meta = (*writer)->commit();
  EXPECT_TRUE(meta.is_ok()) << meta.status().to_string();
  return meta.is_ok() ? *meta : nullptr;
}

VmModel::VmModel(uint64_t pages, std::vector<DiskSpec> disk_specs, uint64_t seed)
    : memory(pages, seed), specs(std::move(disk_specs)) {
  for (size_t i = 0; i < specs.size(); ++i) disks.emplace_back(specs[i].blocks, seed * 31 + i + 1);
}

void VmModel::scribble_all() {
  for (uint64_t g = 0; g < memory.pages(); ++g) memory.scribble(g);
  for (GuestModel& disk : disks) {
    for (uint64_t b = 0; b < disk.pages(); ++b) disk.scribble(b);
  }
}

std::shared_ptr<const EpochMeta> write_vm_base(Store& store, VmModel& model, EpochOptions options) {
  options.disks = model.specs;
  auto writer = store.begin_base(model.memory.pages(), std::move(options));
  EXPECT_TRUE(writer.is_ok()) << writer.status().to_string();
  if (!writer.is_ok()) return nullptr;
  uint64_t longest = model.memory.pages();
  for (const GuestModel& disk : model.disks) longest = std::max(longest, disk.pages());
  for (uint64_t i = 0; i < longest; ++i) {
    if (i < model.memory.pages()) {
      EXPECT_TRUE((*writer)->add_page(i, model.memory.page(i)).is_ok());
    }
    for (uint32_t d = 0; d < model.disks.size(); ++d) {
      if (i < model.disks[d].pages()) {
        EXPECT_TRUE((*writer)->add_disk_block(d + 1, i, model.disks[d].page(i)).is_ok());
      }
    }
  }
  auto meta = (*writer)->commit();
  EXPECT_TRUE(meta.is_ok()) << meta.status().to_string();
  return meta.is_ok() ? *meta : nullptr;
}

std::shared_ptr<const EpochMeta> write_vm_delta(Store& store, VmModel& model, uint64_t pages, uint64_t blocks,
                                                EpochOptions options) {
  auto writer = store.begin_delta(std::move(options));
  EXPECT_TRUE(writer.is_ok()) << writer.status().to_string();
  if (!writer.is_ok()) return nullptr;
  std::mt19937_64& rng = model.memory.rng();
  for (uint64_t i = 0; i < std::max(pages, blocks); ++i) {
    if (i < pages) {
      uint64_t gfn = rng() % model.memory.pages();
      model.memory.scribble(gfn);
      EXPECT_TRUE((*writer)->add_page(gfn, model.memory.page(gfn)).is_ok());
    }
    for (uint32_t d = 0; i < blocks && d < model.disks.size(); ++d) {
      GuestModel& disk = model.disks[d];
      uint64_t block = rng() % disk.pages();
      disk.scribble(block);
      EXPECT_TRUE((*writer)->add_disk_block(d + 1, block, disk.page(block)).is_ok());
    }
  }
  auto meta = (*writer)->commit();
  EXPECT_TRUE(meta.is_ok()) << meta.status().to_string();
  return meta.is_ok() ? *meta : nullptr;
}

std::vector<uint8_t> restore_disk(const std::string& dir, uint64_t epoch, uint32_t disk) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir);
  EXPECT_TRUE(catalog.is_ok()) << catalog.status().to_string();
  if (!catalog.is_ok()) return {};
  UniqueFd fd(::memfd_create("ckpt-test-disk", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  auto stats = restore_disk_to_fd(*fs, *catalog, epoch, disk, fd.get(), "memfd");
  EXPECT_TRUE(stats.is_ok()) << stats.status().to_string();
  if (!stats.is_ok()) return {};
  std::vector<uint8_t> bytes(static_cast<size_t>(::lseek(fd.get(), 0, SEEK_END)));
  EXPECT_EQ(::pread(fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  return bytes;
}

std::vector<uint8_t> restore_epoch(const std::string& dir, uint64_t epoch) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir);
  EXPECT_TRUE(catalog.is_ok()) << catalog.status().to_string();
  if (!catalog.is_ok()) return {};
  std::vector<uint8_t> memory(catalog->guest_pages() * format::kPageSize, 0xA5);
  auto stats = restore_to_memory(*fs, *catalog, epoch, memory);
  EXPECT_TRUE(stats.is_ok()) << stats.status().to_string();
  return memory;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace ckpt::snap::testing
