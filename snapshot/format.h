// Every constant of the on-disk format (docs/format.md), in one place. Values that reach disk are never renumbered
// and 0 is never a valid type or codec. All integers are little-endian.
#pragma once

#include <cstdint>
#include <string_view>

namespace ckpt::snap::format {

// Versioning: a reader accepts files whose major equals kMajor and whose minor is <= kMinor.
inline constexpr uint16_t kMajor = 1;
inline constexpr uint16_t kMinor = 1;
// 1.1 added guest disks (kDisk, kDiskBlock records). A file without disks is written as 1.0, byte for byte what a
// 1.0 writer wrote, so that older readers keep reading stores of VMs without disks.
inline constexpr uint16_t kMinorDisks = 1;

inline constexpr uint32_t kPageSize = 4096;

// ---- file names (inside the store directory) ----
inline constexpr std::string_view kEpochSuffix = ".epoch";   // committed epoch: 16 decimal digits + suffix
inline constexpr std::string_view kTempSuffix = ".tmp";      // being written; deleted by the next writer's open
inline constexpr std::string_view kLockName = "LOCK";        // flock()ed by the single writer
inline constexpr int kEpochDigits = 16;

// ---- file header: 64 bytes at offset 0 ----
inline constexpr char kHeaderMagic[8] = {'C', 'K', 'P', 'T', 'E', 'P', 'O', 'C'};
inline constexpr uint32_t kHeaderSize = 64;
// byte offsets inside the header
inline constexpr uint32_t kHdrMajor = 8, kHdrMinor = 10, kHdrSize = 12, kHdrStoreId = 16, kHdrEpoch = 24,
                          kHdrGuestPages = 32, kHdrPageSize = 40, kHdrKind = 44, kHdrReserved = 48,
                          kHdrChecksum = 56;

enum class EpochKind : uint32_t {
  kBase = 1,   // holds every guest page; a chain starts here
  kDelta = 2,  // holds the pages dirtied since its parent
};

// ---- footer = the epoch's commit record: 64 bytes, the last bytes of the file ----
inline constexpr char kFooterMagic[8] = {'C', 'K', 'P', 'T', 'C', 'M', 'I', 'T'};
inline constexpr uint32_t kFooterSize = 64;
inline constexpr uint32_t kFtEpoch = 8, kFtParent = 16, kFtMetaOffset = 24, kFtMetaLength = 32,
                          kFtMetaChecksum = 40, kFtFileLength = 48, kFtChecksum = 56;

inline constexpr uint64_t kNoParent = UINT64_MAX;

// ---- metadata section: records, each a 16-byte header + payload ----
// record header: u32 type, u32 payload length, u64 checksum = XXH3_64(payload, seed = type << 32 | length)
inline constexpr uint32_t kRecordHeaderSize = 16;

enum class RecordType : uint32_t {
  kEpoch = 1,  // epoch identity, chain links, timestamp, stats, tag; always the first record
  kBlock = 2,  // one data block: where it is, how it is coded, checksums, the gfn runs it covers
  kState = 3,  // one named opaque state blob (vCPU, VM, device state), stored inline
  // Since 1.1:
  kDisk = 4,       // one guest disk: id, flags, size, its statistics in this epoch, name; right after kEpoch
  kDiskBlock = 5,  // one data block of a disk: disk id, reserved, then exactly a kBlock payload over disk blocks
};

// kEpoch payload: fixed part, then the tag bytes
inline constexpr uint32_t kEpochRecordFixed = 8 * 10 + 4 + 4;  // 10 u64 fields, kind u32, tag length u32

// kBlock payload: fixed part, then run_count runs of kRunSize bytes
inline constexpr uint32_t kBlockRecordFixed = 8 + 4 + 4 + 4 + 4 + 8 + 8;
inline constexpr uint32_t kRunSize = 16;  // u64 first gfn, u32 page count, u32 flags

enum class Codec : uint32_t {
  kRaw = 1,   // data pages stored as they are
  kZstd = 2,  // data pages as one zstd frame
};

inline constexpr uint32_t kRunZero = 1u << 0;  // run flag: these pages are all zero and have no bytes in the block

// kState payload: u32 name length, name, then the blob
inline constexpr uint32_t kStateRecordFixed = 4;

// kDisk payload: u32 id, u32 flags, u64 size in blocks, u64 data blocks, u64 zero blocks, u64 stored bytes,
// u32 name length, then the name. A disk block is kPageSize bytes, so disk blocks share the memory blocks' coding.
inline constexpr uint32_t kDiskRecordFixed = 4 + 4 + 8 * 4 + 4;
inline constexpr uint32_t kDiskReadOnly = 1u << 0;  // disk flag: the guest sees the disk read-only

// kDiskBlock payload: u32 disk id, u32 reserved (0), then a kBlock payload whose runs index the disk's blocks
inline constexpr uint32_t kDiskBlockPrefix = 4 + 4;

// Address spaces of a block: 0 is guest memory, 1..kMaxDisks the disk of that id.
inline constexpr uint32_t kMemorySpace = 0;

// ---- hard limits on anything read from disk (a corrupt length must not become a huge allocation) ----
inline constexpr uint32_t kMaxDataPagesPerBlock = 64;      // 256 KiB of raw data per block
inline constexpr uint32_t kMaxRunsPerBlock = 4096;
inline constexpr uint32_t kMaxRecordLength = 64u << 20;    // 64 MiB (a state blob)
inline constexpr uint64_t kMaxMetaLength = 1ull << 30;     // 1 GiB
inline constexpr uint64_t kMaxGuestPages = 1ull << 40;     // 4 PiB of guest memory
inline constexpr uint32_t kMaxTagLength = 256;
inline constexpr uint32_t kMaxStateNameLength = 256;
inline constexpr uint32_t kMaxDisks = 16;                  // disks per epoch, ids 1..16
inline constexpr uint64_t kMaxDiskBlocks = 1ull << 40;     // 4 PiB per disk
inline constexpr uint32_t kMaxDiskNameLength = 256;

}  // namespace ckpt::snap::format
