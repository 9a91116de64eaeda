#include "snapshot/epoch_meta.h"

#include <xxhash.h>

#include <algorithm>
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

std::vector<uint8_t> disk_payload(const DiskSpace& d) {
  std::vector<uint8_t> p;
  p.reserve(f::kDiskRecordFixed + d.name.size());
  append_le<uint32_t>(p, d.id);
  append_le<uint32_t>(p, d.read_only ? f::kDiskReadOnly : 0);
  for (uint64_t v : {d.blocks, d.stats.data_blocks, d.stats.zero_blocks, d.stats.stored_bytes}) append_le<uint64_t>(p, v);
  append_le<uint32_t>(p, static_cast<uint32_t>(d.name.size()));
  p.insert(p.end(), d.name.begin(), d.name.end());
  return p;
}

// A memory block's payload (kBlock); a disk block's (kDiskBlock) is the same behind the disk id and a reserved word.
std::vector<uint8_t> block_payload(const BlockRef& b) {
  std::vector<uint8_t> p;
  p.reserve(f::kDiskBlockPrefix + f::kBlockRecordFixed + b.runs.size() * f::kRunSize);
  if (b.space != f::kMemorySpace) {
    append_le<uint32_t>(p, b.space);
    append_le<uint32_t>(p, 0);
  }
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

// Checks the runs against b->space's size in `m` (the disk records come before any block, so it is known).
Status parse_runs(const uint8_t* q, uint32_t run_count, const RecordContext& c, const EpochMeta& m, BlockRef* b) {
  uint64_t data_pages = 0;
  uint64_t size = m.space_size(b->space);
  b->runs.resize(run_count);
  for (uint32_t i = 0; i < run_count; ++i, q += f::kRunSize) {
    PageRun& r = b->runs[i];
    r.first_gfn = load_le<uint64_t>(q);
    r.count = load_le<uint32_t>(q + 8);
    uint32_t flags = load_le<uint32_t>(q + 12);
    if ((flags & ~f::kRunZero) != 0) return bad(c.path, c.at, "run with unknown flags " + std::to_string(flags));
    r.zero = (flags & f::kRunZero) != 0;
    if (r.count == 0 || r.first_gfn >= size || size - r.first_gfn < r.count) {
      if (b->space == f::kMemorySpace) {
        return bad(c.path, c.at, "run of " + std::to_string(r.count) + " pages at gfn " + std::to_string(r.first_gfn) +
                                     " lies outside guest memory of " + std::to_string(size) + " pages");
      }
      return bad(c.path, c.at, "run of " + std::to_string(r.count) + " blocks at block " +
                                   std::to_string(r.first_gfn) + " lies outside disk " + std::to_string(b->space) +
                                   " of " + std::to_string(size) + " blocks");
    }
    if (!r.zero) data_pages += r.count;
  }
  if (data_pages != b->data_pages) return bad(c.path, c.at, "block runs do not add up to its data page count");
  return Status::ok();
}

Status parse_block(std::span<const uint8_t> p, const RecordContext& c, uint32_t space, EpochMeta* m) {
  if (p.size() < f::kBlockRecordFixed) return bad(c.path, c.at, "block record too short");
  const uint8_t* q = p.data();
  BlockRef b;
  b.space = space;
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
  CKPT_RETURN_IF_ERROR(parse_runs(q + f::kBlockRecordFixed, run_count, c, *m, &b));
  m->blocks.push_back(std::move(b));
  return Status::ok();
}

// Disk records come in id order right after the epoch record (decode_meta checks where), so a disk block record
// always finds its disk's size.
Status parse_disk(std::span<const uint8_t> p, const RecordContext& c, EpochMeta* m) {
  if (m->header.minor < f::kMinorDisks) return bad(c.path, c.at, "disk record in a format 1.0 file");
  if (p.size() < f::kDiskRecordFixed) return bad(c.path, c.at, "disk record too short");
  const uint8_t* q = p.data();
  DiskSpace d;
  d.id = load_le<uint32_t>(q);
  uint32_t flags = load_le<uint32_t>(q + 4);
  d.blocks = load_le<uint64_t>(q + 8);
  d.stats.data_blocks = load_le<uint64_t>(q + 16);
  d.stats.zero_blocks = load_le<uint64_t>(q + 24);
  d.stats.stored_bytes = load_le<uint64_t>(q + 32);
  uint32_t name_len = load_le<uint32_t>(q + 40);
  uint64_t expect = m->disks.size() + 1;
  if (d.id != expect) {
    return bad(c.path, c.at, "disk record for disk " + std::to_string(d.id) + " where disk " + std::to_string(expect) +
                                 " belongs (ids run 1, 2, ... in order)");
  }
  if (d.id > f::kMaxDisks) {
    return bad(c.path, c.at, "disk record for disk " + std::to_string(d.id) + "; an epoch has at most " +
                                 std::to_string(f::kMaxDisks) + " disks");
  }
  std::string which = "disk " + std::to_string(d.id);
  if ((flags & ~f::kDiskReadOnly) != 0) return bad(c.path, c.at, which + " has unknown flags " + std::to_string(flags));
  d.read_only = (flags & f::kDiskReadOnly) != 0;
  if (d.blocks == 0 || d.blocks > f::kMaxDiskBlocks) {
    return bad(c.path, c.at, which + " size of " + std::to_string(d.blocks) + " blocks out of range");
  }
  if (name_len == 0 || name_len > f::kMaxDiskNameLength || p.size() != f::kDiskRecordFixed + uint64_t{name_len}) {
    return bad(c.path, c.at, which + " name length " + std::to_string(name_len) + " does not fit the record");
  }
  d.name.assign(reinterpret_cast<const char*>(q + f::kDiskRecordFixed), name_len);
  for (const DiskSpace& other : m->disks) {
    if (other.name == d.name) return bad(c.path, c.at, which + " has the name of disk " + std::to_string(other.id));
  }
  m->disks.push_back(std::move(d));
  return Status::ok();
}

Status parse_disk_block(std::span<const uint8_t> p, const RecordContext& c, EpochMeta* m) {
  if (m->header.minor < f::kMinorDisks) return bad(c.path, c.at, "disk block record in a format 1.0 file");
  if (p.size() < f::kDiskBlockPrefix) return bad(c.path, c.at, "disk block record too short");
  uint32_t disk = load_le<uint32_t>(p.data());
  if (disk == 0 || disk > m->disks.size()) {
    return bad(c.path, c.at, "disk block record for disk " + std::to_string(disk) + "; the epoch has " +
                                 std::to_string(m->disks.size()) + " disks");
  }
  if (load_le<uint32_t>(p.data() + 4) != 0) return bad(c.path, c.at, "disk block record's reserved field is not 0");
  return parse_block(p.subspan(f::kDiskBlockPrefix), RecordContext{c.path, c.at + f::kDiskBlockPrefix}, disk, m);
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

// Checks that the blocks tile the data area exactly, so that every byte of the file is covered by a checksum, and
// that the statistics of the epoch (all spaces) and of each disk add up.
Status check_block_layout(const EpochMeta& m, uint64_t meta_offset, const std::string& path) {
  uint64_t expect = f::kHeaderSize;
  EpochStats sum;
  std::vector<DiskStats> disk_sums(m.disks.size());
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const BlockRef& b = m.blocks[i];
    if (b.offset != expect) {
      return bad(path, b.offset, "block " + std::to_string(i) + " starts at " + std::to_string(b.offset) +
                                     ", expected " + std::to_string(expect));
    }
    expect += b.stored_len;
    uint64_t zero = 0;
    for (const PageRun& r : b.runs) zero += r.zero ? r.count : 0;
    sum.data_pages += b.data_pages;
    sum.zero_pages += zero;
    sum.stored_bytes += b.stored_len;
    if (b.space != f::kMemorySpace) {  // parse_disk_block checked it names a disk
      DiskStats& d = disk_sums[b.space - 1];
      d.data_blocks += b.data_pages;
      d.zero_blocks += zero;
      d.stored_bytes += b.stored_len;
    }
  }
  if (expect != meta_offset) return bad(path, expect, "data blocks end before the metadata section");
  const EpochStats& s = m.stats;
  if (s.data_pages != sum.data_pages || s.zero_pages != sum.zero_pages || s.stored_bytes != sum.stored_bytes ||
      s.block_count != m.blocks.size() || s.raw_bytes != sum.data_pages * f::kPageSize) {
    return bad(path, meta_offset, "epoch statistics disagree with its blocks");
  }
  for (const DiskSpace& d : m.disks) {
    if (d.stats != disk_sums[d.id - 1]) {
      return bad(path, meta_offset, "disk " + std::to_string(d.id) + " statistics disagree with its blocks");
    }
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
  store_le<uint16_t>(b.data() + f::kHdrMinor, h.minor);
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
  h.minor = minor;
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
  for (const DiskSpace& d : m.disks) append_record(out, f::RecordType::kDisk, disk_payload(d));
  for (const BlockRef& b : m.blocks) {
    append_record(out, b.space == f::kMemorySpace ? f::RecordType::kBlock : f::RecordType::kDiskBlock,
                  block_payload(b));
  }
  for (const StateBlob& s : m.states) append_record(out, f::RecordType::kState, state_payload(s));
  return out;
}

Status decode_meta(std::span<const uint8_t> bytes, uint64_t meta_offset, const std::string& path, EpochMeta* m) {
  size_t pos = 0;
  bool first = true;
  bool disks_done = false;  // a record other than a disk record came after the epoch record
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
    RecordContext c{path, at + f::kRecordHeaderSize};
    bool is_epoch = type == static_cast<uint32_t>(f::RecordType::kEpoch);
    if (first != is_epoch) return bad(path, at, "the epoch record must come first, exactly once");
    bool is_disk = type == static_cast<uint32_t>(f::RecordType::kDisk);
    if (is_disk && disks_done) return bad(path, at, "a disk record must follow the epoch record or another disk record");
    if (!first && !is_disk) disks_done = true;
    first = false;
    Status s;
    switch (static_cast<f::RecordType>(type)) {
      case f::RecordType::kEpoch:
        s = parse_epoch(payload, c, m);
        // Room for every block at once: grown by doubling, the vector would copy itself and touch about twice its
        // final size of new memory (a megabyte at 4 GiB; each new page costs this VM ~15 us to map). A count the
        // section cannot hold (a record lies; it is found out below) reserves no more than the section could.
        m->blocks.reserve(std::min<uint64_t>(
            m->stats.block_count, bytes.size() / (f::kRecordHeaderSize + f::kBlockRecordFixed + f::kRunSize)));
        break;
      case f::RecordType::kBlock: s = parse_block(payload, c, f::kMemorySpace, m); break;
      case f::RecordType::kState: s = parse_state(payload, c, m); break;
      case f::RecordType::kDisk: s = parse_disk(payload, c, m); break;
      case f::RecordType::kDiskBlock: s = parse_disk_block(payload, c, m); break;
      default: s = bad(path, at, "unknown record type " + std::to_string(type));
    }
    CKPT_RETURN_IF_ERROR(s);
    pos += f::kRecordHeaderSize + len;
  }
  if (first) return bad(path, meta_offset, "metadata section holds no epoch record");
  return check_block_layout(*m, meta_offset, path);
}

}  // namespace ckpt::snap
