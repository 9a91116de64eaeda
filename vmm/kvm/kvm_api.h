// The KVM ioctl ABI, wrapped so that every failure is a Status naming the ioctl (and never an abort), plus the
// /dev/kvm handle with its capability probes. Constants missing from older <linux/kvm.h> are defined here.
#pragma once

// Older uapi headers declare flexible arrays through __DECLARE_FLEX_ARRAY, which in C++ wraps them in a struct with
// an empty member of size 1. That changes sizeof(kvm_cpuid2), kvm_msrs and friends, and with it the ioctl numbers
// (_IOWR encodes the size): the kernel then answers EINVAL. Declare them as the C ABI has them. Include this header
// instead of <linux/kvm.h>.
#include <linux/stddef.h>
#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"  // zero-length arrays are a GNU extension, as in the kernel's own C
#include <linux/kvm.h>
#pragma GCC diagnostic pop
#include <sys/ioctl.h>

static_assert(sizeof(kvm_cpuid2) == 8 && sizeof(kvm_msrs) == 8 && sizeof(kvm_msr_list) == 4,
              "KVM structures must have their C layout");

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

#ifndef KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
#define KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 168
#endif
#ifndef KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE
#define KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE (1 << 0)
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING
#define KVM_CAP_DIRTY_LOG_RING 192
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif
#ifndef KVM_RESET_DIRTY_RINGS
#define KVM_RESET_DIRTY_RINGS _IO(KVMIO, 0xc7)
#endif
#ifndef KVM_EXIT_DIRTY_RING_FULL
#define KVM_EXIT_DIRTY_RING_FULL 31
#endif
#ifndef KVM_DIRTY_LOG_PAGE_OFFSET
#define KVM_DIRTY_LOG_PAGE_OFFSET 64
#endif
#ifndef KVM_CAP_XSAVE2
#define KVM_CAP_XSAVE2 208
#endif
#ifndef KVM_GET_XSAVE2
#define KVM_GET_XSAVE2 _IOR(KVMIO, 0xcf, struct kvm_xsave)
#endif

namespace ckpt::vmm::kvm {

// ioctl(fd, request, arg), retried on EINTR unless `interruptible`. Returns the ioctl's non-negative result.
Result<int> checked_ioctl(int fd, unsigned long request, unsigned long arg, const char* name,
                          bool interruptible = false);

template <typename T>
Result<int> ioctl_ptr(int fd, unsigned long request, T* arg, const char* name) {
  return checked_ioctl(fd, request, reinterpret_cast<unsigned long>(arg), name);
}

// Calls an ioctl by its macro name, so the error says which one failed: KVM_CALL(fd, KVM_GET_REGS, &regs).
#define KVM_CALL(fd, request, argp) ::ckpt::vmm::kvm::ioctl_ptr((fd), (request), (argp), #request)
#define KVM_CALL_VALUE(fd, request, value) \
  ::ckpt::vmm::kvm::checked_ioctl((fd), (request), static_cast<unsigned long>(value), #request)

// /dev/kvm: the API version check, capability probes and the host-wide lists a VM needs.
class KvmSystem {
 public:
  static Result<std::unique_ptr<KvmSystem>> open(const std::string& path = "/dev/kvm");
  int fd() const { return fd_.get(); }
  // KVM_CHECK_EXTENSION on /dev/kvm (0 when absent).
  int check(long capability) const;
  Result<std::vector<uint32_t>> msr_index_list() const;
  // KVM_GET_SUPPORTED_CPUID, as a kvm_cpuid2 buffer.
  Result<std::vector<uint8_t>> supported_cpuid() const;
  Result<int> vcpu_mmap_size() const;

 private:
  UniqueFd fd_;
};

// Whether /dev/kvm exists and opens; `why` gets the reason when not.
bool kvm_available(std::string* why);

}  // namespace ckpt::vmm::kvm
