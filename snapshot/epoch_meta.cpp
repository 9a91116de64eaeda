#include "snapshot/epoch_meta.h"

#include <xxhash.h>

#include <cstring>

#include "snapshot/byte_order.h"

namespace ckpt::snap {
namespace f = format;

namespace {

Status bad(const std::string& path, uint64_t offset, const std::string& what) {
  return corruption(path + " offset " + std::to_string(offset) + ": " + what);
}

uint64_t record_seed(uint32_t type, uint32_t length) { return (static_cast<uint64_t>(type) << 32) | length; }

void append_record(std::vector<uint8_t>& out, f::RecordType type, const std::vector<uint8_t>& payload) {
  auto t = static_cast<uint32_t>(type);
  auto len = static_cast<uint32_t>(payload.size());
  append_le<uint32_t>(out, t);
  append_le<uint32_t>(out, len);
  append_le<uint64_t>(out, checksum64(payload.data(), payload.size(), record_seed(t, len)));
  out.insert(out.end(), payload.begin(), payload.end());
}

std::vector<uint8_t> epoch_payload(const EpochMeta& m) {
  std::vector<uint8_t> p;
  p.reserve(f::kEpochRecordFixed + m.tag.size());
  for (uint64_t v : {m.header.epoch, m.parent, m.floor, m.timestamp_ns, m.stats.data_pages, m.stats.zero_pages,
                     m.stats.raw_bytes, m.stats.stored_bytes, m.stats.block_count, m.stats.state_bytes}) {
    append_le<uint64_t>(p, v);
  }
  append_le<uint32_t>(p, static_cast<uint32_t>(m.header.kind));
  append_le<uint32_t>(p, static_cast<uint32_t>(m.tag.size()));
  p.insert(p.end(), m.tag.begin(), m.tag.end());
  return p;
}

std::vector<uint8_t> block_payload(const BlockRef& b) {
  std::vector<uint8_t> p;
  p.reserve(f::kBlockRecordFixed + b.runs.size() * f::kRunSize);
  append_le<uint64_t>(p, b.offset);
  append_le<uint32_t>(p, b.stored_len);
  append_le<uint32_t>(p, b.data_pages);
  append_le<uint32_t>(p, static_cast<uint32_t>(b.codec));
  append_le<uint32_t>(p, static_cast<uint32_t>(b.runs.size()));
  append_le<uint64_t>(p, b.stored_checksum);
  append_le<uint64_t>(p, b.raw_checksum);
  for (const PageRun& r : b.runs) {
    append_le<uint64_t>(p, r.first_gfn);
    append_le<uint32_t>(p, r.count);
    append_le<uint32_t>(p, r.zero ? f::kRunZero : 0);
  }
  return p;
}

std::vector<uint8_t> state_payload(const StateBlob& s) {
  std::vector<uint8_t> p;
  p.reserve(f::kStateRecordFixed + s.name.size() + s.data.size());
  append_le<uint32_t>(p, static_cast<uint32_t>(s.name.size()));
  p.insert(p.end(), s.name.begin(), s.name.end());
  p.insert(p.end(), s.data.begin(), s.data.end());
  return p;
}

// Parsers for one record's payload. `at` is the payload's file offset, for messages.
struct RecordContext {
  const std::string& path;
  uint64_t at;
  uint64_t guest_pages;
};

Status parse_epoch(std::span<const uint8_t> p, const RecordContext& c, EpochMeta* m) {
  if (p.size() < f::kEpochRecordFixed) return bad(c.path, c.at, "epoch record too short");
  const uint8_t* q = p.data();
  uint64_t epoch = load_le<uint64_t>(q);
  m->parent = load_le<uint64_t>(q + 8);
  m->floor = load_le<uint64_t>(q + 16);
  m->timestamp_ns = load_le<uint64_t>(q + 24);
  EpochStats& s = m->stats;
  s.data_pages = load_le<uint64_t>(q + 32);
  s.zero_pages = load_le<uint64_t>(q + 40);
  s.raw_bytes = load_le<uint64_t>(q + 48);
  s.stored_bytes = load_le<uint64_t>(q + 56);
  s.block_count = load_le<uint64_t>(q + 64);
  s.state_bytes = load_le<uint64_t>(q + 72);
  uint32_t kind = load_le<uint32_t>(q + 80);
  uint32_t tag_len = load_le<uint32_t>(q + 84);
  if (epoch != m->header.epoch) return bad(c.path, c.at, "epoch record names epoch " + std::to_string(epoch));
  if (kind != static_cast<uint32_t>(m->header.kind)) return bad(c.path, c.at, "epoch record kind differs from header");
  if (tag_len > f::kMaxTagLength || p.size() != f::kEpochRecordFixed + tag_len) {
    return bad(c.path, c.at, "epoch record tag length " + std::to_string(tag_len) + " does not fit the record");
  }
  m->tag.assign(reinterpret_cast<const char*>(q + f::kEpochRecordFixed), tag_len);
  return Status::ok();
}

Status parse_runs(const uint8_t* q, uint32_t run_count, const RecordContext& c, BlockRef* b) {
  uint64_t data_pages = 0;
  b->runs.resize(run_count);
  for (uint32_t i = 0; i < run_count; ++i, q += f::kRunSize) {
    PageRun& r = b->runs[i];
    r.first_gfn = load_le<uint64_t>(q);
    r.count = load_le<uint32_t>(q + 8);
    uint32_t flags = load_le<uint32_t>(q + 12);
    if ((flags & ~f::kRunZero) != 0) return bad(c.path, c.at, "run with unknown flags " + std::to_string(flags));
    r.zero = (flags & f::kRunZero) != 0;
    if (r.count == 0 || r.first_gfn >= c.guest_pages || c.guest_pages - r.first_gfn < r.count) {
      return bad(c.path, c.at, "run of " + std::to_string(r.count) + " pages at gfn " + std::to_string(r.first_gfn) +
                                   " lies outside guest memory of " + std::to_string(c.guest_pages) + " pages");
    }
    if (!r.zero) data_pages += r.count;
  }
  if (data_pages != b->data_pages) return bad(c.path, c.at, "block runs do not add up to its data page count");
  return Status::ok();
}

Status parse_block(std::span<const uint8_t> p, const RecordContext& c, EpochMeta* m) {
  if (p.size() < f::kBlockRecordFixed) return bad(c.path, c.at, "block record too short");
  const uint8_t* q = p.data();
  BlockRef b;
  b.offset = load_le<uint64_t>(q);
  b.stored_len = load_le<uint32_t>(q + 8);
  b.data_pages = load_le<uint32_t>(q + 12);
  uint32_t codec = load_le<uint32_t>(q + 16);
  uint32_t run_count = load_le<uint32_t>(q + 20);
  b.stored_checksum = load_le<uint64_t>(q + 24);
  b.raw_checksum = load_le<uint64_t>(q + 32);
  if (codec != static_cast<uint32_t>(Codec::kRaw) && codec != static_cast<uint32_t>(Codec::kZstd)) {
    return bad(c.path, c.at, "block with unknown codec " + std::to_string(codec));
  }
  b.codec = static_cast<Codec>(codec);
  if (b.data_pages > f::kMaxDataPagesPerBlock || run_count == 0 || run_count > f::kMaxRunsPerBlock ||
      p.size() != f::kBlockRecordFixed + uint64_t{run_count} * f::kRunSize) {
    return bad(c.path, c.at, "block record sizes out of range");
  }
  uint64_t raw_len = uint64_t{b.data_pages} * f::kPageSize;
  if ((b.codec == Codec::kRaw && b.stored_len != raw_len) || (b.data_pages == 0 && b.stored_len != 0) ||
      (b.data_pages > 0 && b.stored_len == 0)) {
    return bad(c.path, c.at, "block stored length " + std::to_string(b.stored_len) + " inconsistent with " +
                                 std::to_string(b.data_pages) + " data pages");
  }
  CKPT_RETURN_IF_ERROR(parse_runs(q + f::kBlockRecordFixed, run_count, c, &b));
  m->blocks.push_back(std::move(b));
  return Status::ok();
}

Status parse_state(std::span<const uint8_t> p, const RecordContext& c, EpochMeta* m) {
  if (p.size() < f::kStateRecordFixed) return bad(c.path, c.at, "state record too short");
  uint32_t name_len = load_le<uint32_t>(p.data());
  if (name_len == 0 || name_len > f::kMaxStateNameLength || name_len > p.size() - f::kStateRecordFixed) {
    return bad(c.path, c.at, "state record name length " + std::to_string(name_len) + " out of range");
  }
  StateBlob s;
  const uint8_t* name = p.data() + f::kStateRecordFixed;
  s.name.assign(reinterpret_cast<const char*>(name), name_len);
  s.data.assign(name + name_len, p.data() + p.size());
  m->states.push_back(std::move(s));
  return Status::ok();
}

// Checks that the blocks tile the data area exactly, so that every byte of the file is covered by a checksum.
Status check_block_layout(const EpochMeta& m, uint64_t meta_offset, const std::string& path) {
  uint64_t expect = f::kHeaderSize;
  EpochStats sum;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const BlockRef& b = m.blocks[i];
    if (b.offset != expect) {
      return bad(path, b.offset, "block " + std::to_string(i) + " starts at " + std::to_string(b.offset) +
                                     ", expected " + std::to_string(expect));
    }
    expect += b.stored_len;
    sum.data_pages += b.data_pages;
    for (const PageRun& r : b.runs) sum.zero_pages += r.zero ? r.count : 0;
    sum.stored_bytes += b.stored_len;
  }
  if (expect != meta_offset) return bad(path, expect, "data blocks end before the metadata section");
  const EpochStats& s = m.stats;
  if (s.data_pages != sum.data_pages || s.zero_pages != sum.zero_pages || s.stored_bytes != sum.stored_bytes ||
      s.block_count != m.blocks.size() || s.raw_bytes != sum.data_pages * f::kPageSize) {
    return bad(path, meta_offset, "epoch statistics disagree with its blocks");
  }
  uint64_t state_bytes = 0;
  for (const StateBlob& st : m.states) state_bytes += st.data.size();
  if (state_bytes != s.state_bytes) return bad(path, meta_offset, "epoch state size disagrees with its records");
  return Status::ok();
}

}  // namespace

