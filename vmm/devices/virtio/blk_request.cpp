#include "vmm/devices/virtio/blk_request.h"

#include <algorithm>
#include <cstring>

namespace ckpt::vmm::devices::virtio {
namespace {

using namespace blk;

// The part [from, from + bytes) of the byte stream the segments make, as segments.
std::vector<Segment> slice(const std::vector<Segment>& segments, uint64_t from, uint64_t bytes) {
  std::vector<Segment> out;
  for (const Segment& s : segments) {
    if (bytes == 0) break;
    if (from >= s.len) {
      from -= s.len;
      continue;
    }
    uint64_t take = std::min<uint64_t>(s.len - from, bytes);
    out.push_back(Segment{s.gpa + from, static_cast<uint32_t>(take), s.device_writable});
    bytes -= take;
    from = 0;
  }
  return out;
}

// The first `bytes` of the segments, copied out; false when they hold fewer.
bool gather(const std::vector<Segment>& segments, const GuestRam& ram, uint8_t* out, uint64_t bytes) {
  for (const Segment& s : slice(segments, 0, bytes)) {
    if (!ram.read(s.gpa, out, s.len)) return false;
    out += s.len;
    bytes -= s.len;
  }
  return bytes == 0;
}

}  // namespace

BlkRequest parse_blk_request(const Chain& chain, const GuestRam& ram, uint64_t capacity_bytes, bool read_only) {
  BlkRequest r;
  std::vector<Segment> readable, writable;
  uint64_t readable_bytes = 0, writable_bytes = 0;
  for (const Segment& s : chain.segments) {
    (s.device_writable ? writable : readable).push_back(s);
    (s.device_writable ? writable_bytes : readable_bytes) += s.len;
  }
  if (writable_bytes == 0) {
    r.error = "no device-writable status byte";
    return r;  // kNoAnswer
  }
  // At most kMaxSize descriptors of at most 4 GiB each: the sums cannot overflow.
  const Segment& last = writable.back();
  r.status_gpa = last.gpa + last.len - 1;
  std::vector<Segment> in_data = slice(writable, 0, writable_bytes - 1);
  uint64_t in_bytes = writable_bytes - 1;

  auto answer = [&](uint8_t status, std::string why) {
    r.kind = BlkRequest::Kind::kAnswer;
    r.status = status;
    r.data.clear();
    r.data_bytes = 0;
    r.error = std::move(why);
    return r;
  };

  uint8_t header[kHeaderBytes];
  if (readable_bytes < kHeaderBytes || !gather(readable, ram, header, kHeaderBytes)) {
    return answer(kStatusIoErr, "header of " + std::to_string(readable_bytes) + " device-readable bytes, not 16");
  }
  uint32_t type;
  uint64_t sector;
  std::memcpy(&type, header, 4);
  std::memcpy(&sector, header + 8, 8);  // bytes 4..7 are reserved (ioprio): ignored
  uint64_t out_bytes = readable_bytes - kHeaderBytes;

  auto check_range = [&](uint64_t bytes) -> bool {
    if (bytes % kSectorBytes != 0) return false;
    uint64_t capacity_sectors = capacity_bytes / kSectorBytes;
    return sector <= capacity_sectors && bytes / kSectorBytes <= capacity_sectors - sector;
  };
  auto range_error = [&](uint64_t bytes) {
    return "sector " + std::to_string(sector) + " + " + std::to_string(bytes) + " bytes: not whole sectors inside " +
           std::to_string(capacity_bytes / kSectorBytes) + " sectors";
  };

  switch (type) {
    case kTypeIn:
      if (out_bytes != 0) return answer(kStatusIoErr, "T_IN with device-readable data");
      if (!check_range(in_bytes)) return answer(kStatusIoErr, range_error(in_bytes));
      r.kind = BlkRequest::Kind::kRead;
      r.offset = sector * kSectorBytes;
      r.data = std::move(in_data);
      r.data_bytes = in_bytes;
      return r;
    case kTypeOut:
      if (in_bytes != 0) return answer(kStatusIoErr, "T_OUT with device-writable data");
      if (read_only) return answer(kStatusIoErr, "T_OUT to a read-only disk");
      if (!check_range(out_bytes)) return answer(kStatusIoErr, range_error(out_bytes));
      r.kind = BlkRequest::Kind::kWrite;
      r.offset = sector * kSectorBytes;
      r.data = slice(readable, kHeaderBytes, out_bytes);
      r.data_bytes = out_bytes;
      return r;
    case kTypeFlush:
      if (out_bytes != 0 || in_bytes != 0) return answer(kStatusIoErr, "T_FLUSH with data");
      r.kind = BlkRequest::Kind::kFlush;
      return r;
    case kTypeGetId:
      if (out_bytes != 0) return answer(kStatusIoErr, "T_GET_ID with device-readable data");
      r.kind = BlkRequest::Kind::kGetId;
      r.data = std::move(in_data);
      r.data_bytes = in_bytes;
      return r;
    default:
      return answer(kStatusUnsupp, "request type " + std::to_string(type));
  }
}

}  // namespace ckpt::vmm::devices::virtio
