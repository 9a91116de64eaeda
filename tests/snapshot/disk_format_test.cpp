// Encoding and decoding of the 1.1 records (disk, disk block) and the rules readers hold them to.
#include <gtest/gtest.h>

#include "snapshot/byte_order.h"
#include "snapshot/epoch_meta.h"

namespace ckpt::snap {
namespace {

namespace f = format;

constexpr uint64_t kMetaOffset = f::kHeaderSize + f::kPageSize + 1000;

// Memory of 1000 pages and two disks; a raw memory block (1 data page), a zstd block of disk 1 (1 data page in 1000
// bytes, and a zero run), and a zero-only block of disk 2.
EpochMeta sample_meta() {
  EpochMeta m;
  m.header = EpochHeader{77, 5, 1000, EpochKind::kDelta, f::kMinorDisks};
  m.parent = 4;
  m.timestamp_ns = 123456789;
  m.tag = "with disks";
  m.disks = {DiskSpace{1, "disk0", 300, false, {1, 8, 1000}}, DiskSpace{2, "cdrom", 50, true, {0, 50, 0}}};
  m.blocks.push_back(BlockRef{f::kHeaderSize, f::kPageSize, 1, Codec::kRaw, 9, 9, {{10, 1, false}}, 0});
  m.blocks.push_back(
      BlockRef{f::kHeaderSize + f::kPageSize, 1000, 1, Codec::kZstd, 7, 8, {{299, 1, false}, {0, 8, true}}, 1});
  m.blocks.push_back(BlockRef{kMetaOffset, 0, 0, Codec::kRaw, 0, 0, {{0, 50, true}}, 2});
  m.states.push_back(StateBlob{"vcpu0", {1, 2, 3, 4}});
  m.stats = EpochStats{2, 58, 2 * f::kPageSize, f::kPageSize + 1000, 3, 4};
  return m;
}

Status decode(const std::vector<uint8_t>& bytes, const EpochMeta& like, EpochMeta* out = nullptr) {
  EpochMeta back;
  back.header = like.header;
  Status s = decode_meta(bytes, kMetaOffset, "x.epoch", &back);
  if (out) *out = std::move(back);
  return s;
}

void expect_rejected(const std::vector<uint8_t>& bytes, const EpochMeta& like, const std::string& what) {
  Status s = decode(bytes, like);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << what;
  EXPECT_NE(s.message().find(what), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("x.epoch offset "), std::string::npos) << s.to_string();
}

// The records of a metadata section, each whole (header and payload).
std::vector<std::vector<uint8_t>> split_records(const std::vector<uint8_t>& bytes) {
  std::vector<std::vector<uint8_t>> records;
  for (size_t pos = 0; pos < bytes.size();) {
    size_t end = pos + f::kRecordHeaderSize + load_le<uint32_t>(bytes.data() + pos + 4);
    records.emplace_back(bytes.begin() + static_cast<long>(pos), bytes.begin() + static_cast<long>(end));
    pos = end;
  }
  return records;
}

std::vector<uint8_t> join(const std::vector<std::vector<uint8_t>>& records) {
  std::vector<uint8_t> out;
  for (const auto& r : records) out.insert(out.end(), r.begin(), r.end());
  return out;
}

// Stores a u32 into record `index`'s payload at `offset` and re-seals the record's checksum, as a writer that meant
// it would have: the reader's structural checks, not its checksums, must catch what follows.
std::vector<uint8_t> patch_u32(const std::vector<uint8_t>& bytes, size_t index, size_t offset, uint32_t value) {
  auto records = split_records(bytes);
  std::vector<uint8_t>& r = records.at(index);
  store_le<uint32_t>(r.data() + f::kRecordHeaderSize + offset, value);
  uint32_t type = load_le<uint32_t>(r.data()), len = load_le<uint32_t>(r.data() + 4);
  store_le<uint64_t>(r.data() + 8, checksum64(r.data() + f::kRecordHeaderSize, len, (uint64_t{type} << 32) | len));
  return join(records);
}

TEST(DiskFormat, MetadataWithDisksRoundTrips) {
  EpochMeta m = sample_meta();
  std::vector<uint8_t> bytes = encode_meta(m);
  auto records = split_records(bytes);
  std::vector<uint32_t> types;
  for (const auto& r : records) types.push_back(load_le<uint32_t>(r.data()));
  EXPECT_EQ(types, (std::vector<uint32_t>{1, 4, 4, 2, 5, 5, 3}));  // epoch, disks, blocks in write order, state
  // A disk record: id, flags, size, three statistics, name; a disk block record: disk id, reserved, a block record.
  EXPECT_EQ(records[2].size(), f::kRecordHeaderSize + f::kDiskRecordFixed + 5);
  EXPECT_EQ(load_le<uint32_t>(records[2].data() + f::kRecordHeaderSize + 4), f::kDiskReadOnly);
  EXPECT_EQ(records[4].size(), records[3].size() + f::kDiskBlockPrefix + f::kRunSize);
  EXPECT_EQ(load_le<uint32_t>(records[4].data() + f::kRecordHeaderSize), 1u);

  EpochMeta back;
  ASSERT_TRUE(decode(bytes, m, &back).is_ok()) << decode(bytes, m).to_string();
  ASSERT_EQ(back.disks.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.disks[i].id, m.disks[i].id);
    EXPECT_EQ(back.disks[i].name, m.disks[i].name);
    EXPECT_EQ(back.disks[i].blocks, m.disks[i].blocks);
    EXPECT_EQ(back.disks[i].read_only, m.disks[i].read_only);
    EXPECT_EQ(back.disks[i].stats, m.disks[i].stats);
  }
  ASSERT_EQ(back.blocks.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.blocks[i].space, m.blocks[i].space);
    EXPECT_EQ(back.blocks[i].runs, m.blocks[i].runs);
    EXPECT_EQ(back.blocks[i].offset, m.blocks[i].offset);
  }
  EXPECT_EQ(back.space_size(0), 1000u);
  EXPECT_EQ(back.space_size(2), 50u);
  EXPECT_EQ(back.space_size(3), 0u);
}

