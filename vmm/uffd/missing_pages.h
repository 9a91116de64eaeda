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
#include "vmm/uffd/entered_pages.h"

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
  // installed. Marks them in entered() first.
  Result<uint32_t> install(uint64_t gfn, uint32_t count, const uint8_t* pages);
  // The same with zero pages.
  Result<uint32_t> install_zero(uint64_t gfn, uint32_t count);
  // Wakes accesses waiting on [gfn, gfn + count) (after they were resolved some other way: a page already present).
  Status wake(uint64_t gfn, uint32_t count);
  // Every page an install was asked for, marked before the install began.
  const EnteredPages& entered() const { return entered_; }
  // Whether release() may end missing mode: only over create()'s own registration (over()'s belongs to the tracker,
  // whose write-protect would go with it).
  bool can_release() const { return owns_registration_; }
  // Ends missing mode over guest memory once every page to restore is in: a first access to a hole then reads zeros
  // without a round trip to the fault reader, as in a machine never restored. Accesses waiting now are woken and
  // retry (also those that queued while it ran); a fault already read but not answered can no longer be (install
  // fails): its access retries on its own.
  Status release();

 private:
  MissingPages(UniqueFd fd, GuestMemory& memory, bool write_protect, bool owns_registration)
      : fd_(std::move(fd)), base_(reinterpret_cast<uint64_t>(memory.host())), pages_(memory.pages()),
        wp_(write_protect), owns_registration_(owns_registration), entered_(pages_) {}

  UniqueFd fd_;
  uint64_t base_;   // guest memory's host address
  uint64_t pages_;  // and size
  bool wp_;
  bool owns_registration_;
  EnteredPages entered_;
};

}  // namespace ckpt::vmm
