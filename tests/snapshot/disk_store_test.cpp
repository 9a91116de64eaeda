// Guest disks in the store (format 1.1): what is written to a disk at an epoch is what a disk restore gives back, bit
// for bit, through bases, deltas and maintenance, and memory restores are unaffected by the disks beside them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "common/unique_fd.h"
#include "snapshot/epoch_file.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/snapshot/test_util.h"

namespace ckpt::snap {
namespace {

using testing::TempDir;
using testing::VmModel;

constexpr uint32_t kPage = format::kPageSize;

std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions options = {}) {
  auto store = Store::open(dir, std::move(options));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  return store.is_ok() ? std::move(store).value() : nullptr;
}

std::vector<DiskSpec> two_disks() { return {{"disk0", 200, false}, {"iso", 70, true}}; }

// What one epoch must restore to: memory, then each disk.
struct Snapshot {
  std::vector<uint8_t> memory;
  std::vector<std::vector<uint8_t>> disks;
};
Snapshot snapshot_of(const VmModel& model) {
  Snapshot s{model.memory.bytes(), {}};
  for (const auto& disk : model.disks) s.disks.push_back(disk.bytes());
  return s;
}

void expect_restores(const std::string& dir, const std::map<uint64_t, Snapshot>& expected) {
  for (const auto& [epoch, want] : expected) {
    EXPECT_EQ(testing::restore_epoch(dir, epoch), want.memory) << "memory at epoch " << epoch;
    for (uint32_t d = 0; d < want.disks.size(); ++d) {
      EXPECT_EQ(testing::restore_disk(dir, epoch, d + 1), want.disks[d]) << "disk " << d + 1 << " at epoch " << epoch;
    }
  }
}

void expect_verified(const std::string& dir) {
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto report = verify_store(*fs, dir);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
}

TEST(DiskStore, MemoryAndTwoDisksRoundTripThroughBaseAndDeltas) {
  TempDir dir;
  VmModel model(96, two_disks(), 101);
  model.scribble_all();
  auto store = open_store(dir.path());
  std::map<uint64_t, Snapshot> expected;
  auto base = testing::write_vm_base(*store, model, EpochOptions{"base"});
  ASSERT_TRUE(base);
  expected[0] = snapshot_of(model);
  for (uint64_t e = 1; e <= 12; ++e) {
    ASSERT_TRUE(testing::write_vm_delta(*store, model, model.memory.rng()() % 30, 1 + model.memory.rng()() % 90));
    expected[e] = snapshot_of(model);
  }
  expect_restores(dir.path(), expected);
  expect_verified(dir.path());

  // Every epoch has the disks, says 1.1, and its statistics split between memory and the disks as its blocks do.
  Catalog catalog = store->catalog_snapshot();
  for (const auto& [epoch, entry] : catalog.entries()) {
    ASSERT_TRUE(entry.meta);
    const EpochMeta& m = *entry.meta;
    EXPECT_EQ(m.header.minor, format::kMinorDisks);
    EXPECT_EQ(testing::read_file(entry.path)[format::kHdrMinor], 1);
    ASSERT_EQ(m.disks.size(), 2u);
    EXPECT_EQ(disk_specs(m.disks), two_disks());
    std::map<uint32_t, DiskStats> seen;
    uint64_t memory_data = 0;
    for (const BlockRef& b : m.blocks) {
      ASSERT_LE(b.space, 2u);
      if (b.space == 0) {
        memory_data += b.data_pages;
        continue;
      }
      seen[b.space].data_blocks += b.data_pages;
      for (const PageRun& r : b.runs) seen[b.space].zero_blocks += r.zero ? r.count : 0;
      seen[b.space].stored_bytes += b.stored_len;
    }
    EXPECT_EQ(m.disks[0].stats, seen[1]) << "epoch " << epoch;
    EXPECT_EQ(m.disks[1].stats, seen[2]) << "epoch " << epoch;
    EXPECT_EQ(m.stats.data_pages, memory_data + seen[1].data_blocks + seen[2].data_blocks);
    if (m.header.kind == EpochKind::kBase) {
      EXPECT_EQ(m.disks[0].stats.data_blocks + m.disks[0].stats.zero_blocks, 200u);
      EXPECT_EQ(m.stats.data_pages + m.stats.zero_pages, 96u + 200u + 70u);
    }
  }
  auto disks = disks_of(catalog, 12);
  ASSERT_TRUE(disks.is_ok());
  EXPECT_EQ(disk_specs(*disks), two_disks());

  // restore_disk_to_file writes the same image as restore_disk_to_fd.
  TempDir out;
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto stats = restore_disk_to_file(*fs, catalog, 7, 2, out.sub("iso.img"));
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->data_pages + stats->zero_pages, 70u);
  EXPECT_EQ(testing::read_file(out.sub("iso.img")), expected[7].disks[1]);
  auto memory = restore_to_file(*fs, catalog, 7, out.sub("memory.img"));
  ASSERT_TRUE(memory.is_ok());
  EXPECT_EQ(memory->data_pages + memory->zero_pages, 96u);  // memory only: the disks are not in the image
  EXPECT_EQ(testing::read_file(out.sub("memory.img")), expected[7].memory);
}