uint64_t checksum64(const void* data, size_t length, uint64_t seed) { return XXH3_64bits_withSeed(data, length, seed); }

std::array<uint8_t, f::kHeaderSize> encode_header(const EpochHeader& h) {
  std::array<uint8_t, f::kHeaderSize> b{};
  std::memcpy(b.data(), f::kHeaderMagic, 8);
  store_le<uint16_t>(b.data() + f::kHdrMajor, f::kMajor);
  store_le<uint16_t>(b.data() + f::kHdrMinor, f::kMinor);
  store_le<uint32_t>(b.data() + f::kHdrSize, f::kHeaderSize);
  store_le<uint64_t>(b.data() + f::kHdrStoreId, h.store_id);
  store_le<uint64_t>(b.data() + f::kHdrEpoch, h.epoch);
  store_le<uint64_t>(b.data() + f::kHdrGuestPages, h.guest_pages);
  store_le<uint32_t>(b.data() + f::kHdrPageSize, f::kPageSize);
  store_le<uint32_t>(b.data() + f::kHdrKind, static_cast<uint32_t>(h.kind));
  store_le<uint64_t>(b.data() + f::kHdrChecksum, checksum64(b.data(), f::kHdrChecksum));
  return b;
}

Result<EpochHeader> decode_header(std::span<const uint8_t> b, const std::string& path) {
  if (b.size() < f::kHeaderSize) return bad(path, 0, "file shorter than its header");
  if (std::memcmp(b.data(), f::kHeaderMagic, 8) != 0) return bad(path, 0, "not an epoch file (bad magic)");
  uint16_t major = load_le<uint16_t>(b.data() + f::kHdrMajor);
  uint16_t minor = load_le<uint16_t>(b.data() + f::kHdrMinor);
  if (load_le<uint64_t>(b.data() + f::kHdrChecksum) != checksum64(b.data(), f::kHdrChecksum)) {
    return bad(path, 0, "header checksum mismatch");
  }
  if (major != f::kMajor || minor > f::kMinor) {
    return Status(StatusCode::kUnsupported, path + ": format version " + std::to_string(major) + "." +
                                                std::to_string(minor) + " is not readable by this build (reads " +
                                                std::to_string(f::kMajor) + ".0 to " + std::to_string(f::kMajor) +
                                                "." + std::to_string(f::kMinor) + ")");
  }
  EpochHeader h;
  h.store_id = load_le<uint64_t>(b.data() + f::kHdrStoreId);
  h.epoch = load_le<uint64_t>(b.data() + f::kHdrEpoch);
  h.guest_pages = load_le<uint64_t>(b.data() + f::kHdrGuestPages);
  uint32_t kind = load_le<uint32_t>(b.data() + f::kHdrKind);
  if (load_le<uint32_t>(b.data() + f::kHdrSize) != f::kHeaderSize ||
      load_le<uint32_t>(b.data() + f::kHdrPageSize) != f::kPageSize ||
      load_le<uint64_t>(b.data() + f::kHdrReserved) != 0) {
    return bad(path, 0, "header sizes or reserved field invalid");
  }
  if (kind != static_cast<uint32_t>(EpochKind::kBase) && kind != static_cast<uint32_t>(EpochKind::kDelta)) {
    return bad(path, f::kHdrKind, "unknown epoch kind " + std::to_string(kind));
  }
  if (h.guest_pages == 0 || h.guest_pages > f::kMaxGuestPages) {
    return bad(path, f::kHdrGuestPages, "guest size of " + std::to_string(h.guest_pages) + " pages out of range");
  }
  h.kind = static_cast<EpochKind>(kind);
  return h;
}