TEST(DiskFormat, EveryFlippedMetadataByteIsCaught) {
  EpochMeta m = sample_meta();
  std::vector<uint8_t> bytes = encode_meta(m);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x01;
    EXPECT_FALSE(decode(bad, m).is_ok()) << "flip at " << i;
  }
}

TEST(DiskFormat, DiskRecordsOnlyInA1_1File) {
  EpochMeta m = sample_meta();
  EpochMeta old = m;
  old.header.minor = 0;
  expect_rejected(encode_meta(m), old, "disk record in a format 1.0 file");
  EpochMeta no_disk_records = m;  // a disk block record alone in a 1.0 file
  no_disk_records.disks.clear();
  no_disk_records.blocks = {m.blocks[2]};
  no_disk_records.stats = EpochStats{0, 50, 0, 0, 1, 4};
  expect_rejected(encode_meta(no_disk_records), old, "disk block record in a format 1.0 file");
  // A 1.1 file without disks is read (this writer writes 1.0 then, but the reader need not insist).
  EpochMeta plain = m;
  plain.disks.clear();
  plain.blocks = {m.blocks[0]};
  plain.stats = EpochStats{1, 0, f::kPageSize, f::kPageSize, 1, 4};
  EpochMeta back;
  back.header = plain.header;
  EXPECT_TRUE(decode_meta(encode_meta(plain), f::kHeaderSize + f::kPageSize, "x.epoch", &back).is_ok());
}