TEST(DiskStore, DeltaWritesSomeBlocksAndZeroesOthers) {
  TempDir dir;
  VmModel model(16, two_disks(), 102);
  for (uint64_t b = 0; b < 200; ++b) std::memset(model.disks[0].page(b), static_cast<int>(1 + b % 250), kPage);
  for (uint64_t b = 0; b < 70; ++b) std::memset(model.disks[1].page(b), 0x77, kPage);
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, model));
  Snapshot at_base = snapshot_of(model);

  auto writer = store->begin_delta();
  ASSERT_TRUE(writer.is_ok());
  std::vector<uint8_t> data(kPage, 0xD1), other(kPage, 0xD2), zero(kPage, 0);
  auto& disk = model.disks[0];
  for (uint64_t b : {3, 4, 5, 150}) {  // new data
    ASSERT_TRUE((*writer)->add_disk_block(1, b, data.data()).is_ok());
    std::memcpy(disk.page(b), data.data(), kPage);
  }
  ASSERT_TRUE((*writer)->add_disk_zero_blocks(1, 10, 20).is_ok());  // a zeroed range (discard)
  for (uint64_t b = 10; b < 30; ++b) std::memset(disk.page(b), 0, kPage);
  ASSERT_TRUE((*writer)->add_disk_block(1, 50, zero.data()).is_ok());  // all-zero data: recorded as a zero run
  std::memset(disk.page(50), 0, kPage);
  ASSERT_TRUE((*writer)->add_disk_block(1, 60, data.data()).is_ok());  // written twice: the later content wins
  ASSERT_TRUE((*writer)->add_page(2, other.data()).is_ok());           // memory in between seals the disk's block
  std::memcpy(model.memory.page(2), other.data(), kPage);
  ASSERT_TRUE((*writer)->add_disk_block(1, 60, other.data()).is_ok());
  std::memcpy(disk.page(60), other.data(), kPage);
  ASSERT_TRUE((*writer)->add_disk_block(1, 61, data.data()).is_ok());  // data, then zero
  ASSERT_TRUE((*writer)->add_disk_zero_blocks(1, 61, 1).is_ok());
  std::memset(disk.page(61), 0, kPage);
  ASSERT_TRUE((*writer)->add_disk_zero_blocks(1, 199, 1).is_ok());  // the last block
  std::memset(disk.page(199), 0, kPage);
  auto meta = (*writer)->commit();
  ASSERT_TRUE(meta.is_ok()) << meta.status().to_string();

  const DiskStats& s = (*meta)->disks[0].stats;
  EXPECT_EQ(s.data_blocks, 4u + 2u + 1u);      // 3, 4, 5, 150; 60 twice; 61 before it became zero
  EXPECT_EQ(s.zero_blocks, 20u + 1u + 1u + 1u);  // 10-29, 50, 61, 199
  EXPECT_EQ((*meta)->disks[1].stats, DiskStats{});  // disk 2 untouched
  EXPECT_EQ((*meta)->stats.data_pages, s.data_blocks + 1);
  // The memory page between disk blocks sealed the disk's block, and memory got a block of its own.
  std::vector<uint32_t> spaces;
  for (const BlockRef& b : (*meta)->blocks) spaces.push_back(b.space);
  EXPECT_EQ(spaces, (std::vector<uint32_t>{1, 0, 1}));

  std::map<uint64_t, Snapshot> expected{{0, at_base}, {1, snapshot_of(model)}};
  expect_restores(dir.path(), expected);
  expect_verified(dir.path());
}