std::array<uint8_t, f::kFooterSize> encode_footer(const EpochFooter& ft) {
  std::array<uint8_t, f::kFooterSize> b{};
  std::memcpy(b.data(), f::kFooterMagic, 8);
  store_le<uint64_t>(b.data() + f::kFtEpoch, ft.epoch);
  store_le<uint64_t>(b.data() + f::kFtParent, ft.parent);
  store_le<uint64_t>(b.data() + f::kFtMetaOffset, ft.meta_offset);
  store_le<uint64_t>(b.data() + f::kFtMetaLength, ft.meta_length);
  store_le<uint64_t>(b.data() + f::kFtMetaChecksum, ft.meta_checksum);
  store_le<uint64_t>(b.data() + f::kFtFileLength, ft.file_length);
  store_le<uint64_t>(b.data() + f::kFtChecksum, checksum64(b.data(), f::kFtChecksum));
  return b;
}

Result<EpochFooter> decode_footer(std::span<const uint8_t> b, uint64_t file_size, const std::string& path) {
  uint64_t at = file_size - f::kFooterSize;
  if (b.size() < f::kFooterSize) return bad(path, 0, "file shorter than its footer");
  if (std::memcmp(b.data(), f::kFooterMagic, 8) != 0) return bad(path, at, "no commit record (bad footer magic)");
  if (load_le<uint64_t>(b.data() + f::kFtChecksum) != checksum64(b.data(), f::kFtChecksum)) {
    return bad(path, at, "commit record checksum mismatch");
  }
  EpochFooter ft;
  ft.epoch = load_le<uint64_t>(b.data() + f::kFtEpoch);
  ft.parent = load_le<uint64_t>(b.data() + f::kFtParent);
  ft.meta_offset = load_le<uint64_t>(b.data() + f::kFtMetaOffset);
  ft.meta_length = load_le<uint64_t>(b.data() + f::kFtMetaLength);
  ft.meta_checksum = load_le<uint64_t>(b.data() + f::kFtMetaChecksum);
  ft.file_length = load_le<uint64_t>(b.data() + f::kFtFileLength);
  if (ft.file_length != file_size) {
    return bad(path, at, "commit record says the file is " + std::to_string(ft.file_length) + " bytes, it is " +
                             std::to_string(file_size));
  }
  // Checked without meta_offset + meta_length, which can wrap past 2^64: a tiny file would then pass with a 1 GiB
  // meta_length, which read_epoch_meta allocates before its read fails.
  if (ft.meta_offset < f::kHeaderSize || ft.meta_length > f::kMaxMetaLength || ft.meta_length == 0 ||
      ft.meta_length > at || ft.meta_offset != at - ft.meta_length) {
    return bad(path, at, "commit record points outside the file");
  }
  return ft;
}

