#include "vmm/kvm/tsc_state.h"

#include <cstring>
#include <string>

#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint32_t kTscBlobVersion = 1;

struct TscPairing {
  uint32_t version;
  uint32_t tsc_khz;
  uint64_t kvmclock_ns;
  uint64_t guest_tsc;
};
static_assert(sizeof(TscPairing) == 24);

std::string blob_name(size_t index) { return "kvm/vcpu" + std::to_string(index) + "/tsc"; }

// kvmclock and the host TSC at one instant; false when the host TSC is not stable enough for KVM to say.
Result<bool> clock_and_host_tsc(int vm_fd, kvm_clock_data* clock) {
  *clock = {};
  CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_GET_CLOCK, clock).status());
  return (clock->flags & KVM_CLOCK_HOST_TSC) != 0;
}

bool has_tsc_offset_attribute(int vcpu_fd) {
  kvm_device_attr attr{};
  attr.group = KVM_VCPU_TSC_CTRL;
  attr.attr = KVM_VCPU_TSC_OFFSET;
  return ::ioctl(vcpu_fd, KVM_HAS_DEVICE_ATTR, &attr) == 0;
}

Status tsc_offset(int vcpu_fd, unsigned long request, int64_t* offset) {
  kvm_device_attr attr{};
  attr.group = KVM_VCPU_TSC_CTRL;
  attr.attr = KVM_VCPU_TSC_OFFSET;
  attr.addr = reinterpret_cast<uint64_t>(offset);
  const char* name = request == KVM_GET_DEVICE_ATTR ? "ioctl KVM_GET_DEVICE_ATTR (KVM_VCPU_TSC_OFFSET)"
                                                     : "ioctl KVM_SET_DEVICE_ATTR (KVM_VCPU_TSC_OFFSET)";
  if (::ioctl(vcpu_fd, request, &attr) != 0) return Status::from_errno(errno, name);
  return Status::ok();
}

}  // namespace

Status save_tsc_pairing(int vm_fd, const std::vector<int>& vcpu_fds, std::vector<StateBlob>& out) {
  if (vcpu_fds.empty() || !has_tsc_offset_attribute(vcpu_fds.front())) return Status::ok();
  kvm_clock_data clock{};
  CKPT_ASSIGN_OR_RETURN(bool paired, clock_and_host_tsc(vm_fd, &clock));
  if (!paired) return Status::ok();
  for (size_t i = 0; i < vcpu_fds.size(); ++i) {
    int64_t offset = 0;
    CKPT_RETURN_IF_ERROR(tsc_offset(vcpu_fds[i], KVM_GET_DEVICE_ATTR, &offset));
    CKPT_ASSIGN_OR_RETURN(int khz, KVM_CALL_VALUE(vcpu_fds[i], KVM_GET_TSC_KHZ, 0));
    TscPairing p{kTscBlobVersion, static_cast<uint32_t>(khz), clock.clock, clock.host_tsc + static_cast<uint64_t>(offset)};
    const auto* bytes = reinterpret_cast<const uint8_t*>(&p);
    out.push_back(StateBlob{blob_name(i), std::vector<uint8_t>(bytes, bytes + sizeof p)});
  }
  return Status::ok();
}

Status load_tsc_pairing(int vm_fd, const std::vector<int>& vcpu_fds, const std::vector<StateBlob>& state) {
  std::vector<TscPairing> saved(vcpu_fds.size());
  for (size_t i = 0; i < vcpu_fds.size(); ++i) {
    const StateBlob* blob = find_state_blob(state, blob_name(i));
    if (blob == nullptr) return Status::ok();  // an older epoch, or a host without the pairing: IA32_TSC stands
    if (blob->data.size() != sizeof(TscPairing)) {
      return invalid_argument(blob->name + " is " + std::to_string(blob->data.size()) + " bytes, expected " +
                              std::to_string(sizeof(TscPairing)));
    }
    std::memcpy(&saved[i], blob->data.data(), sizeof(TscPairing));
    if (saved[i].version != kTscBlobVersion) {
      return unsupported(blob->name + " is version " + std::to_string(saved[i].version) + "; this ckptd reads " +
                         std::to_string(kTscBlobVersion));
    }
  }
  if (vcpu_fds.empty() || !has_tsc_offset_attribute(vcpu_fds.front())) return Status::ok();
  kvm_clock_data clock{};
  CKPT_ASSIGN_OR_RETURN(bool paired, clock_and_host_tsc(vm_fd, &clock));
  if (!paired) return Status::ok();
  for (size_t i = 0; i < vcpu_fds.size(); ++i) {
    CKPT_ASSIGN_OR_RETURN(int khz, KVM_CALL_VALUE(vcpu_fds[i], KVM_GET_TSC_KHZ, 0));
    if (static_cast<uint32_t>(khz) != saved[i].tsc_khz) continue;  // another TSC rate: IA32_TSC stands
    // kvmclock moved from the saved reading to clock.clock (SET_CLOCK put it at the epoch's value a moment ago):
    // the TSC must have moved the same time at the vCPU's rate. 128-bit: ns * kHz overflows 64 bits past ~5 h.
    __extension__ using Wide = __int128;
    Wide elapsed_ns = static_cast<Wide>(clock.clock) - static_cast<Wide>(saved[i].kvmclock_ns);
    Wide guest_tsc = static_cast<Wide>(saved[i].guest_tsc) + elapsed_ns * khz / 1000000;
    int64_t offset = static_cast<int64_t>(guest_tsc - static_cast<Wide>(clock.host_tsc));
    CKPT_RETURN_IF_ERROR(tsc_offset(vcpu_fds[i], KVM_SET_DEVICE_ATTR, &offset));
  }
  return Status::ok();
}

}  // namespace ckpt::vmm::kvm