TEST(DiskStore, OutOfRangeBlocksAndUnknownDisksAreRefused) {
  TempDir dir;
  VmModel model(8, two_disks(), 103);
  model.scribble_all();
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, model));
  auto writer = store->begin_delta();
  ASSERT_TRUE(writer.is_ok());
  std::vector<uint8_t> page(kPage, 3);
  auto expect_refused = [](const Status& s, const std::string& what) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(s.message().find(what), std::string::npos) << s.to_string();
  };
  expect_refused((*writer)->add_disk_block(3, 0, page.data()), "has no disk 3 (it has 2 disks)");
  expect_refused((*writer)->add_disk_block(0, 0, page.data()), "no disk 0");
  expect_refused((*writer)->add_disk_zero_blocks(0, 0, 1), "no disk 0");
  expect_refused((*writer)->add_disk_block(1, 200, page.data()), "block 200 is outside disk 1 'disk0' of 200 blocks");
  expect_refused((*writer)->add_disk_zero_blocks(2, 60, 11), "zero blocks 60 + 11 reach outside disk 2 'iso'");
  expect_refused((*writer)->add_disk_zero_blocks(2, UINT64_MAX, 2), "outside disk 2");
  // A refused call changes nothing: the epoch still commits, and the disks are as they were.
  ASSERT_TRUE((*writer)->add_disk_block(2, 69, page.data()).is_ok());
  std::memcpy(model.disks[1].page(69), page.data(), kPage);
  ASSERT_TRUE((*writer)->commit().is_ok());
  expect_restores(dir.path(), {{1, snapshot_of(model)}});

  auto no_disks = store->begin_base(8);  // a new base without disks: a 1.0 file, where any disk id is refused
  ASSERT_TRUE(no_disks.is_ok());
  expect_refused((*no_disks)->add_disk_block(1, 0, page.data()), "has no disk 1 (it has 0 disks)");
}

TEST(DiskStore, IncompleteBaseIsRefusedNamingTheFirstMissingDiskBlock) {
  TempDir dir;
  VmModel model(8, two_disks(), 104);
  model.scribble_all();
  auto store = open_store(dir.path());
  auto base = store->begin_base(8, EpochOptions{"", std::nullopt, std::nullopt, two_disks()});
  ASSERT_TRUE(base.is_ok());
  for (uint64_t g = 0; g < 8; ++g) ASSERT_TRUE((*base)->add_page(g, model.memory.page(g)).is_ok());
  for (uint64_t b = 0; b < 200; ++b) ASSERT_TRUE((*base)->add_disk_block(1, b, model.disks[0].page(b)).is_ok());
  ASSERT_TRUE((*base)->add_disk_zero_blocks(2, 0, 33).is_ok());
  ASSERT_TRUE((*base)->add_disk_zero_blocks(2, 35, 35).is_ok());  // blocks 33 and 34 missing
  auto committed = (*base)->commit();
  ASSERT_EQ(committed.status().code(), StatusCode::kInvalidArgument) << committed.status().to_string();
  EXPECT_NE(committed.status().message().find("lacks 2 blocks of disk 2 'iso' (the first is block 33)"),
            std::string::npos)
      << committed.status().to_string();
  base->reset();
  EXPECT_EQ(store->epoch_count(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.sub(epoch_file_name(0))));
}

