#include "snapshot/epoch_file.h"

#include <cstdio>
#include <vector>

namespace ckpt::snap {
namespace f = format;

namespace {

Status check_links(const EpochMeta& m, const EpochFooter& ft, const std::string& path, uint64_t footer_at) {
  auto bad = [&](const std::string& what) {
    return corruption(path + " offset " + std::to_string(footer_at) + ": " + what);
  };
  if (ft.epoch != m.header.epoch) return bad("commit record is for epoch " + std::to_string(ft.epoch));
  if (ft.parent != m.parent) return bad("commit record and epoch record disagree on the parent");
  if (m.header.kind == EpochKind::kBase && m.parent != f::kNoParent) return bad("a base epoch has a parent");
  if (m.header.kind == EpochKind::kDelta && (m.parent == f::kNoParent || m.parent >= m.header.epoch)) {
    return bad("a delta epoch's parent must be an older epoch");
  }
  if (m.floor > m.header.epoch) return bad("floor lies above the epoch itself");
  return Status::ok();
}

}  // namespace

Result<EpochMeta> read_epoch_meta(const ReadableFile& file) {
  const std::string& path = file.path();
  uint64_t size = file.size();
  if (size < f::kHeaderSize + f::kFooterSize) {
    return corruption(path + ": " + std::to_string(size) + " bytes is too short for an epoch file");
  }
  uint8_t head[f::kHeaderSize];
  CKPT_RETURN_IF_ERROR(file.read(0, sizeof head, head));
  EpochMeta meta;
  CKPT_ASSIGN_OR_RETURN(meta.header, decode_header(head, path));

  uint8_t foot[f::kFooterSize];
  uint64_t footer_at = size - f::kFooterSize;
  CKPT_RETURN_IF_ERROR(file.read(footer_at, sizeof foot, foot));
  CKPT_ASSIGN_OR_RETURN(EpochFooter footer, decode_footer(foot, size, path));

  std::vector<uint8_t> section(footer.meta_length);
  CKPT_RETURN_IF_ERROR(file.read(footer.meta_offset, section.size(), section.data()));
  if (checksum64(section.data(), section.size()) != footer.meta_checksum) {
    return corruption(path + " offset " + std::to_string(footer.meta_offset) + ": metadata section checksum mismatch");
  }
  CKPT_RETURN_IF_ERROR(decode_meta(section, footer.meta_offset, path, &meta));
  CKPT_RETURN_IF_ERROR(check_links(meta, footer, path, footer_at));
  meta.file_length = footer.file_length;
  meta.meta_checksum = footer.meta_checksum;
  return meta;
}

Status read_block(const ReadableFile& file, const EpochMeta& meta, size_t index, BlockDecompressor& decompressor,
                  ByteBuffer& scratch, uint8_t* raw) {
  const BlockRef& b = meta.blocks[index];
  if (b.data_pages == 0) return Status::ok();
  auto where = [&] {
    return file.path() + " offset " + std::to_string(b.offset) + " (epoch " + std::to_string(meta.header.epoch) +
           ", block " + std::to_string(index) + ")";
  };
  if (b.stored_len > scratch.capacity()) return corruption(where() + ": stored length out of range");
  CKPT_RETURN_IF_ERROR(file.read(b.offset, b.stored_len, scratch.data()));
  if (checksum64(scratch.data(), b.stored_len) != b.stored_checksum) {
    return corruption(where() + ": block checksum mismatch");
  }
  size_t raw_len = size_t{b.data_pages} * f::kPageSize;
  Status s = decompressor.decompress(b.codec, scratch.data(), b.stored_len, raw, raw_len);
  if (!s.is_ok()) return s.with_context(where());
  if (b.codec != Codec::kRaw && checksum64(raw, raw_len) != b.raw_checksum) {
    return corruption(where() + ": decoded block checksum mismatch");
  }
  return Status::ok();
}

std::string epoch_file_name(uint64_t epoch) {
  char name[64];
  std::snprintf(name, sizeof name, "%0*llu", f::kEpochDigits, static_cast<unsigned long long>(epoch));
  return std::string(name) + std::string(f::kEpochSuffix);
}

bool parse_epoch_file_name(const std::string& name, uint64_t* epoch) {
  if (name.size() != f::kEpochDigits + f::kEpochSuffix.size()) return false;
  if (name.compare(f::kEpochDigits, std::string::npos, f::kEpochSuffix) != 0) return false;
  uint64_t value = 0;
  for (int i = 0; i < f::kEpochDigits; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  *epoch = value;
  return true;
}

}  // namespace ckpt::snap
