// An epoch file read the way restore and verify read it: read_epoch_meta (header, commit record, metadata section)
// over an in-memory file, then read_block for its data blocks. The decoders are also called on the raw input
// directly, since callers (the catalog, the CLI's inspect) reach them with whatever bytes a file holds.
//
// XXH3 checksums guard every structure, and a mutated input almost never carries the right ones, so each input
// is read twice: as it is, and with its checksums recomputed (header, every record, the metadata section, the
// commit record; data blocks in memory), which lets mutations reach the structural checks behind them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/byte_buffer.h"
#include "snapshot/block_codec.h"
#include "snapshot/byte_order.h"
#include "snapshot/epoch_file.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/format.h"
#include "snapshot/io/file_system.h"

namespace {

namespace snap = ckpt::snap;
namespace f = ckpt::snap::format;

// A ReadableFile over bytes in memory; reads past the end fail the way a short pread does.
class MemoryFile final : public snap::ReadableFile {
 public:
  explicit MemoryFile(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  ckpt::Status read(uint64_t offset, size_t length, void* out) const override {
    if (offset > bytes_.size() || length > bytes_.size() - offset) {
      return ckpt::corruption("short read of " + path_ + " at offset " + std::to_string(offset));
    }
    std::copy_n(bytes_.data() + offset, length, static_cast<uint8_t*>(out));
    return ckpt::Status::ok();
  }
  uint64_t size() const override { return bytes_.size(); }
  const std::string& path() const override { return path_; }

 private:
  std::span<const uint8_t> bytes_;
  std::string path_ = "fuzz.epoch";
};

// Enough blocks to cover every codec path; a small input can describe thousands of tiny zstd blocks, each
// inflating to 256 KiB, and decoding them all would only slow the run down.
constexpr size_t kMaxBlocksRead = 64;

// Recomputes every checksum the readers check before parsing, where the structure is intact enough to find them.
void fix_checksums(std::vector<uint8_t>& b) {
  if (b.size() < f::kHeaderSize + f::kFooterSize) return;
  snap::store_le<uint64_t>(b.data() + f::kHdrChecksum, snap::checksum64(b.data(), f::kHdrChecksum));
  uint8_t* foot = b.data() + b.size() - f::kFooterSize;
  snap::store_le<uint64_t>(foot + f::kFtFileLength, b.size());
  uint64_t meta_offset = snap::load_le<uint64_t>(foot + f::kFtMetaOffset);
  uint64_t meta_length = snap::load_le<uint64_t>(foot + f::kFtMetaLength);
  uint64_t footer_at = b.size() - f::kFooterSize;
  if (meta_offset <= footer_at && meta_length <= footer_at - meta_offset) {
    uint8_t* meta = b.data() + meta_offset;
    for (uint64_t pos = 0; meta_length - pos >= f::kRecordHeaderSize;) {
      uint32_t type = snap::load_le<uint32_t>(meta + pos);
      uint32_t len = snap::load_le<uint32_t>(meta + pos + 4);
      if (len > meta_length - pos - f::kRecordHeaderSize) break;
      uint64_t seed = (uint64_t{type} << 32) | len;
      snap::store_le<uint64_t>(meta + pos + 8, snap::checksum64(meta + pos + f::kRecordHeaderSize, len, seed));
      pos += f::kRecordHeaderSize + len;
    }
    snap::store_le<uint64_t>(foot + f::kFtMetaChecksum, snap::checksum64(meta, meta_length));
  }
  snap::store_le<uint64_t>(foot + f::kFtChecksum, snap::checksum64(foot, f::kFtChecksum));
}

void read_file(std::span<const uint8_t> bytes, bool fix_block_checksums) {
  MemoryFile file(bytes);
  auto meta = snap::read_epoch_meta(file);
  if (!meta) return;
  static snap::BlockDecompressor decompressor;
  static ckpt::ByteBuffer scratch(snap::max_stored_block_size());
  static std::vector<uint8_t> raw(size_t{f::kMaxDataPagesPerBlock} * f::kPageSize);
  size_t blocks = std::min(meta->blocks.size(), kMaxBlocksRead);
  for (size_t i = 0; i < blocks; ++i) {
    snap::BlockRef& block = meta->blocks[i];
    if (fix_block_checksums && block.offset <= bytes.size() && block.stored_len <= bytes.size() - block.offset) {
      block.stored_checksum = snap::checksum64(bytes.data() + block.offset, block.stored_len);
    }
    (void)snap::read_block(file, *meta, i, decompressor, scratch, raw.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  const std::string path = "fuzz.epoch";

  // The decoders on their own, on the bytes where a file would hold their sections.
  auto header = snap::decode_header(bytes, path);
  if (size >= f::kFooterSize) (void)snap::decode_footer(bytes.last(f::kFooterSize), size, path);
  snap::EpochMeta meta;
  meta.header.guest_pages = header ? header->guest_pages : 512;
  meta.header.minor = header ? header->minor : f::kMinor;  // a 1.1 header lets disk records through
  (void)snap::decode_meta(bytes.subspan(std::min<size_t>(size, f::kHeaderSize)), f::kHeaderSize, path, &meta);

  read_file(bytes, false);
  std::vector<uint8_t> fixed(data, data + size);
  fix_checksums(fixed);
  read_file(fixed, true);
  return 0;
}