TEST(DiskStore, DeltaInheritsItsParentsDisksAndRefusesOthers) {
  TempDir dir;
  VmModel model(8, two_disks(), 105);
  model.scribble_all();
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, model));
  {
    auto inherits = store->begin_delta();
    ASSERT_TRUE(inherits.is_ok());
    EXPECT_EQ(disk_specs((*inherits)->disks()), two_disks());
    ASSERT_TRUE((*inherits)->commit().is_ok());
  }
  {
    auto same = store->begin_delta(EpochOptions{"", std::nullopt, std::nullopt, two_disks()});
    ASSERT_TRUE(same.is_ok()) << same.status().to_string();
    ASSERT_TRUE((*same)->commit().is_ok());
  }
  for (auto disks : {std::vector<DiskSpec>{{"disk0", 200, false}},                        // one fewer
                     std::vector<DiskSpec>{{"disk0", 201, false}, {"iso", 70, true}},    // resized
                     std::vector<DiskSpec>{{"disk0", 200, false}, {"iso", 70, false}},   // writable now
                     std::vector<DiskSpec>{{"disk1", 200, false}, {"iso", 70, true}}}) {  // renamed
    auto other = store->begin_delta(EpochOptions{"", std::nullopt, std::nullopt, disks});
    ASSERT_EQ(other.status().code(), StatusCode::kInvalidArgument) << disks.size();
    std::string m = other.status().message();
    EXPECT_NE(m.find("its parent epoch 2 has disk 1 'disk0' (200 blocks), disk 2 'iso' (70 blocks, read-only)"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("epoch 3 would have disk 1 '" + disks[0].name + "' (" + std::to_string(disks[0].blocks)),
              std::string::npos)
        << m;
  }
  EXPECT_EQ(store->epoch_count(), 3u);
}

TEST(DiskStore, DiskLayoutsAreValidated) {
  TempDir dir;
  auto store = open_store(dir.path());
  auto refused = [&](std::vector<DiskSpec> disks, const std::string& what) {
    auto w = store->begin_base(8, EpochOptions{"", std::nullopt, std::nullopt, std::move(disks)});
    EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(w.status().message().find(what), std::string::npos) << w.status().to_string();
  };
  refused(std::vector<DiskSpec>(17, DiskSpec{"d", 1, false}), "17 disks; an epoch holds at most 16");
  refused({{"a", 1, false}, {"a", 2, false}}, "disk 2 'a': another disk has that name");
  refused({{"a", 0, false}}, "disk 1 'a' of 0 blocks");
  refused({{"a", (uint64_t{1} << 40) + 1, false}}, "a disk has 1 to 2^40 blocks");
  refused({{"", 1, false}}, "disk 1 has a name of 0 bytes");
  refused({{std::string(257, 'n'), 1, false}}, "name of 257 bytes");
  std::vector<DiskSpec> sixteen;
  for (int i = 0; i < 16; ++i) sixteen.push_back({"d" + std::to_string(i), 1, i % 2 == 0});
  auto ok = store->begin_base(1, EpochOptions{"", std::nullopt, std::nullopt, sixteen});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  std::vector<uint8_t> zero(kPage, 0);
  ASSERT_TRUE((*ok)->add_page(0, zero.data()).is_ok());
  for (uint32_t d = 1; d <= 16; ++d) ASSERT_TRUE((*ok)->add_disk_block(d, 0, zero.data()).is_ok());
  ASSERT_TRUE((*ok)->commit().is_ok());
  auto disks = disks_of(store->catalog_snapshot(), 0);
  ASSERT_TRUE(disks.is_ok());
  EXPECT_EQ(disk_specs(*disks), sixteen);
}

