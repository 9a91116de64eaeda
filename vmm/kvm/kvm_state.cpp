#include "vmm/kvm/kvm_state.h"

#include <cstring>

namespace ckpt::vmm::kvm {
namespace {

std::string vcpu_name(unsigned index, const char* part) {
  return "kvm/vcpu" + std::to_string(index) + "/" + part;
}

template <typename T>
void put(std::vector<StateBlob>& out, std::string name, const T& value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.push_back(StateBlob{std::move(name), std::vector<uint8_t>(bytes, bytes + sizeof(T))});
}

// Copies blob `name` into `value`; a missing blob is fine when `optional`, a wrongly sized one never is.
template <typename T>
Result<bool> get(const std::vector<StateBlob>& state, const std::string& name, T* value, bool optional = false) {
  const StateBlob* b = find_state_blob(state, name);
  if (b == nullptr) {
    if (optional) return false;
    return invalid_argument("machine state lacks " + name);
  }
  if (b->data.size() != sizeof(T)) {
    return invalid_argument(name + " is " + std::to_string(b->data.size()) + " bytes, expected " +
                            std::to_string(sizeof(T)));
  }
  std::memcpy(value, b->data.data(), sizeof(T));
  return true;
}

// Reads every MSR KVM lists that this vCPU can read; KVM_GET_MSRS stops at the first unreadable one, so skip it.
Status save_msrs(const KvmSystem& kvm, int fd, unsigned index, std::vector<StateBlob>& out) {
  CKPT_ASSIGN_OR_RETURN(std::vector<uint32_t> indices, kvm.msr_index_list());
  std::vector<kvm_msr_entry> saved;
  size_t next = 0;
  while (next < indices.size()) {
    size_t batch = indices.size() - next;
    std::vector<uint8_t> buffer(sizeof(kvm_msrs) + batch * sizeof(kvm_msr_entry));
    auto* msrs = reinterpret_cast<kvm_msrs*>(buffer.data());
    msrs->nmsrs = static_cast<uint32_t>(batch);
    for (size_t i = 0; i < batch; ++i) msrs->entries[i].index = indices[next + i];
    CKPT_ASSIGN_OR_RETURN(int read, KVM_CALL(fd, KVM_GET_MSRS, msrs));
    saved.insert(saved.end(), msrs->entries, msrs->entries + read);
    next += static_cast<size_t>(read) + 1;  // skip the one that failed
  }
  std::vector<uint8_t> blob(sizeof(kvm_msrs) + saved.size() * sizeof(kvm_msr_entry));
  auto* msrs = reinterpret_cast<kvm_msrs*>(blob.data());
  msrs->nmsrs = static_cast<uint32_t>(saved.size());
  std::memcpy(msrs->entries, saved.data(), saved.size() * sizeof(kvm_msr_entry));
  out.push_back(StateBlob{vcpu_name(index, "msrs"), std::move(blob)});
  return Status::ok();
}

Status load_msrs(int fd, unsigned index, const std::vector<StateBlob>& state) {
  std::string name = vcpu_name(index, "msrs");
  const StateBlob* b = find_state_blob(state, name);
  if (b == nullptr) return invalid_argument("machine state lacks " + name);
  if (b->data.size() < sizeof(kvm_msrs)) return invalid_argument(name + " is truncated");
  std::vector<uint8_t> buffer = b->data;  // KVM_SET_MSRS takes a mutable pointer
  auto* msrs = reinterpret_cast<kvm_msrs*>(buffer.data());
  if (buffer.size() != sizeof(kvm_msrs) + uint64_t{msrs->nmsrs} * sizeof(kvm_msr_entry)) {
    return invalid_argument(name + " size does not match its entry count");
  }
  CKPT_ASSIGN_OR_RETURN(int written, KVM_CALL(fd, KVM_SET_MSRS, msrs));
  if (static_cast<uint32_t>(written) != msrs->nmsrs) {
    return Status(StatusCode::kIoError, "ioctl KVM_SET_MSRS set " + std::to_string(written) + " of " +
                                            std::to_string(msrs->nmsrs) + " MSRs; MSR " +
                                            std::to_string(msrs->entries[written].index) + " was refused");
  }
  return Status::ok();
}

Status save_fpu_state(const KvmSystem& kvm, int fd, unsigned index, std::vector<StateBlob>& out) {
  int xsave2 = kvm.check(KVM_CAP_XSAVE2);
  if (xsave2 > 0) {
    std::vector<uint8_t> blob(static_cast<size_t>(std::max<int>(xsave2, sizeof(kvm_xsave))));
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_XSAVE2, reinterpret_cast<kvm_xsave*>(blob.data())).status());
    out.push_back(StateBlob{vcpu_name(index, "xsave"), std::move(blob)});
  } else if (kvm.check(KVM_CAP_XSAVE) > 0) {
    kvm_xsave xsave{};
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_XSAVE, &xsave).status());
    put(out, vcpu_name(index, "xsave"), xsave);
  } else {
    kvm_fpu fpu{};
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_FPU, &fpu).status());
    put(out, vcpu_name(index, "fpu"), fpu);
  }
  if (kvm.check(KVM_CAP_XCRS) > 0) {
    kvm_xcrs xcrs{};
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_XCRS, &xcrs).status());
    put(out, vcpu_name(index, "xcrs"), xcrs);
  }
  return Status::ok();
}

