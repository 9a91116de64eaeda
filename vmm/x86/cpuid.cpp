#include "vmm/x86/cpuid.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "vmm/x86/text.h"

namespace ckpt::vmm::x86 {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCaches = 0x4;  // Intel deterministic cache parameters
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafTopologyV2 = 0x1f;
constexpr uint32_t kLeafPowerManagement = 0x80000007;
constexpr uint32_t kLeafAddressSizes = 0x80000008;
constexpr uint32_t kLeafAmdTopology = 0x8000001e;

constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEcxOsxsave = 1u << 27;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;
constexpr uint32_t kEdxInvariantTsc = 1u << 8;
constexpr uint32_t kLeaf7EcxOspke = 1u << 4;

constexpr uint32_t kLevelSmt = 1, kLevelCore = 2;  // leaf 0xb/0x1f ECX[15:8]

enum Reg { kEax, kEbx, kEcx, kEdx };
const char* reg_name(Reg r) {
  static const char* const names[] = {"EAX", "EBX", "ECX", "EDX"};
  return names[r];
}
uint32_t& reg_of(kvm_cpuid_entry2& e, Reg r) {
  switch (r) {
    case kEax: return e.eax;
    case kEbx: return e.ebx;
    case kEcx: return e.ecx;
    case kEdx: break;
  }
  return e.edx;
}

// log2 rounded up: the APIC id bits `n` cores need.
uint32_t order(uint32_t n) {
  uint32_t s = 0;
  while ((1u << s) < n) ++s;
  return s;
}

bool matches(const kvm_cpuid_entry2& e, uint32_t function, uint32_t index) {
  return e.function == function && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == index);
}

const kvm_cpuid_entry2* find(std::span<const kvm_cpuid_entry2> entries, uint32_t function, uint32_t index) {
  for (const kvm_cpuid_entry2& e : entries) {
    if (matches(e, function, index)) return &e;
  }
  return nullptr;
}

// Replaces every subleaf of leaf 0xb or 0x1f with: SMT level of one thread, core level of `count` cores, then the
// terminating invalid level; EDX is the x2APIC id in each, as the SDM requires for every subleaf.
void rewrite_topology_leaf(CpuidEntries& out, uint32_t function, const CpuidOptions& o) {
  std::erase_if(out, [&](const kvm_cpuid_entry2& e) { return e.function == function; });
  auto subleaf = [&](uint32_t index, uint32_t shift, uint32_t processors, uint32_t level) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.eax = shift;
    e.ebx = processors;
    e.ecx = (level << 8) | index;
    e.edx = o.index;
    out.push_back(e);
  };
  subleaf(0, 0, 1, kLevelSmt);
  subleaf(1, order(o.count), o.count, kLevelCore);
  subleaf(2, 0, 0, 0);
}

}  // namespace

Result<CpuidEntries> cpuid_from_kvm_buffer(std::span<const uint8_t> buffer) {
  if (buffer.size() < sizeof(kvm_cpuid2)) {
    return invalid_argument("kvm_cpuid2 buffer of " + std::to_string(buffer.size()) + " bytes has no header");
  }
  kvm_cpuid2 header;
  std::memcpy(&header, buffer.data(), sizeof header);
  const uint64_t room = (buffer.size() - sizeof header) / sizeof(kvm_cpuid_entry2);
  if (header.nent > room) {
    return invalid_argument("kvm_cpuid2 buffer claims " + std::to_string(header.nent) + " entries but holds " +
                            std::to_string(room));
  }
  CpuidEntries entries(header.nent);
  std::memcpy(entries.data(), buffer.data() + sizeof header, entries.size() * sizeof(kvm_cpuid_entry2));
  return entries;
}

std::vector<uint8_t> cpuid_to_kvm_buffer(std::span<const kvm_cpuid_entry2> entries) {
  std::vector<uint8_t> buffer(sizeof(kvm_cpuid2) + entries.size() * sizeof(kvm_cpuid_entry2));
  kvm_cpuid2 header{};
  header.nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buffer.data(), &header, sizeof header);
  if (!entries.empty()) std::memcpy(buffer.data() + sizeof header, entries.data(), entries.size_bytes());
  return buffer;
}