// Rebase, compaction and retention stream every disk like memory: what restores after them is what restored before.
TEST(DiskStore, RebaseCompactionAndRetentionKeepDisksExactly) {
  TempDir dir;
  VmModel model(64, two_disks(), 106);
  model.scribble_all();
  auto store = open_store(dir.path());
  std::map<uint64_t, Snapshot> expected;
  ASSERT_TRUE(testing::write_vm_base(*store, model, EpochOptions{"", 1000}));
  expected[0] = snapshot_of(model);
  for (uint64_t e = 1; e <= 10; ++e) {
    ASSERT_TRUE(testing::write_vm_delta(*store, model, 10, 25, EpochOptions{"t" + std::to_string(e), 1000 + e}));
    expected[e] = snapshot_of(model);
  }
  ASSERT_TRUE(store->rebase(4).is_ok());
  expect_restores(dir.path(), expected);

  ASSERT_TRUE(store->compact(6).is_ok());
  for (uint64_t e = 0; e < 6; ++e) expected.erase(e);
  Catalog catalog = store->catalog_snapshot();
  ASSERT_EQ(catalog.entries().begin()->first, 6u);
  const EpochMeta& base = *catalog.entries().at(6).meta;
  EXPECT_EQ(base.header.kind, EpochKind::kBase);
  EXPECT_EQ(base.header.minor, format::kMinorDisks);
  EXPECT_EQ(disk_specs(base.disks), two_disks());
  EXPECT_EQ(base.disks[0].stats.data_blocks + base.disks[0].stats.zero_blocks, 200u);  // a complete disk
  EXPECT_EQ(base.disks[1].stats.data_blocks + base.disks[1].stats.zero_blocks, 70u);
  EXPECT_EQ(base.tag, "t6");
  expect_restores(dir.path(), expected);
  expect_verified(dir.path());

  RetentionPolicy keep_two;
  keep_two.keep_last = 2;
  auto removed = store->apply_retention(keep_two);
  ASSERT_TRUE(removed.is_ok()) << removed.status().to_string();
  EXPECT_EQ(*removed, 3u);
  for (uint64_t e = 6; e < 9; ++e) expected.erase(e);
  expect_restores(dir.path(), expected);
  expect_verified(dir.path());
  // The store goes on: a delta on the rewritten base inherits its disks.
  ASSERT_TRUE(testing::write_vm_delta(*store, model, 3, 3));
  expect_restores(dir.path(), {{11, snapshot_of(model)}});
}

// A new base may give the store other disks (a VM reconfigured between full snapshots); its chain then has them.
TEST(DiskStore, ANewBaseMayChangeTheDisks) {
  TempDir dir;
  VmModel before(16, two_disks(), 107);
  before.scribble_all();
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, before));
  ASSERT_TRUE(testing::write_vm_delta(*store, before, 4, 4));
  VmModel after(16, {{"disk0", 200, false}, {"iso", 70, true}, {"scratch", 10, false}}, 108);
  after.scribble_all();
  ASSERT_TRUE(testing::write_vm_base(*store, after));
  ASSERT_TRUE(testing::write_vm_delta(*store, after, 4, 4));
  expect_restores(dir.path(), {{1, snapshot_of(before)}, {3, snapshot_of(after)}});
  expect_verified(dir.path());
}

