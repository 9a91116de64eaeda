#include "vmm/kvm/linux_entry.h"

#include <cstring>

#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Et = 1ull << 4, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;
constexpr uint16_t kBootCs = 0x10, kBootDs = 0x18;  // __BOOT_CS and __BOOT_DS of the boot protocol

// A kvm_segment from an 8-byte GDT descriptor, so the hidden part of the segment register matches the GDT.
kvm_segment segment_from_descriptor(uint64_t d, uint16_t selector) {
  kvm_segment s{};
  s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
  s.g = (d >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (d >> 40) & 0xf;
  s.s = (d >> 44) & 1;
  s.dpl = (d >> 45) & 3;
  s.present = (d >> 47) & 1;
  s.avl = (d >> 52) & 1;
  s.l = (d >> 53) & 1;
  s.db = (d >> 54) & 1;
  s.unusable = !s.present;
  return s;
}

constexpr size_t kLvtLint0 = 0x350, kLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeMask = 0x700, kExtInt = 0x700, kNmi = 0x400;

void set_delivery_mode(kvm_lapic_state& lapic, size_t reg, uint32_t mode) {
  uint32_t value;
  std::memcpy(&value, lapic.regs + reg, sizeof value);
  value = (value & ~kDeliveryModeMask) | mode;
  std::memcpy(lapic.regs + reg, &value, sizeof value);
}

}  // namespace

Status enter_linux(int fd, const x86::LinuxEntry& entry) {
  kvm_sregs sregs{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_SREGS, &sregs).status());
  sregs.cs = segment_from_descriptor(entry.code_descriptor, kBootCs);
  kvm_segment data = segment_from_descriptor(entry.data_descriptor, kBootDs);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.gdt.base = entry.gdt_base;
  sregs.gdt.limit = entry.gdt_limit;
  sregs.idt.base = entry.idt_base;
  sregs.idt.limit = entry.idt_limit;
  sregs.cr3 = entry.cr3;
  sregs.cr4 |= kCr4Pae;
  sregs.cr0 |= kCr0Pe | kCr0Et | kCr0Pg;
  sregs.efer |= kEferLme | kEferLma;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_SREGS, &sregs).status());

  kvm_regs regs{};
  regs.rflags = 0x2;  // interrupts off, as the protocol requires
  regs.rip = entry.rip;
  regs.rsi = entry.rsi;
  regs.rsp = regs.rbp = entry.rsp;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_REGS, &regs).status());

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word (what FNINIT loads)
  fpu.mxcsr = 0x1f80;  // SSE exceptions masked
  return KVM_CALL(fd, KVM_SET_FPU, &fpu).status();
}

Status wire_local_interrupts(int fd) {
  kvm_lapic_state lapic{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_LAPIC, &lapic).status());
  set_delivery_mode(lapic, kLvtLint0, kExtInt);
  set_delivery_mode(lapic, kLvtLint1, kNmi);
  return KVM_CALL(fd, KVM_SET_LAPIC, &lapic).status();
}

}  // namespace ckpt::vmm::kvm
