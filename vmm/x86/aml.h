// An encoder for the little of ACPI Machine Language (ACPI 6.5, chapter 20, "ACPI Machine Language
// Specification") that ckptd's DSDT needs: names, scopes, devices, integers, strings, packages and buffers, and
// the resource descriptors (chapter 6.4) of a _CRS. Each function returns the encoded bytes of one term; larger
// terms are built from smaller ones. Whatever could encode something the spec forbids (a bad name, a package too
// long for a PkgLength) returns an error naming it instead.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ckpt::vmm::x86::aml {

using Bytes = std::vector<uint8_t>;

// The largest PkgLength: 4 bits in the lead byte and 8 in each of three more.
constexpr uint64_t kMaxPkgLength = (1ull << 28) - 1;

// Appends `more` to `out`.
void append(Bytes& out, const Bytes& more);

// PkgLength (20.2.4) for a package whose contents after the PkgLength are `body_bytes` long. The encoded value
// counts the PkgLength's own bytes: one byte while that total is at most 63, else a lead byte (count of following
// bytes in bits 7-6, low 4 bits of the length in bits 3-0) and 1-3 bytes with the rest. Always the shortest form.
Result<Bytes> pkg_length(uint64_t body_bytes);

// NameString (20.2.2): an optional root prefix '\' or parent prefixes '^', then NameSegs separated by '.'. A
// NameSeg is 1-4 characters, the first 'A'-'Z' or '_', the others also '0'-'9'; shorter ones are padded with '_'
// as ASL does ("_S5" is "_S5_"). "\" alone is the root.
Result<Bytes> name_string(std::string_view path);

// Integer constants: ZeroOp, OneOp, or the smallest of BytePrefix, WordPrefix, DWordPrefix and QWordPrefix.
Bytes integer(uint64_t value);
// String: StringPrefix, ASCII 0x01-0x7f, NullChar.
Result<Bytes> string(std::string_view text);

// DefName: Name (path, object), `object` an encoded data object (integer, string, package, buffer).
Result<Bytes> name(std::string_view path, const Bytes& object);
// DefScope: Scope (path) { body }, `body` a list of encoded terms.
Result<Bytes> scope(std::string_view path, const Bytes& body);
// DefDevice: Device (path) { body }.
Result<Bytes> device(std::string_view path, const Bytes& body);
// DefPackage: Package () { elements }, at most 255 elements (NumElements is a byte).
Result<Bytes> package(const std::vector<Bytes>& elements);
// DefBuffer: Buffer () { data }, its size as an integer constant.
Result<Bytes> buffer(const Bytes& data);

// Resource descriptors (6.4) for a _CRS.
enum class Trigger : uint8_t { kLevel, kEdge };
enum class Polarity : uint8_t { kActiveHigh, kActiveLow };
enum class Sharing : uint8_t { kExclusive, kShared };

// Memory32Fixed (ReadWrite or ReadOnly, base, length): large item 0x06.
Bytes memory32_fixed(bool writable, uint32_t base, uint32_t length);
// Interrupt (ResourceConsumer, trigger, polarity, sharing) { gsi }: the Extended Interrupt Descriptor, large item
// 0x09, with one interrupt and no resource source. Always a consumer: the producer form is for bridges.
Bytes extended_interrupt(Trigger trigger, Polarity polarity, Sharing sharing, uint32_t gsi);
// ResourceTemplate () { descriptors }: a Buffer holding them and the End Tag (small item 0x0f; checksum 0, which
// the spec says counts as a valid checksum).
Result<Bytes> resource_template(const std::vector<Bytes>& descriptors);

}  // namespace ckpt::vmm::x86::aml