// Links with other disks than the epoch being restored: two stores with one store id, the base of one copied under
// the delta of the other (whose disks differ only in a name).
TEST(DiskStore, ChainWithMismatchedDisksIsCorruption) {
  TempDir a, b;
  StoreOptions options;
  options.store_id = 0x77;
  VmModel model(16, two_disks(), 109);
  model.scribble_all();
  {
    auto store = open_store(a.path(), options);
    ASSERT_TRUE(testing::write_vm_base(*store, model));
    ASSERT_TRUE(testing::write_vm_delta(*store, model, 4, 4));
  }
  {
    VmModel renamed(16, {{"disk0", 200, false}, {"cdrom", 70, true}}, 109);
    renamed.scribble_all();
    auto store = open_store(b.path(), options);
    ASSERT_TRUE(testing::write_vm_base(*store, renamed));
  }
  std::filesystem::copy_file(b.sub(epoch_file_name(0)), a.sub(epoch_file_name(0)),
                             std::filesystem::copy_options::overwrite_existing);
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, a.path());
  ASSERT_TRUE(catalog.is_ok());
  auto chain = catalog->chain(1);
  ASSERT_EQ(chain.status().code(), StatusCode::kCorruption);
  std::string m = chain.status().message();
  EXPECT_NE(m.find(a.sub(epoch_file_name(0)) + ": epoch 0 has disk 1 'disk0' (200 blocks), disk 2 'cdrom'"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("epoch 1 (in its chain) has disk 1 'disk0' (200 blocks), disk 2 'iso'"), std::string::npos) << m;

  std::vector<uint8_t> memory(16 * kPage);
  EXPECT_EQ(restore_to_memory(*fs, *catalog, 1, memory).status().code(), StatusCode::kCorruption);
  UniqueFd fd(::memfd_create("disk", MFD_CLOEXEC));
  EXPECT_EQ(restore_disk_to_fd(*fs, *catalog, 1, 1, fd.get(), "memfd").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(disks_of(*catalog, 1).status().code(), StatusCode::kCorruption);
  auto report = verify_store(*fs, a.path());
  ASSERT_TRUE(report.is_ok());
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_EQ(report->problems.front().epoch, 1u);
  EXPECT_NE(report->problems.front().status.message().find("its child epoch 1 has disk 1 'disk0' (200 blocks), "
                                                            "disk 2 'iso'"),
            std::string::npos)
      << report->problems.front().status.to_string();
  // A rebase of the broken chain is refused the same way, and changes nothing.
  auto store = open_store(a.path());
  EXPECT_EQ(store->rebase(1).code(), StatusCode::kCorruption);
}

std::vector<uint8_t> read_fd(int fd) {
  std::vector<uint8_t> bytes(static_cast<size_t>(::lseek(fd, 0, SEEK_END)));
  EXPECT_EQ(::pread(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  return bytes;
}

// The daemon restores into its working image, which holds newer, different content: nothing of it may survive.
TEST(DiskStore, RestoreDiskToFdOverwritesWhateverTheFileHeld) {
  TempDir dir, out;
  VmModel model(8, two_disks(), 110);
  model.scribble_all();
  for (uint64_t b = 20; b < 60; ++b) std::memset(model.disks[0].page(b), 0, kPage);  // long zero runs
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, model));
  Snapshot at_base = snapshot_of(model);
  ASSERT_TRUE(testing::write_vm_delta(*store, model, 2, 60));
  Snapshot at_delta = snapshot_of(model);
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok());

  std::mt19937_64 rng(5);
  for (uint64_t garbage_bytes : {uint64_t{200} * kPage + 37 * kPage + 123, uint64_t{3} * kPage + 5, uint64_t{0}}) {
    std::string path = out.sub("work-" + std::to_string(garbage_bytes) + ".img");
    std::vector<uint8_t> garbage(garbage_bytes);
    for (auto& byte : garbage) byte = static_cast<uint8_t>(rng() | 1);  // never zero
    testing::write_file(path, garbage);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    auto stats = restore_disk_to_fd(*fs, *catalog, 1, 1, fd.get(), path);
    ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
    EXPECT_EQ(stats->data_pages + stats->zero_pages, 200u);
    EXPECT_EQ(read_fd(fd.get()), at_delta.disks[0]) << "over " << garbage_bytes << " bytes of garbage";
    // Back to the base in the same file: the delta's blocks must not survive either.
    ASSERT_TRUE(restore_disk_to_fd(*fs, *catalog, 0, 1, fd.get(), path).is_ok());
    EXPECT_EQ(read_fd(fd.get()), at_base.disks[0]);
  }

  // Refused before the file is touched: an unknown disk, a missing epoch, a descriptor that is no regular file.
  std::string path = out.sub("kept.img");
  testing::write_file(path, {9, 9, 9});
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  auto unknown = restore_disk_to_fd(*fs, *catalog, 1, 3, fd.get(), path);
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("has no disk 3 (it has 2 disks)"), std::string::npos);
  EXPECT_EQ(restore_disk_to_fd(*fs, *catalog, 9, 1, fd.get(), path).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(testing::read_file(path), (std::vector<uint8_t>{9, 9, 9}));
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd reader(pipe_fds[0]), writer(pipe_fds[1]);
  auto pipe = restore_disk_to_fd(*fs, *catalog, 1, 1, writer.get(), "a pipe");
  EXPECT_EQ(pipe.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pipe.status().message().find("a pipe is not a regular file"), std::string::npos);
}

