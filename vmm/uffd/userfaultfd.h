// Opening a userfaultfd, for both of its uses here: the software backend's write tracking (user-mode faults only,
// which needs no privilege) and a lazy restore's missing pages (kernel-mode faults too: KVM reads and writes guest
// memory from the kernel on a vCPU's behalf, and so do read(2) and io_uring into guest buffers).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ckpt::vmm {

enum class FaultScope {
  kUserModeOnly,  // UFFD_USER_MODE_ONLY where the kernel has it (5.11): no privilege needed
  kAll,           // kernel-mode faults too: /dev/userfaultfd if this process may open it, else userfaultfd(2),
                  // which then needs CAP_SYS_PTRACE or sysctl vm.unprivileged_userfaultfd=1
};

// A non-blocking, close-on-exec userfaultfd. Errors say what is missing and how to get it.
Result<UniqueFd> open_userfaultfd(FaultScope scope);

// UFFDIO_API: asks for `features` and returns every feature the kernel offers. An fd accepts one UFFDIO_API only.
Result<uint64_t> uffd_api_handshake(int fd, uint64_t features);

// The features this kernel offers a userfaultfd of `scope` (from a throwaway fd: a real one takes one UFFDIO_API).
Result<uint64_t> uffd_features_offered(FaultScope scope);

// uname's release, for messages that name the kernel.
std::string kernel_release();

}  // namespace ckpt::vmm
