// Guest memory that starts out missing and is filled on demand, for a lazy restore: every slot is registered with a
// userfaultfd in missing mode, so the first access to a page not yet installed, by the guest (a vCPU, also through
// KVM) or by the VMM, waits until install() puts the page's content in place. Pages are installed with UFFDIO_COPY,
// which places a page only where none is (so a page the guest has since written is never overwritten) and wakes
// whoever waits on it. With write-protect (the software backend's async tracking on the same fd) a page is
// installed write-protected: filled pages are not dirty, the guest's later writes to them are.
//
// It keeps the address and size of guest memory, not the memory: once the memory is unmapped (the machine gone),
// installs fail (ENOENT) and no fault arrives, so an owner may outlive the machine without harm.
//
// Thread safety: every method may be called from any thread; one thread should read faults.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "common/status.h"
#include "common/unique_fd.h"
#include "vmm/guest_memory.h"

namespace ckpt::vmm {

class MissingPages {
 public:
  // A userfaultfd of its own over every slot of `memory`, which must be all holes (fresh). Kernel-mode faults
  // included (KVM's), so it needs the privilege open_userfaultfd(FaultScope::kAll) names.
  static Result<std::unique_ptr<MissingPages>> create(GuestMemory& memory);
  // Over a duplicate of `uffd`, which has every slot of `memory` registered in missing mode already (the software
  // backend's tracker's). Its own descriptor: the faults waiting on it stay answerable whoever closes theirs first.
  static Result<std::unique_ptr<MissingPages>> over(int uffd, GuestMemory& memory, bool write_protect);

  // Readable (poll) while a fault waits.
  int fd() const { return fd_.get(); }
  // The gfn of the next waiting fault, or nothing when none waits. Never blocks.
  Result<std::optional<uint64_t>> next_fault();
  // Installs `count` pages at `gfn` from `pages`, leaving any page already present as it is; returns how many it
  // installed.
  Result<uint32_t> install(uint64_t gfn, uint32_t count, const uint8_t* pages);
  // The same with zero pages.
  Result<uint32_t> install_zero(uint64_t gfn, uint32_t count);
  // Wakes accesses waiting on [gfn, gfn + count) (after they were resolved some other way: a page already present).
  Status wake(uint64_t gfn, uint32_t count);

 private:
  MissingPages(UniqueFd fd, GuestMemory& memory, bool write_protect)
      : fd_(std::move(fd)), base_(reinterpret_cast<uint64_t>(memory.host())), pages_(memory.pages()),
        wp_(write_protect) {}

  UniqueFd fd_;
  uint64_t base_;   // guest memory's host address
  uint64_t pages_;  // and size
  bool wp_;
};

}  // namespace ckpt::vmm
