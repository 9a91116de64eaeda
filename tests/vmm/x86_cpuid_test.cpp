// vmm/x86/cpuid: the per-vCPU fix-ups on a synthetic KVM_GET_SUPPORTED_CPUID list shaped like a real host's
// (Intel-style leaves 4/0xb/0x1f and AMD-style 0x80000008/0x8000001e together), the kvm_cpuid2 buffer round trip,
// and the restore-time compatibility check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "vmm/x86/cpuid.h"

namespace ckpt::vmm::x86 {
namespace {

constexpr uint32_t kIndexed = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index, uint32_t flags, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = flags;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// A host with 2 threads per core (which the guest must not inherit), invariant TSC, x2APIC, AVX2.
CpuidEntries host_supported() {
  return {
      leaf(0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      // family 6; EBX: APIC id 0x2a, 16 logical, CLFLUSH 8; ECX: SSE3, x2APIC (21), AVX (28); EDX: FPU, APIC...
      leaf(0x1, 0, 0, 0x000806f8, 0x2a100800, (1u << 0) | (1u << 21) | (1u << 28), 0x0789fbff),
      leaf(0x4, 0, kIndexed, 0x1c004121, 0x02c0003f, 0x3f, 0),  // L1d, 2 sharing, 8 cores
      leaf(0x4, 1, kIndexed, 0x1c004122, 0x01c0003f, 0x3f, 0),  // L1i
      leaf(0x4, 2, kIndexed, 0x1c004143, 0x03c0003f, 0x7ff, 0),  // L2
      leaf(0x4, 3, kIndexed, 0x1c03c163, 0x0380003f, 0x7fff, 6),  // L3, 16 sharing
      leaf(0x4, 4, kIndexed, 0, 0, 0, 0),                     // no more caches
      leaf(0x7, 0, kIndexed, 1, (1u << 5) | (1u << 9), (1u << 2), (1u << 10)),  // AVX2, ERMS; UMIP; MD_CLEAR
      leaf(0x7, 1, kIndexed, (1u << 4), 0, 0, 0),
      leaf(0xb, 0, kIndexed, 1, 2, 0x100, 0x2a),   // SMT: 2 threads
      leaf(0xb, 1, kIndexed, 4, 16, 0x201, 0x2a),  // core
      leaf(0xb, 2, kIndexed, 0, 0, 2, 0x2a),
      leaf(0xd, 0, kIndexed, 0x7, 0x340, 0x340, 0),
      leaf(0xd, 1, kIndexed, 0xf, 0, 0, 0),
      leaf(0x1f, 0, kIndexed, 1, 2, 0x100, 0x2a),
      leaf(0x1f, 1, kIndexed, 4, 16, 0x201, 0x2a),
      leaf(0x1f, 2, kIndexed, 0, 0, 2, 0x2a),
      leaf(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),  // "KVMKVMKVM"
      leaf(0x40000001, 0, 0, 0x01007afb, 0, 0, 0),
      leaf(0x80000000, 0, 0, 0x8000001e, 0, 0, 0),
      leaf(0x80000001, 0, 0, 0, 0, (1u << 0) | (1u << 5), (1u << 11) | (1u << 20) | (1u << 29)),
      leaf(0x80000007, 0, 0, 0, 0, 0, 1u << 8),  // invariant TSC
      leaf(0x80000008, 0, 0, 0x3027, 0x1000, 0x0000700f, 0),  // NC 15, ApicIdSize 7
      leaf(0x8000001e, 0, 0, 0x2a, 0x0115, 0x0301, 0),       // host's own ids, 2 threads per CU, 2 nodes
  };
}

std::vector<const kvm_cpuid_entry2*> all(const CpuidEntries& e, uint32_t function) {
  std::vector<const kvm_cpuid_entry2*> out;
  for (const auto& x : e) {
    if (x.function == function) out.push_back(&x);
  }
  return out;
}
const kvm_cpuid_entry2& one(const CpuidEntries& e, uint32_t function, uint32_t index = 0) {
  for (const auto& x : e) {
    if (x.function == function && x.index == index) return x;
  }
  static kvm_cpuid_entry2 none{};
  ADD_FAILURE() << "no leaf " << std::hex << function << "." << index;
  return none;
}

TEST(Cpuid, ApicIdsAndTopologyPerVcpu) {
  const CpuidEntries host = host_supported();
  const unsigned count = 4;
  for (unsigned index = 0; index < count; ++index) {
    SCOPED_TRACE("vCPU " + std::to_string(index));
    auto r = vcpu_cpuid(host, CpuidOptions{.index = index, .count = count, .tsc_deadline = true});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const CpuidEntries& c = *r;
    const kvm_cpuid_entry2& l1 = one(c, 1);
    EXPECT_EQ(l1.ebx >> 24, index) << "initial APIC id";
    EXPECT_EQ((l1.ebx >> 16) & 0xff, count) << "logical processors per package";
    EXPECT_EQ(l1.ebx & 0xffff, 0x0800u) << "CLFLUSH size and brand index kept";
    EXPECT_NE(l1.edx & (1u << 28), 0u) << "HTT: the count field is valid";
    EXPECT_EQ(l1.eax, 0x000806f8u);

    for (uint32_t function : {0xbu, 0x1fu}) {
      SCOPED_TRACE("leaf " + std::to_string(function));
      auto subleaves = all(c, function);
      ASSERT_EQ(subleaves.size(), 3u);
      for (const kvm_cpuid_entry2* s : subleaves) {
        EXPECT_EQ(s->edx, index) << "x2APIC id in subleaf " << s->index;
        EXPECT_EQ(s->flags & kIndexed, kIndexed);
        EXPECT_EQ(s->ecx & 0xff, s->index);
      }
      const kvm_cpuid_entry2& smt = one(c, function, 0);
      EXPECT_EQ((smt.ecx >> 8) & 0xff, 1u) << "SMT level";
      EXPECT_EQ(smt.ebx & 0xffff, 1u) << "one thread per core";
      EXPECT_EQ(smt.eax & 0x1f, 0u);
      const kvm_cpuid_entry2& core = one(c, function, 1);
      EXPECT_EQ((core.ecx >> 8) & 0xff, 2u) << "core level";
      EXPECT_EQ(core.ebx & 0xffff, count);
      EXPECT_EQ(core.eax & 0x1f, 2u) << "shift: 4 cores need 2 APIC id bits";
      EXPECT_EQ((one(c, function, 2).ecx >> 8) & 0xff, 0u) << "terminating invalid level";
    }
    for (const kvm_cpuid_entry2* s : all(c, 4)) {
      if ((s->eax & 0x1f) == 0) {
        EXPECT_EQ(s->eax, 0u) << "the null descriptor stays null";
        continue;
      }
      EXPECT_EQ(s->eax >> 26, count - 1) << "cores per package - 1, subleaf " << s->index;
      const uint32_t level = (s->eax >> 5) & 7;
      EXPECT_EQ((s->eax >> 14) & 0xfff, level >= 3 ? count - 1 : 0) << "sharing, subleaf " << s->index;
      EXPECT_EQ(s->eax & 0x3fff, one(host, 4, s->index).eax & 0x3fff) << "cache type/level kept";
    }
    const kvm_cpuid_entry2& amd = one(c, 0x80000008);
    EXPECT_EQ(amd.ecx & 0xff, count - 1) << "NC";
    EXPECT_EQ((amd.ecx >> 12) & 0xf, 2u) << "ApicIdSize";
    EXPECT_EQ(amd.eax, 0x3027u) << "address sizes kept";
    const kvm_cpuid_entry2& ext = one(c, 0x8000001e);
    EXPECT_EQ(ext.eax, index) << "extended APIC id";
    EXPECT_EQ(ext.ebx & 0xff, index) << "core id";
    EXPECT_EQ((ext.ebx >> 8) & 0xff, 0u) << "one thread per compute unit";
    EXPECT_EQ(ext.ecx & 0x7ff, 0u) << "node 0 of 1";
  }
}

TEST(Cpuid, HypervisorTscDeadlineAndNoInvariantTsc) {
  const CpuidEntries host = host_supported();
  for (bool deadline : {true, false}) {
    auto r = vcpu_cpuid(host, CpuidOptions{.index = 0, .count = 1, .tsc_deadline = deadline});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const kvm_cpuid_entry2& l1 = one(*r, 1);
    EXPECT_NE(l1.ecx & (1u << 31), 0u) << "hypervisor bit";
    EXPECT_EQ((l1.ecx >> 24) & 1, deadline ? 1u : 0u) << "TSC-deadline follows the capability";
    EXPECT_EQ(l1.ecx & ((1u << 0) | (1u << 21) | (1u << 28)), (1u << 0) | (1u << 21) | (1u << 28))
        << "host features kept";
    EXPECT_EQ(l1.edx & (1u << 28), 0u) << "no HTT for a single vCPU";
    EXPECT_EQ((l1.ebx >> 16) & 0xff, 1u);
    EXPECT_EQ(one(*r, 0x80000007).edx & (1u << 8), 0u) << "invariant TSC hidden";
    // The KVM paravirt leaves as KVM reports them, byte for byte.
    for (uint32_t f : {0x40000000u, 0x40000001u}) {
      EXPECT_EQ(std::memcmp(&one(*r, f), &one(host, f), sizeof(kvm_cpuid_entry2)), 0) << std::hex << f;
    }
    // One vCPU: no APIC id bits for cores.
    EXPECT_EQ(one(*r, 0xb, 1).eax & 0x1f, 0u);
    EXPECT_EQ((one(*r, 0x80000008).ecx >> 12) & 0xf, 0u);
  }
}

TEST(Cpuid, LeavesTheHostDoesNotHaveAreNotInvented) {
  CpuidEntries host = host_supported();
  std::erase_if(host, [](const kvm_cpuid_entry2& e) {
    return e.function == 0xb || e.function == 0x1f || e.function == 0x8000001e;
  });
  auto r = vcpu_cpuid(host, CpuidOptions{.index = 1, .count = 2});
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(all(*r, 0xb).empty());
  EXPECT_TRUE(all(*r, 0x1f).empty());
  EXPECT_TRUE(all(*r, 0x8000001e).empty());
  EXPECT_EQ(r->size(), host.size());
}

TEST(Cpuid, RejectsImpossibleTopologies) {
  const CpuidEntries host = host_supported();
  EXPECT_FALSE(vcpu_cpuid(host, CpuidOptions{.index = 0, .count = 0}).is_ok());
  EXPECT_FALSE(vcpu_cpuid(host, CpuidOptions{.index = 2, .count = 2}).is_ok());
  EXPECT_FALSE(vcpu_cpuid(host, CpuidOptions{.index = 0, .count = 256}).is_ok());
  EXPECT_TRUE(vcpu_cpuid(host, CpuidOptions{.index = 254, .count = 255}).is_ok());
}

TEST(Cpuid, KvmBufferRoundTrip) {
  const CpuidEntries host = host_supported();
  std::vector<uint8_t> buffer = cpuid_to_kvm_buffer(host);
  ASSERT_EQ(buffer.size(), 8 + 40 * host.size());
  uint32_t nent;
  std::memcpy(&nent, buffer.data(), 4);
  EXPECT_EQ(nent, host.size());
  EXPECT_EQ(std::memcmp(buffer.data() + 8, host.data(), 40 * host.size()), 0);
  auto back = cpuid_from_kvm_buffer(buffer);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->size(), host.size());
  EXPECT_EQ(std::memcmp(back->data(), host.data(), 40 * host.size()), 0);

  // A buffer that claims more entries than it holds, or has no header.
  buffer.resize(buffer.size() - 1);
  EXPECT_FALSE(cpuid_from_kvm_buffer(buffer).is_ok());
  EXPECT_FALSE(cpuid_from_kvm_buffer(std::vector<uint8_t>(4)).is_ok());
  auto empty = cpuid_from_kvm_buffer(cpuid_to_kvm_buffer({}));
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

CpuidEntries with_bit(CpuidEntries e, uint32_t function, uint32_t index, int reg, uint32_t bit, bool on) {
  for (auto& x : e) {
    if (x.function != function || x.index != index) continue;
    uint32_t* r = reg == 0 ? &x.eax : reg == 1 ? &x.ebx : reg == 2 ? &x.ecx : &x.edx;
    *r = on ? (*r | (1u << bit)) : (*r & ~(1u << bit));
  }
  return e;
}

TEST(CpuidCompatibility, AcceptsIdenticalSetsAndItsOwnFixups) {
  const CpuidEntries host = host_supported();
  EXPECT_TRUE(check_cpuid_compatible(host, host).is_ok());
  for (unsigned i = 0; i < 4; ++i) {
    auto guest = vcpu_cpuid(host, CpuidOptions{.index = i, .count = 4, .tsc_deadline = true});
    ASSERT_TRUE(guest.is_ok());
    Status s = check_cpuid_compatible(*guest, host);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
  }
  // OSXSAVE appears in a running guest's CPUID once it sets CR4.OSXSAVE; no supported list has it.
  Status s = check_cpuid_compatible(with_bit(host, 1, 0, 2, 27, true), host);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  // A host with more features than the guest saw is fine.
  s = check_cpuid_compatible(host, with_bit(host, 7, 0, 1, 16, true));
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST(CpuidCompatibility, RefusesAFeatureTheHostLacks) {
  const CpuidEntries host = host_supported();
  auto guest = vcpu_cpuid(host, CpuidOptions{.index = 0, .count = 2, .tsc_deadline = true});
  ASSERT_TRUE(guest.is_ok());
  // The guest saw AVX2 (leaf 7.0 EBX bit 5); the new host's KVM does not offer it.
  Status s = check_cpuid_compatible(*guest, with_bit(host, 7, 0, 1, 5, false));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("leaf 0x7.0 EBX bits 0x20 (5)"), std::string::npos) << s.message();

  // Two words at once: both named.
  CpuidEntries poorer = with_bit(with_bit(host, 7, 0, 1, 5, false), 0x80000001, 0, 3, 29, false);
  s = check_cpuid_compatible(*guest, poorer);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("leaf 0x7.0 EBX"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("leaf 0x80000001.0 EDX bits 0x20000000 (29)"), std::string::npos) << s.message();

  // XCR0 components (leaf 0xd.0 EAX), and leaf 1 bits other than the fixed-up ones, are checked too.
  s = check_cpuid_compatible(*guest, with_bit(host, 0xd, 0, 0, 2, false));
  EXPECT_NE(s.message().find("leaf 0xd.0 EAX bits 0x4 (2)"), std::string::npos) << s.to_string();
  s = check_cpuid_compatible(*guest, with_bit(host, 1, 0, 2, 28, false));
  EXPECT_NE(s.message().find("leaf 0x1.0 ECX bits 0x10000000 (28)"), std::string::npos) << s.to_string();

  // A leaf missing on the new host counts as all-zero.
  CpuidEntries no_pv = host;
  std::erase_if(no_pv, [](const kvm_cpuid_entry2& e) { return e.function == 0x40000001; });
  s = check_cpuid_compatible(*guest, no_pv);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("leaf 0x40000001.0 EAX"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("absent"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ckpt::vmm::x86
