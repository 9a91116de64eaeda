#include "vmm/kvm/long_mode.h"

#include "vmm/guest/guest_abi.h"
#include "vmm/guest/guest_image.h"
#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Mp = 1ull << 1, kCr0Et = 1ull << 4, kCr0Ne = 1ull << 5,
                   kCr0Wp = 1ull << 16, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5, kCr4Osfxsr = 1ull << 9, kCr4Osxmmexcpt = 1ull << 10;
constexpr uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.s = 1;     // code/data, not system
  s.l = code;  // 64-bit code segment
  s.db = code ? 0 : 1;
  s.g = 1;
  return s;
}

}  // namespace

Status enter_long_mode(int fd, unsigned index) {
  kvm_sregs sregs{};
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_GET_SREGS, &sregs).status());
  sregs.cs = flat_segment(guest::kCodeSelector, 0xb, true);  // execute/read, accessed
  kvm_segment data = flat_segment(guest::kDataSelector, 0x3, false);  // read/write, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr.base = 0;
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;  // busy 64-bit TSS: entry checks want a valid TR even though the guest never uses it
  sregs.tr.present = 1;
  sregs.gdt.base = guest::kGdtGpa;
  sregs.gdt.limit = 3 * 8 - 1;
  sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
  sregs.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
  sregs.cr3 = guest::kPageTableGpa;
  sregs.efer = kEferLme | kEferLma;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_SREGS, &sregs).status());

  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is always set; interrupts off
  regs.rip = guest::guest_entry_rip();
  regs.rsp = guest::kStackTopGpa - uint64_t{index} * guest::kStackBytes;
  regs.rdi = guest::kControlGpa + 64ull * index;
  regs.rsi = guest::kStatusGpa + 64ull * index;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd, KVM_SET_REGS, &regs).status());

  // With the in-kernel LAPIC every vCPU but the first starts waiting for INIT/SIPI; ours start running at once.
  kvm_mp_state runnable{KVM_MP_STATE_RUNNABLE};
  return KVM_CALL(fd, KVM_SET_MP_STATE, &runnable).status();
}

}  // namespace ckpt::vmm::kvm