TEST(DiskFormat, DiskRecordsComeRightAfterTheEpochRecordInIdOrder) {
  EpochMeta m = sample_meta();
  auto records = split_records(encode_meta(m));
  auto moved = records;  // disk 2 after the memory block
  std::swap(moved[2], moved[3]);
  expect_rejected(join(moved), m, "a disk record must follow the epoch record or another disk record");
  auto swapped = records;  // disk 2 before disk 1
  std::swap(swapped[1], swapped[2]);
  expect_rejected(join(swapped), m, "disk record for disk 2 where disk 1 belongs");
  auto missing = records;  // no disk 2: its blocks name a disk the epoch does not have
  missing.erase(missing.begin() + 2);
  expect_rejected(join(missing), m, "disk block record for disk 2; the epoch has 1 disks");
  EpochMeta seventeen = m;
  seventeen.blocks = {m.blocks[0]};
  seventeen.stats = EpochStats{1, 0, f::kPageSize, f::kPageSize, 1, 4};
  seventeen.disks.clear();
  for (uint32_t id = 1; id <= 17; ++id) seventeen.disks.push_back(DiskSpace{id, "d" + std::to_string(id), 1, false, {}});
  expect_rejected(encode_meta(seventeen), m, "disk record for disk 17; an epoch has at most 16 disks");
}

TEST(DiskFormat, DiskRecordFieldsAreChecked) {
  EpochMeta m = sample_meta();
  std::vector<uint8_t> bytes = encode_meta(m);
  expect_rejected(patch_u32(bytes, 1, 4, 2), m, "disk 1 has unknown flags 2");
  expect_rejected(patch_u32(bytes, 1, 8, 0), m, "disk 1 size of 0 blocks out of range");
  expect_rejected(patch_u32(bytes, 1, 12, 0x100), m, "disk 1 size of 1099511628076 blocks out of range");  // 2^40+300
  expect_rejected(patch_u32(bytes, 1, 40, 6), m, "disk 1 name length 6 does not fit the record");
  expect_rejected(patch_u32(bytes, 1, 40, 0), m, "disk 1 name length 0");
  expect_rejected(patch_u32(bytes, 4, 4, 1), m, "disk block record's reserved field is not 0");
  expect_rejected(patch_u32(bytes, 4, 0, 0), m, "disk block record for disk 0");
  EpochMeta twins = m;
  twins.disks[1].name = "disk0";
  expect_rejected(encode_meta(twins), m, "disk 2 has the name of disk 1");
}

TEST(DiskFormat, DiskRunsAndStatisticsAreChecked) {
  EpochMeta m = sample_meta();
  EpochMeta outside = m;
  outside.blocks[1].runs[0].first_gfn = 300;  // disk 1 has blocks 0..299; memory would take it
  expect_rejected(encode_meta(outside), m, "run of 1 blocks at block 300 lies outside disk 1 of 300 blocks");
  EpochMeta wrong_disk = m;  // the zero run of disk 2's block fits disk 1, not disk 2
  wrong_disk.blocks[2].runs[0].count = 51;
  wrong_disk.disks[1].stats.zero_blocks = 51;
  wrong_disk.stats.zero_pages = 59;
  expect_rejected(encode_meta(wrong_disk), m, "lies outside disk 2 of 50 blocks");
  EpochMeta stats = m;
  stats.disks[1].stats.zero_blocks = 49;
  expect_rejected(encode_meta(stats), m, "disk 2 statistics disagree with its blocks");
  EpochMeta stored = m;
  stored.disks[0].stats.stored_bytes += 1;
  expect_rejected(encode_meta(stored), m, "disk 1 statistics disagree with its blocks");
  EpochMeta moved = m;  // a disk's block counted as memory: the epoch totals still agree, the disk's do not
  moved.blocks[1].space = 0;
  expect_rejected(encode_meta(moved), m, "disk 1 statistics disagree with its blocks");
}

TEST(DiskFormat, HeaderCarriesTheMinorVersion) {
  for (uint16_t minor : {uint16_t{0}, f::kMinorDisks}) {
    auto bytes = encode_header(EpochHeader{1, 2, 16, EpochKind::kBase, minor});
    EXPECT_EQ(load_le<uint16_t>(bytes.data() + f::kHdrMinor), minor);
    auto back = decode_header(bytes, "x");
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back->minor, minor);
  }
  EXPECT_EQ(f::kMinor, 1);
}

}  // namespace
}  // namespace ckpt::snap
