#include "vmm/uffd/missing_pages.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "vmm/uffd/userfaultfd.h"

namespace ckpt::vmm {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kZeroChunkPages = 64;
alignas(kPage) const uint8_t kZeroChunk[kZeroChunkPages * kPage] = {};

}  // namespace

Result<std::unique_ptr<MissingPages>> MissingPages::create(GuestMemory& memory) {
  CKPT_ASSIGN_OR_RETURN(UniqueFd fd, open_userfaultfd(FaultScope::kAll));
  CKPT_ASSIGN_OR_RETURN(uint64_t offered, uffd_features_offered(FaultScope::kAll));
  if (!(offered & UFFD_FEATURE_MISSING_SHMEM)) {
    return unsupported("userfaultfd: the kernel " + kernel_release() +
                       " does not offer UFFD_FEATURE_MISSING_SHMEM (missing pages of memfd memory)");
  }
  CKPT_RETURN_IF_ERROR(uffd_api_handshake(fd.get(), UFFD_FEATURE_MISSING_SHMEM).status());
  for (const MemorySlot& slot : memory.slots()) {
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uint64_t>(slot.host);
    reg.range.len = slot.bytes;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    const std::string where = " over slot " + std::to_string(slot.id) + " (" + std::to_string(slot.bytes) + " bytes)";
    if (::ioctl(fd.get(), UFFDIO_REGISTER, &reg) != 0) {
      return Status::from_errno(errno, "ioctl UFFDIO_REGISTER (missing mode)" + where);
    }
    if ((reg.ioctls & (uint64_t{1} << _UFFDIO_COPY)) == 0) {
      return unsupported("ioctl UFFDIO_REGISTER" + where + ": the kernel offers no UFFDIO_COPY for memfd memory");
    }
  }
  return std::unique_ptr<MissingPages>(new MissingPages(std::move(fd), memory, false, /*owns_registration=*/true));
}

Result<std::unique_ptr<MissingPages>> MissingPages::over(int uffd, GuestMemory& memory, bool write_protect) {
  UniqueFd fd(::fcntl(uffd, F_DUPFD_CLOEXEC, 0));
  if (!fd.valid()) return Status::from_errno(errno, "duplicate the userfaultfd");
  return std::unique_ptr<MissingPages>(
      new MissingPages(std::move(fd), memory, write_protect, /*owns_registration=*/false));
}

Result<std::optional<uint64_t>> MissingPages::next_fault() {
  for (;;) {
    uffd_msg msg{};
    ssize_t n = ::read(fd_.get(), &msg, sizeof msg);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return std::optional<uint64_t>();
    if (n < 0) return Status::from_errno(errno, "read userfaultfd");
    if (n != sizeof msg) return Status::from_errno(EIO, "read userfaultfd: a short message");
    // Only page faults are asked for (no fork, remap or remove events).
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    const uint64_t address = msg.arg.pagefault.address;
    if (address < base_ || address >= base_ + pages_ * kPage) {
      return Status::from_errno(EFAULT, "userfaultfd: a fault at " + std::to_string(address) +
                                            ", outside guest memory");
    }
    return std::optional<uint64_t>((address - base_) / kPage);
  }
}

Result<uint32_t> MissingPages::install(uint64_t gfn, uint32_t count, const uint8_t* pages) {
  if (gfn + count > pages_ || gfn + count < gfn) {
    return invalid_argument("install pages " + std::to_string(gfn) + "+" + std::to_string(count) +
                            " beyond guest memory of " + std::to_string(pages_) + " pages");
  }
  // Before the copy: once a page is present the guest may write it, and a reader of entered() must know it may.
  entered_.mark(gfn, count);
  uint32_t done = 0, installed = 0;
  while (done < count) {
    uffdio_copy copy{};
    copy.dst = base_ + (gfn + done) * kPage;
    copy.src = reinterpret_cast<uint64_t>(pages + uint64_t{done} * kPage);
    copy.len = uint64_t{count - done} * kPage;
    copy.mode = wp_ ? UFFDIO_COPY_MODE_WP : 0;
    if (::ioctl(fd_.get(), UFFDIO_COPY, &copy) == 0) {
      installed += count - done;
      break;
    }
    const int err = errno;
    if (copy.copy > 0) {  // stopped part way (at a page already present, or the address space changing): go on
      const uint32_t copied = static_cast<uint32_t>(copy.copy / kPage);
      installed += copied;
      done += copied;
    } else if (copy.copy == -EEXIST || err == EEXIST) {
      ++done;  // present already: someone installed it, or the guest has written it since; keep it
    } else if (copy.copy == -EAGAIN || err == EAGAIN) {
      continue;
    } else {
      return Status::from_errno(err, "ioctl UFFDIO_COPY at gfn " + std::to_string(gfn + done) + " (" +
                                         std::to_string(count - done) + " pages)");
    }
  }
  return installed;
}

Result<uint32_t> MissingPages::install_zero(uint64_t gfn, uint32_t count) {
  uint32_t installed = 0;
  for (uint32_t done = 0; done < count;) {
    const uint32_t n = std::min(count - done, kZeroChunkPages);
    CKPT_ASSIGN_OR_RETURN(uint32_t got, install(gfn + done, n, kZeroChunk));
    installed += got;
    done += n;
  }
  return installed;
}

Status MissingPages::wake(uint64_t gfn, uint32_t count) {
  uffdio_range range{};
  range.start = base_ + gfn * kPage;
  range.len = uint64_t{count} * kPage;
  if (::ioctl(fd_.get(), UFFDIO_WAKE, &range) != 0) {
    return Status::from_errno(errno, "ioctl UFFDIO_WAKE at gfn " + std::to_string(gfn));
  }
  return Status::ok();
}

Status MissingPages::release() {
  if (!owns_registration_) return invalid_argument("missing mode over a shared userfaultfd cannot be ended");
  uffdio_range range{};
  range.start = base_;
  range.len = pages_ * kPage;
  if (::ioctl(fd_.get(), UFFDIO_UNREGISTER, &range) != 0) return Status::from_errno(errno, "ioctl UFFDIO_UNREGISTER");
  // UNREGISTER wakes the accesses waiting when it starts, yet on 6.18 an access could sleep on past it until a signal
  // came (LazyRestoreTest.TheGuestSeesTheEpochWhileTheFillerRuns hung within 6 repeats of one loop). The likely
  // path: a fault taken under the VMA's own lock queues itself after that wake, before UNREGISTER write-locks the VMA.
  // Once UNREGISTER has returned, any such access is queued on this fd and no new one can be: wake them all.
  if (::ioctl(fd_.get(), UFFDIO_WAKE, &range) != 0) {
    return Status::from_errno(errno, "ioctl UFFDIO_WAKE after UFFDIO_UNREGISTER");
  }
  return Status::ok();
}

}  // namespace ckpt::vmm