std::vector<uint8_t> encode_meta(const EpochMeta& m) {
  std::vector<uint8_t> out;
  append_record(out, f::RecordType::kEpoch, epoch_payload(m));
  for (const BlockRef& b : m.blocks) append_record(out, f::RecordType::kBlock, block_payload(b));
  for (const StateBlob& s : m.states) append_record(out, f::RecordType::kState, state_payload(s));
  return out;
}

Status decode_meta(std::span<const uint8_t> bytes, uint64_t meta_offset, const std::string& path, EpochMeta* m) {
  size_t pos = 0;
  bool first = true;
  while (pos < bytes.size()) {
    uint64_t at = meta_offset + pos;
    if (bytes.size() - pos < f::kRecordHeaderSize) return bad(path, at, "truncated record header");
    uint32_t type = load_le<uint32_t>(bytes.data() + pos);
    uint32_t len = load_le<uint32_t>(bytes.data() + pos + 4);
    uint64_t sum = load_le<uint64_t>(bytes.data() + pos + 8);
    if (len > f::kMaxRecordLength || len > bytes.size() - pos - f::kRecordHeaderSize) {
      return bad(path, at, "record length " + std::to_string(len) + " runs past the metadata section");
    }
    std::span<const uint8_t> payload = bytes.subspan(pos + f::kRecordHeaderSize, len);
    if (checksum64(payload.data(), len, record_seed(type, len)) != sum) return bad(path, at, "record checksum mismatch");
    RecordContext c{path, at + f::kRecordHeaderSize, m->header.guest_pages};
    bool is_epoch = type == static_cast<uint32_t>(f::RecordType::kEpoch);
    if (first != is_epoch) return bad(path, at, "the epoch record must come first, exactly once");
    first = false;
    Status s = is_epoch ? parse_epoch(payload, c, m)
               : type == static_cast<uint32_t>(f::RecordType::kBlock) ? parse_block(payload, c, m)
               : type == static_cast<uint32_t>(f::RecordType::kState) ? parse_state(payload, c, m)
                                                                       : bad(path, at, "unknown record type " +
                                                                                           std::to_string(type));
    CKPT_RETURN_IF_ERROR(s);
    pos += f::kRecordHeaderSize + len;
  }
  if (first) return bad(path, meta_offset, "metadata section holds no epoch record");
  return check_block_layout(*m, meta_offset, path);
}

}  // namespace ckpt::snap
