#include "vmm/kvm/vcpu_cpuid.h"

#include <cstring>
#include <string>

#include "vmm/x86/cpuid.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint32_t kMaxCpuidEntries = 256;  // KVM_MAX_CPUID_ENTRIES is 256 on every kernel that has the ring

std::string blob_name(unsigned index) { return "kvm/vcpu" + std::to_string(index) + "/cpuid"; }

}  // namespace

Result<CpuidEntries> host_supported_cpuid(const KvmSystem& kvm) {
  CKPT_ASSIGN_OR_RETURN(std::vector<uint8_t> buffer, kvm.supported_cpuid());
  auto entries = x86::cpuid_from_kvm_buffer(buffer);
  if (!entries.is_ok()) return entries.status().with_context("KVM_GET_SUPPORTED_CPUID");
  return entries;
}

Result<CpuidEntries> guest_cpuid(const KvmSystem& kvm, const CpuidEntries& supported, unsigned index,
                                 unsigned count) {
  x86::CpuidOptions options;
  options.index = index;
  options.count = count;
  options.tsc_deadline = kvm.check(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  return x86::vcpu_cpuid(supported, options);
}

Status set_vcpu_cpuid(int fd, const CpuidEntries& entries) {
  std::vector<uint8_t> buffer = x86::cpuid_to_kvm_buffer(entries);  // KVM_SET_CPUID2 takes a mutable pointer
  return KVM_CALL(fd, KVM_SET_CPUID2, reinterpret_cast<kvm_cpuid2*>(buffer.data())).status();
}

Status save_vcpu_cpuid(int fd, unsigned index, std::vector<StateBlob>& out) {
  std::vector<uint8_t> buffer(sizeof(kvm_cpuid2) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
  cpuid->nent = kMaxCpuidEntries;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_CPUID2, cpuid).status());
  buffer.resize(sizeof(kvm_cpuid2) + uint64_t{cpuid->nent} * sizeof(kvm_cpuid_entry2));
  out.push_back(StateBlob{blob_name(index), std::move(buffer)});
  return Status::ok();
}

Status load_vcpu_cpuid(int fd, unsigned index, const std::vector<StateBlob>& state, const CpuidEntries& host) {
  std::string name = blob_name(index);
  for (const StateBlob& blob : state) {
    if (blob.name != name) continue;
    if (blob.data.size() > sizeof(kvm_cpuid2) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2)) {
      return invalid_argument(name + " holds more than " + std::to_string(kMaxCpuidEntries) + " entries");
    }
    auto saved = x86::cpuid_from_kvm_buffer(blob.data);
    if (!saved.is_ok()) return saved.status().with_context(name);
    Status compatible = x86::check_cpuid_compatible(*saved, host);
    if (!compatible.is_ok()) {
      return compatible.with_context("vCPU " + std::to_string(index) +
                                     ": this host cannot run the saved guest (its CPU features were fixed at boot)");
    }
    return set_vcpu_cpuid(fd, *saved);
  }
  return Status::ok();
}

}  // namespace ckpt::vmm::kvm
