// Encoding and decoding of the epoch file's header, records and footer, and the version rules.
#include "snapshot/epoch_meta.h"

#include <gtest/gtest.h>

#include "snapshot/byte_order.h"
#include "snapshot/epoch_file.h"

namespace ckpt::snap {
namespace {

namespace f = format;

EpochMeta sample_meta() {
  EpochMeta m;
  m.header = EpochHeader{77, 5, 1000, EpochKind::kDelta};
  m.parent = 4;
  m.floor = 0;
  m.timestamp_ns = 123456789;
  m.tag = "before-upgrade";
  BlockRef b{f::kHeaderSize, 3 * f::kPageSize, 3, Codec::kRaw, 9, 9, {{10, 2, false}, {12, 5, true}, {40, 1, false}}};
  m.blocks.push_back(b);
  m.states.push_back(StateBlob{"vcpu0", {1, 2, 3, 4}});
  m.stats = EpochStats{3, 5, 3 * f::kPageSize, 3 * f::kPageSize, 1, 4};
  return m;
}

TEST(EpochMeta, MetadataRoundTrips) {
  EpochMeta m = sample_meta();
  std::vector<uint8_t> bytes = encode_meta(m);
  EpochMeta back;
  back.header = m.header;
  uint64_t meta_offset = f::kHeaderSize + 3 * f::kPageSize;
  ASSERT_TRUE(decode_meta(bytes, meta_offset, "x.epoch", &back).is_ok());
  EXPECT_EQ(back.parent, 4u);
  EXPECT_EQ(back.tag, "before-upgrade");
  ASSERT_EQ(back.blocks.size(), 1u);
  EXPECT_EQ(back.blocks[0].runs, m.blocks[0].runs);
  ASSERT_EQ(back.states.size(), 1u);
  EXPECT_EQ(back.states[0].data, (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST(EpochMeta, EveryFlippedMetadataByteIsCaught) {
  EpochMeta m = sample_meta();
  std::vector<uint8_t> bytes = encode_meta(m);
  uint64_t meta_offset = f::kHeaderSize + 3 * f::kPageSize;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x01;
    EpochMeta back;
    back.header = m.header;
    Status s = decode_meta(bad, meta_offset, "x.epoch", &back);
    EXPECT_FALSE(s.is_ok()) << "flip at " << i;
  }
}

TEST(EpochMeta, RunsOutsideGuestMemoryAreRejected) {
  EpochMeta m = sample_meta();
  m.blocks[0].runs[2].first_gfn = 999;
  m.blocks[0].runs[2].count = 1;
  EpochMeta back;
  back.header = m.header;
  ASSERT_TRUE(decode_meta(encode_meta(m), f::kHeaderSize + 3 * f::kPageSize, "x", &back).is_ok());
  m.blocks[0].runs[2].first_gfn = 1000;
  EpochMeta back2;
  back2.header = m.header;
  Status s = decode_meta(encode_meta(m), f::kHeaderSize + 3 * f::kPageSize, "x", &back2);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("outside guest memory"), std::string::npos) << s.to_string();
}

TEST(EpochMeta, HeaderRoundTripsAndNamesTheFile) {
  EpochHeader h{42, 7, 512, EpochKind::kBase};
  auto bytes = encode_header(h);
  auto back = decode_header(bytes, "/s/7.epoch");
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->store_id, 42u);
  EXPECT_EQ(back->kind, EpochKind::kBase);
  bytes[20] ^= 4;
  auto bad = decode_header(bytes, "/s/7.epoch");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("/s/7.epoch offset 0"), std::string::npos);
}

// Rewrites the version fields and re-seals the header checksum, as a newer build would have written it.
std::array<uint8_t, f::kHeaderSize> header_with_version(uint16_t major, uint16_t minor) {
  auto bytes = encode_header(EpochHeader{1, 0, 16, EpochKind::kBase});
  store_le<uint16_t>(bytes.data() + f::kHdrMajor, major);
  store_le<uint16_t>(bytes.data() + f::kHdrMinor, minor);
  store_le<uint64_t>(bytes.data() + f::kHdrChecksum, checksum64(bytes.data(), f::kHdrChecksum));
  return bytes;
}

TEST(EpochMeta, VersionRules) {
  EXPECT_TRUE(decode_header(header_with_version(f::kMajor, f::kMinor), "x").is_ok());
  auto newer_minor = decode_header(header_with_version(f::kMajor, f::kMinor + 1), "x");
  EXPECT_EQ(newer_minor.status().code(), StatusCode::kUnsupported);
  auto other_major = decode_header(header_with_version(f::kMajor + 1, 0), "x");
  EXPECT_EQ(other_major.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(other_major.status().message().find("format version 2.0"), std::string::npos);
}

TEST(EpochMeta, FooterChecksFileLength) {
  EpochFooter ft{3, 2, 64, 100, 5, 64 + 100 + f::kFooterSize};
  auto bytes = encode_footer(ft);
  EXPECT_TRUE(decode_footer(bytes, ft.file_length, "x").is_ok());
  EXPECT_EQ(decode_footer(bytes, ft.file_length + 1, "x").status().code(), StatusCode::kCorruption);
}

TEST(EpochMeta, FileNames) {
  EXPECT_EQ(epoch_file_name(42), "0000000000000042.epoch");
  uint64_t e = 0;
  EXPECT_TRUE(parse_epoch_file_name("0000000000000042.epoch", &e));
  EXPECT_EQ(e, 42u);
  EXPECT_FALSE(parse_epoch_file_name("0000000000000042.epoch.tmp", &e));
  EXPECT_FALSE(parse_epoch_file_name("000000000000004x.epoch", &e));
  EXPECT_FALSE(parse_epoch_file_name("LOCK", &e));
}

}  // namespace
}  // namespace ckpt::snap