TEST(DiskStore, RestoreDiskToFileIsSafeLikeRestoreToFile) {
  TempDir dir, out;
  VmModel model(8, two_disks(), 111);
  model.scribble_all();
  auto store = open_store(dir.path());
  ASSERT_TRUE(testing::write_vm_base(*store, model));
  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok());
  std::string image = out.sub("disk.img");
  testing::write_file(image, {1, 2, 3});
  ASSERT_TRUE(restore_disk_to_file(*fs, *catalog, 0, 1, image).is_ok());
  EXPECT_EQ(testing::read_file(image), model.disks[0].bytes());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(out.path()), {}), 1);  // no temporary file left
  auto inside = restore_disk_to_file(*fs, *catalog, 0, 1, dir.sub("disk.img"));
  EXPECT_EQ(inside.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(inside.status().message().find("is inside the store"), std::string::npos);
  EXPECT_EQ(restore_disk_to_file(*fs, *catalog, 0, 1, out.path()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(restore_disk_to_file(*fs, *catalog, 0, 5, image).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(testing::read_file(image), model.disks[0].bytes());
}

// A 4 GiB disk, all zero in the base but for its last block: runs, restore and holes at high block numbers.
TEST(DiskStore, LargeSparseDisk) {
  TempDir dir, out;
  const uint64_t blocks = uint64_t{1} << 20;
  auto store = open_store(dir.path());
  std::vector<uint8_t> zero(kPage, 0), mark(kPage, 0);
  {
    auto base = store->begin_base(4, EpochOptions{"", std::nullopt, std::nullopt, {{"big", blocks, false}}});
    ASSERT_TRUE(base.is_ok());
    ASSERT_TRUE((*base)->add_zero_pages(0, 4).is_ok());
    ASSERT_TRUE((*base)->add_disk_zero_blocks(1, 0, blocks - 1).is_ok());
    std::memset(mark.data(), 0xEE, kPage);
    ASSERT_TRUE((*base)->add_disk_block(1, blocks - 1, mark.data()).is_ok());
    auto meta = (*base)->commit();
    ASSERT_TRUE(meta.is_ok()) << meta.status().to_string();
    EXPECT_EQ((*meta)->disks[0].stats, (DiskStats{1, blocks - 1, (*meta)->disks[0].stats.stored_bytes}));
  }
  auto delta = store->begin_delta();
  ASSERT_TRUE(delta.is_ok());
  uint64_t high = blocks / 2 + 3;
  std::memcpy(mark.data(), &high, sizeof high);
  ASSERT_TRUE((*delta)->add_disk_block(1, high, mark.data()).is_ok());
  ASSERT_TRUE((*delta)->commit().is_ok());
  expect_verified(dir.path());

  auto fs = make_posix_file_system(WriteEngine::kPwrite);
  auto catalog = Catalog::load(*fs, dir.path());
  ASSERT_TRUE(catalog.is_ok());
  std::string image = out.sub("big.img");
  auto stats = restore_disk_to_file(*fs, *catalog, 1, 1, image);
  ASSERT_TRUE(stats.is_ok()) << stats.status().to_string();
  EXPECT_EQ(stats->data_pages, 2u);
  EXPECT_EQ(stats->zero_pages, blocks - 2);
  auto file = fs->open(image);
  ASSERT_TRUE(file.is_ok());
  ASSERT_EQ((*file)->size(), blocks * kPage);
  for (uint64_t b : {uint64_t{0}, high - 1, high, blocks - 2, blocks - 1}) {
    std::vector<uint8_t> got(kPage), want(kPage, 0);
    if (b == high) want = mark;
    if (b == blocks - 1) std::memset(want.data(), 0xEE, kPage);
    ASSERT_TRUE((*file)->read(b * kPage, kPage, got.data()).is_ok());
    EXPECT_EQ(got, want) << "block " << b;
  }
}

}  // namespace
}  // namespace ckpt::snap