Status load_fpu_state(int fd, unsigned index, const std::vector<StateBlob>& state) {
  if (const StateBlob* b = find_state_blob(state, vcpu_name(index, "xsave"))) {
    if (b->data.size() < sizeof(kvm_xsave)) return invalid_argument(b->name + " is truncated");
    std::vector<uint8_t> buffer = b->data;
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_XSAVE, reinterpret_cast<kvm_xsave*>(buffer.data())).status());
  } else {
    kvm_fpu fpu{};
    CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "fpu"), &fpu).status());
    CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_FPU, &fpu).status());
  }
  kvm_xcrs xcrs{};
  CKPT_ASSIGN_OR_RETURN(bool has_xcrs, get(state, vcpu_name(index, "xcrs"), &xcrs, /*optional=*/true));
  if (has_xcrs) CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_XCRS, &xcrs).status());
  return Status::ok();
}

}  // namespace

Status save_vcpu_state(const KvmSystem& kvm, int fd, unsigned index, std::vector<StateBlob>& out) {
  kvm_mp_state mp{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_MP_STATE, &mp).status());
  put(out, vcpu_name(index, "mp_state"), mp);
  kvm_regs regs{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_REGS, &regs).status());
  put(out, vcpu_name(index, "regs"), regs);
  kvm_sregs sregs{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_SREGS, &sregs).status());
  put(out, vcpu_name(index, "sregs"), sregs);
  CKPT_RETURN_IF_ERROR(save_fpu_state(kvm, fd, index, out));
  kvm_debugregs debug{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_DEBUGREGS, &debug).status());
  put(out, vcpu_name(index, "debugregs"), debug);
  kvm_lapic_state lapic{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_LAPIC, &lapic).status());
  put(out, vcpu_name(index, "lapic"), lapic);
  CKPT_RETURN_IF_ERROR(save_msrs(kvm, fd, index, out));
  kvm_vcpu_events events{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_VCPU_EVENTS, &events).status());
  put(out, vcpu_name(index, "events"), events);
  return Status::ok();
}

Status load_vcpu_state(int fd, unsigned index, const std::vector<StateBlob>& state) {
  kvm_mp_state mp{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "mp_state"), &mp).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_MP_STATE, &mp).status());
  kvm_regs regs{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "regs"), &regs).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_REGS, &regs).status());
  kvm_sregs sregs{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "sregs"), &sregs).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_SREGS, &sregs).status());
  CKPT_RETURN_IF_ERROR(load_fpu_state(fd, index, state));
  kvm_debugregs debug{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "debugregs"), &debug).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_DEBUGREGS, &debug).status());
  kvm_lapic_state lapic{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "lapic"), &lapic).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_LAPIC, &lapic).status());
  CKPT_RETURN_IF_ERROR(load_msrs(fd, index, state));
  kvm_vcpu_events events{};
  CKPT_RETURN_IF_ERROR(get(state, vcpu_name(index, "events"), &events).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_VCPU_EVENTS, &events).status());
  return Status::ok();
}

Status save_vm_state(int vm_fd, std::vector<StateBlob>& out) {
  for (uint32_t chip = 0; chip < 3; ++chip) {  // PIC master, PIC slave, IOAPIC
    kvm_irqchip irqchip{};
    irqchip.chip_id = chip;
    CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_GET_IRQCHIP, &irqchip).status());
    put(out, "kvm/vm/irqchip" + std::to_string(chip), irqchip);
  }
  kvm_pit_state2 pit{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_GET_PIT2, &pit).status());
  put(out, "kvm/vm/pit2", pit);
  kvm_clock_data clock{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_GET_CLOCK, &clock).status());
  put(out, "kvm/vm/clock", clock);
  return Status::ok();
}

Status load_vm_state(int vm_fd, const std::vector<StateBlob>& state) {
  for (uint32_t chip = 0; chip < 3; ++chip) {
    kvm_irqchip irqchip{};
    CKPT_RETURN_IF_ERROR(get(state, "kvm/vm/irqchip" + std::to_string(chip), &irqchip).status());
    CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_SET_IRQCHIP, &irqchip).status());
  }
  kvm_pit_state2 pit{};
  CKPT_RETURN_IF_ERROR(get(state, "kvm/vm/pit2", &pit).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_SET_PIT2, &pit).status());
  kvm_clock_data clock{};
  CKPT_RETURN_IF_ERROR(get(state, "kvm/vm/clock", &clock).status());
  clock.flags = 0;  // only the clock value is restored; the saved flags describe the old host's clock
  CKPT_RETURN_IF_ERROR(KVM_CALL(vm_fd, KVM_SET_CLOCK, &clock).status());
  return Status::ok();
}

std::vector<std::pair<uint64_t, uint64_t>> memory_written_by_load(const std::vector<StateBlob>& state) {
  constexpr uint32_t kWallClockNew = 0x4b564d00, kWallClockOld = 0x11;  // Documentation/virt/kvm/x86/msr.rst
  constexpr uint64_t kWallClockBytes = 12;                              // struct pvclock_wall_clock
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  const StateBlob* b = find_state_blob(state, vcpu_name(0, "msrs"));  // the MSR is VM-wide: every vCPU has it
  if (b == nullptr || b->data.size() < sizeof(kvm_msrs)) return ranges;
  kvm_msrs header{};
  std::memcpy(&header, b->data.data(), sizeof header);
  if (b->data.size() != sizeof(kvm_msrs) + uint64_t{header.nmsrs} * sizeof(kvm_msr_entry)) return ranges;
  for (uint32_t i = 0; i < header.nmsrs; ++i) {
    kvm_msr_entry e{};
    std::memcpy(&e, b->data.data() + sizeof(kvm_msrs) + i * sizeof(kvm_msr_entry), sizeof e);
    if ((e.index == kWallClockNew || e.index == kWallClockOld) && e.data != 0) ranges.emplace_back(e.data, kWallClockBytes);
  }
  return ranges;
}

}  // namespace ckpt::vmm::kvm
