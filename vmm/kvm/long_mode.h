// Puts a fresh vCPU straight into 64-bit long mode at the built-in guest's entry point, with the page tables and
// GDT that guest::build_guest_image wrote (no real-mode boot code needed).
#pragma once

#include "common/status.h"

namespace ckpt::vmm::kvm {

Status enter_long_mode(int vcpu_fd, unsigned vcpu_index);

}  // namespace ckpt::vmm::kvm
