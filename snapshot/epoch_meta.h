// The decoded form of an epoch file's header, metadata records and footer, and their encoders/decoders.
// Decoders trust nothing: every length is bounded, every checksum checked, every gfn range checked against the
// guest size (every disk block range against its disk's size), and errors name the file and the byte offset.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "snapshot/disk_space.h"
#include "snapshot/format.h"

namespace ckpt::snap {

using format::Codec;
using format::EpochKind;

struct EpochHeader {
  uint64_t store_id = 0;
  uint64_t epoch = 0;
  uint64_t guest_pages = 0;
  EpochKind kind = EpochKind::kDelta;
  // The format minor version the file says it is: 0 without disks, kMinorDisks with (the writer sets it from the
  // disks; the reader takes it from the file, and accepts disk records only in a file that says 1.1 or later).
  uint16_t minor = 0;
};

struct EpochFooter {
  uint64_t epoch = 0;
  uint64_t parent = format::kNoParent;
  uint64_t meta_offset = 0;
  uint64_t meta_length = 0;
  uint64_t meta_checksum = 0;
  uint64_t file_length = 0;
};

// Consecutive pages of one address space: guest frames in memory, 4 KiB blocks on a disk.
struct PageRun {
  uint64_t first_gfn = 0;  // the first gfn, or the first disk block in a disk's space
  uint32_t count = 0;
  bool zero = false;  // zero pages have no bytes in the block
  bool operator==(const PageRun&) const = default;
};

struct BlockRef {
  uint64_t offset = 0;       // file offset of the stored bytes
  uint32_t stored_len = 0;   // bytes on disk (0 for a block of zero runs only)
  uint32_t data_pages = 0;   // non-zero pages, in run order; raw size = data_pages * page size
  Codec codec = Codec::kRaw;
  uint64_t stored_checksum = 0;  // XXH3_64 of the stored bytes
  uint64_t raw_checksum = 0;     // XXH3_64 of the raw data pages (equals stored_checksum for kRaw)
  std::vector<PageRun> runs;
  uint32_t space = format::kMemorySpace;  // 0: guest memory (a kBlock record); else the disk id (kDiskBlock)
};

struct StateBlob {
  std::string name;
  std::vector<uint8_t> data;
};

// Counts every address space together: memory pages and disk blocks alike are pages here.
struct EpochStats {
  uint64_t data_pages = 0;   // pages stored with bytes
  uint64_t zero_pages = 0;   // pages recorded as zero
  uint64_t raw_bytes = 0;    // data_pages * page size
  uint64_t stored_bytes = 0; // bytes of block data on disk
  uint64_t block_count = 0;
  uint64_t state_bytes = 0;
};

// Everything an epoch file says about itself except the page bytes.
struct EpochMeta {
  EpochHeader header;
  uint64_t parent = format::kNoParent;
  uint64_t floor = 0;  // epochs below this are obsolete once this file is committed (set by bases)
  uint64_t timestamp_ns = 0;
  std::string tag;
  EpochStats stats;
  std::vector<DiskSpace> disks;  // ids 1..n in order; the same layout in every epoch of a chain
  std::vector<BlockRef> blocks;  // in write order, all spaces; later blocks win over earlier ones for the same page
  std::vector<StateBlob> states;
  // From the commit record: together they identify this version of the file, so a reader that planned with this
  // metadata notices when compaction has replaced the file since (EpochFileCache).
  uint64_t file_length = 0;
  uint64_t meta_checksum = 0;

  // Pages in address space `space` (guest pages, or the disk's blocks); 0 when the epoch has no such space.
  uint64_t space_size(uint32_t space) const {
    if (space == format::kMemorySpace) return header.guest_pages;
    return space <= disks.size() ? disks[space - 1].blocks : 0;
  }
};

std::array<uint8_t, format::kHeaderSize> encode_header(const EpochHeader& header);
Result<EpochHeader> decode_header(std::span<const uint8_t> bytes, const std::string& path);

std::array<uint8_t, format::kFooterSize> encode_footer(const EpochFooter& footer);
// `file_size` is the real size of the file, checked against the footer's own record of it.
Result<EpochFooter> decode_footer(std::span<const uint8_t> bytes, uint64_t file_size, const std::string& path);

// The metadata section of `meta` (epoch record, disk records, block and disk block records, state records), ready to
// write.
std::vector<uint8_t> encode_meta(const EpochMeta& meta);
// Parses and checks a metadata section read from `path` at `meta_offset`. Fills everything but meta.header.
Status decode_meta(std::span<const uint8_t> bytes, uint64_t meta_offset, const std::string& path, EpochMeta* meta);

uint64_t checksum64(const void* data, size_t length, uint64_t seed = 0);

}  // namespace ckpt::snap