Result<CpuidEntries> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, const CpuidOptions& o) {
  if (o.count == 0 || o.count > 255 || o.index >= o.count) {
    return invalid_argument("CPUID for vCPU " + std::to_string(o.index) + " of " + std::to_string(o.count) +
                            ": want 1..255 vCPUs and an index below the count");
  }
  CpuidEntries out(supported.begin(), supported.end());
  const uint32_t cores_minus_1 = o.count - 1;
  bool has_topology = false, has_topology_v2 = false;
  for (kvm_cpuid_entry2& e : out) {
    switch (e.function) {
      case kLeafFeatures:
        // EBX[31:24] initial APIC id, [23:16] logical processors per package; HTT says the latter is valid.
        e.ebx = (e.ebx & 0x0000ffffu) | (o.index << 24) | (o.count << 16);
        if (o.count > 1) {
          e.edx |= kEdxHtt;
        } else {
          e.edx &= ~kEdxHtt;
        }
        // Without the hypervisor bit Linux ignores the KVM leaves: no kvm-clock, and a TSC calibrated against
        // the PIT, which under the nested emulator hung in calibrate_delay in 14 of 24 boots.
        e.ecx |= kEcxHypervisor;
        // KVM emulates the TSC-deadline timer in its LAPIC but does not list the bit as supported.
        if (o.tsc_deadline) {
          e.ecx |= kEcxTscDeadline;
        } else {
          e.ecx &= ~kEcxTscDeadline;
        }
        break;
      case kLeafCaches:
        // Per valid cache (type EAX[4:0] != 0): EAX[31:26] = cores per package - 1, EAX[25:14] = logical
        // processors sharing it - 1: private L1/L2 (one thread per core), an L3 shared by the package.
        if ((e.eax & 0x1f) != 0) {
          const uint32_t level = (e.eax >> 5) & 0x7;
          const uint32_t sharing = level >= 3 ? cores_minus_1 : 0;
          e.eax = (e.eax & 0x3fffu) | (std::min(cores_minus_1, 63u) << 26) | (sharing << 14);
        }
        break;
      case kLeafTopology: has_topology = true; break;
      case kLeafTopologyV2: has_topology_v2 = true; break;
      case kLeafPowerManagement:
        // Hidden invariant TSC: Linux then takes the TSC frequency from kvm-clock rather than calibrating it
        // against the PIT, which fails nested.
        e.edx &= ~kEdxInvariantTsc;
        break;
      case kLeafAddressSizes:
        // AMD: ECX[7:0] NC = cores - 1, ECX[15:12] ApicIdSize = APIC id bits for the cores.
        e.ecx = (e.ecx & ~0xf0ffu) | cores_minus_1 | (order(o.count) << 12);
        break;
      case kLeafAmdTopology:
        // AMD extended APIC id; one thread per compute unit, which is the core itself; node 0 of 1.
        e.eax = o.index;
        e.ebx = (e.ebx & ~0xffffu) | (o.index & 0xffu);
        e.ecx &= ~0x7ffu;
        break;
      default: break;
    }
  }
  if (has_topology) rewrite_topology_leaf(out, kLeafTopology, o);
  if (has_topology_v2) rewrite_topology_leaf(out, kLeafTopologyV2, o);
  return out;
}

// The feature words a guest acts on: a set bit lets it execute an instruction, use an MSR or an XSAVE component,
// or rely on a paravirt interface, so a guest that saw it may use it at any moment after the restore and would
// take #UD/#GP (or KVM would refuse its saved XSAVE/MSR state) on a host without it. Leaves that carry values
// rather than features (topology, caches, family/model, address sizes, TSC frequency) differ between hosts
// legitimately or are set per vCPU, and are not compared.
struct FeatureWord {
  uint32_t function;
  uint32_t index;
  Reg reg;
  uint32_t exempt;  // bits vcpu_cpuid sets itself, or that KVM changes at run time
};
constexpr FeatureWord kFeatureWords[] = {
    // OSXSAVE mirrors CR4.OSXSAVE (KVM updates it whenever the guest writes CR4), so a saved CPUID has it and no
    // supported list does. Hypervisor and TSC-deadline: set by vcpu_cpuid (TSC-deadline needs the in-kernel
    // LAPIC, which every ckptd VM has, and KVM_CAP_TSC_DEADLINE_TIMER, in every kernel since 3.2).
    {1, 0, kEcx, kEcxHypervisor | kEcxTscDeadline | kEcxOsxsave},
    {1, 0, kEdx, kEdxHtt},  // HTT: set by vcpu_cpuid for more than one vCPU
    {7, 0, kEbx, 0},
    {7, 0, kEcx, kLeaf7EcxOspke},  // OSPKE mirrors CR4.PKE, as OSXSAVE does
    {7, 0, kEdx, 0},
    {7, 1, kEax, 0},
    {0xd, 0, kEax, 0},  // XCR0 components: the saved XSAVE area may hold any of them
    {0xd, 0, kEdx, 0},
    {0xd, 1, kEax, 0},  // XSAVEOPT, XSAVEC, XGETBV1, XSAVES
    {0xd, 1, kEcx, 0},  // IA32_XSS components
    {0xd, 1, kEdx, 0},
    {0x80000001, 0, kEcx, 0},
    {0x80000001, 0, kEdx, 0},
    {kLeafPowerManagement, 0, kEdx, 0},
    {kLeafAddressSizes, 0, kEbx, 0},  // AMD feature word: IBPB, SSBD, WBNOINVD, ...
    {0x40000001, 0, kEax, 0},         // KVM paravirt features (kvm-clock, PV EOI, async PF, ...)
};

Status check_cpuid_compatible(std::span<const kvm_cpuid_entry2> saved,
                              std::span<const kvm_cpuid_entry2> host_supported) {
  std::string missing;
  for (const FeatureWord& w : kFeatureWords) {
    const kvm_cpuid_entry2* s = find(saved, w.function, w.index);
    if (s == nullptr) continue;
    const kvm_cpuid_entry2* h = find(host_supported, w.function, w.index);
    kvm_cpuid_entry2 saved_entry = *s;
    kvm_cpuid_entry2 host_entry = h != nullptr ? *h : kvm_cpuid_entry2{};
    const uint32_t lacking = reg_of(saved_entry, w.reg) & ~reg_of(host_entry, w.reg) & ~w.exempt;
    if (lacking == 0) continue;
    if (!missing.empty()) missing += "; ";
    missing += "leaf " + hex(w.function) + "." + std::to_string(w.index) + " " + reg_name(w.reg) + " bits " +
               hex(lacking) + " (";
    bool first = true;
    for (unsigned bit = 0; bit < 32; ++bit) {
      if ((lacking & (1u << bit)) == 0) continue;
      missing += (first ? "" : ",") + std::to_string(bit);
      first = false;
    }
    missing += h == nullptr ? "; leaf absent on this host)" : ")";
  }
  if (missing.empty()) return Status::ok();
  return unsupported("the saved guest's CPUID advertises features this host's KVM does not support: " + missing);
}

}  // namespace ckpt::vmm::x86
