#include "vmm/x86/aml.h"

#include <string>

#include "vmm/x86/text.h"

namespace ckpt::vmm::x86::aml {
namespace {

// Opcodes and prefixes (20.3).
constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kStringPrefix = 0x0d,
                  kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82;  // DeviceOp is ExtOpPrefix 0x82
constexpr uint8_t kNullName = 0x00, kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f;
constexpr char kRootChar = '\\', kParentPrefixChar = '^';

// Resource data tags (6.4.2, 6.4.3): a large item is 1xxxxxxx with a 16-bit length after it; a small item is
// 0tttttll, type and length in the tag byte.
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint16_t kMemory32FixedLength = 9;
constexpr uint8_t kExtendedInterruptTag = 0x89;
constexpr uint8_t kEndTag = 0x79;  // small item type 0x0f, length 1 (the checksum byte)
// Extended Interrupt Descriptor flags (6.4.3.6).
constexpr uint8_t kIntConsumer = 1u << 0, kIntEdge = 1u << 1, kIntActiveLow = 1u << 2, kIntShared = 1u << 3;

template <typename T>
void put_le(Bytes& out, T value) {
  for (size_t i = 0; i < sizeof value; ++i) out.push_back(static_cast<uint8_t>(uint64_t{value} >> (8 * i)));
}

bool lead_name_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return lead_name_char(c) || (c >= '0' && c <= '9'); }

Status bad_name(std::string_view path, const std::string& why) {
  return invalid_argument("AML name \"" + std::string(path) + "\": " + why);
}

// Opcode bytes, then PkgLength, then the body: the shape of every package-like term.
Result<Bytes> with_pkg_length(std::initializer_list<uint8_t> opcode, const Bytes& body) {
  CKPT_ASSIGN_OR_RETURN(Bytes length, pkg_length(body.size()));
  Bytes out(opcode);
  append(out, length);
  append(out, body);
  return out;
}

}  // namespace

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

Result<Bytes> pkg_length(uint64_t body_bytes) {
  // The total counts the encoding's own bytes, so find the smallest size n whose range holds body + n.
  constexpr uint64_t kMaxOneByte = 0x3f;
  for (uint64_t n = 1; n <= 4; ++n) {
    const uint64_t total = body_bytes + n;
    if (n == 1) {
      if (total <= kMaxOneByte) return Bytes{static_cast<uint8_t>(total)};
      continue;
    }
    if (total > (1ull << (4 + 8 * (n - 1))) - 1) continue;
    Bytes out{static_cast<uint8_t>(((n - 1) << 6) | (total & 0x0f))};
    for (uint64_t i = 1; i < n; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * (i - 1))));
    return out;
  }
  return invalid_argument("AML package of " + std::to_string(body_bytes) +
                          " bytes is longer than a PkgLength can say (" + std::to_string(kMaxPkgLength) + ")");
}

Result<Bytes> name_string(std::string_view path) {
  Bytes out;
  std::string_view rest = path;
  if (!rest.empty() && rest.front() == kRootChar) {
    out.push_back(static_cast<uint8_t>(kRootChar));
    rest.remove_prefix(1);
  } else {
    while (!rest.empty() && rest.front() == kParentPrefixChar) {
      out.push_back(static_cast<uint8_t>(kParentPrefixChar));
      rest.remove_prefix(1);
    }
  }
  if (rest.empty()) {
    if (out.empty() || out.front() != kRootChar) return bad_name(path, "no name segment");
    out.push_back(kNullName);
    return out;
  }
  std::vector<std::string> segs;
  while (true) {
    const size_t dot = rest.find('.');
    std::string_view seg = rest.substr(0, dot);
    if (seg.empty() || seg.size() > 4) return bad_name(path, "a name segment must have 1 to 4 characters");
    if (!lead_name_char(seg.front())) return bad_name(path, "a name segment must start with A-Z or _");
    for (char c : seg) {
      if (!name_char(c)) return bad_name(path, "a name segment may hold only A-Z, 0-9 and _");
    }
    std::string padded(seg);
    padded.resize(4, '_');
    segs.push_back(padded);
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (segs.size() > 255) return bad_name(path, "more than 255 name segments");
  if (segs.size() == 2) {
    out.push_back(kDualNamePrefix);
  } else if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (const std::string& s : segs) out.insert(out.end(), s.begin(), s.end());
  return out;
}

Bytes integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    put_le(out, static_cast<uint8_t>(value));
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    put_le(out, static_cast<uint16_t>(value));
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    put_le(out, static_cast<uint32_t>(value));
  } else {
    out.push_back(kQWordPrefix);
    put_le(out, value);
  }
  return out;
}

Result<Bytes> string(std::string_view text) {
  Bytes out{kStringPrefix};
  for (char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    if (byte == 0 || byte > 0x7f) {
      return invalid_argument("AML string \"" + std::string(text) + "\" holds byte " + hex(byte) +
                              ": only ASCII 0x01-0x7f may appear");
    }
    out.push_back(byte);
  }
  out.push_back(0);
  return out;
}

Result<Bytes> name(std::string_view path, const Bytes& object) {
  CKPT_ASSIGN_OR_RETURN(Bytes n, name_string(path));
  Bytes out{kNameOp};
  append(out, n);
  append(out, object);
  return out;
}

Result<Bytes> scope(std::string_view path, const Bytes& body) {
  CKPT_ASSIGN_OR_RETURN(Bytes n, name_string(path));
  append(n, body);
  return with_pkg_length({kScopeOp}, n);
}

Result<Bytes> device(std::string_view path, const Bytes& body) {
  CKPT_ASSIGN_OR_RETURN(Bytes n, name_string(path));
  append(n, body);
  return with_pkg_length({kExtOpPrefix, kDeviceOp}, n);
}

Result<Bytes> package(const std::vector<Bytes>& elements) {
  if (elements.size() > 255) {
    return invalid_argument("AML package of " + std::to_string(elements.size()) +
                            " elements: a Package holds at most 255 (NumElements is a byte)");
  }
  Bytes body{static_cast<uint8_t>(elements.size())};
  for (const Bytes& e : elements) append(body, e);
  return with_pkg_length({kPackageOp}, body);
}

Result<Bytes> buffer(const Bytes& data) {
  Bytes body = integer(data.size());
  append(body, data);
  return with_pkg_length({kBufferOp}, body);
}

Bytes memory32_fixed(bool writable, uint32_t base, uint32_t length) {
  Bytes out{kMemory32FixedTag};
  put_le(out, kMemory32FixedLength);
  out.push_back(writable ? 1 : 0);  // bit 0: _RW
  put_le(out, base);
  put_le(out, length);
  return out;
}

Bytes extended_interrupt(Trigger trigger, Polarity polarity, Sharing sharing, uint32_t gsi) {
  uint8_t flags = kIntConsumer;
  if (trigger == Trigger::kEdge) flags |= kIntEdge;
  if (polarity == Polarity::kActiveLow) flags |= kIntActiveLow;
  if (sharing == Sharing::kShared) flags |= kIntShared;
  Bytes out{kExtendedInterruptTag};
  put_le(out, uint16_t{2 + 4});  // flags and table length, then one 32-bit interrupt number
  out.push_back(flags);
  out.push_back(1);
  put_le(out, gsi);
  return out;
}

Result<Bytes> resource_template(const std::vector<Bytes>& descriptors) {
  Bytes data;
  for (const Bytes& d : descriptors) append(data, d);
  data.push_back(kEndTag);
  data.push_back(0);
  return buffer(data);
}

}  // namespace ckpt::vmm::x86::aml
