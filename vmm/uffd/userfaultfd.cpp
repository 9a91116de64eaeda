#include "vmm/uffd/userfaultfd.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1  // 5.11: only user-mode faults; needs no privilege
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)  // 6.1: /dev/userfaultfd hands out userfaultfds to whoever may open it
#endif

namespace ckpt::vmm {

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

namespace {

constexpr int kFlags = O_CLOEXEC | O_NONBLOCK;

// /dev/userfaultfd (Linux 6.1) grants kernel-mode faults by the device's file permissions, no capability needed.
int open_through_device() {
  int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) return -1;
  int fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, kFlags);
  const int err = errno;
  ::close(dev);
  errno = err;
  return fd;
}

}  // namespace

// Non-blocking: a blocking uffd makes poll() report POLLERR at once.
Result<UniqueFd> open_userfaultfd(FaultScope scope) {
  int fd = -1;
  if (scope == FaultScope::kUserModeOnly) {
    fd = static_cast<int>(::syscall(SYS_userfaultfd, kFlags | UFFD_USER_MODE_ONLY));
    // Kernels before 5.11 reject the flag; then only a privileged process or the sysctl may open one.
    if (fd < 0 && errno == EINVAL) fd = static_cast<int>(::syscall(SYS_userfaultfd, kFlags));
  } else {
    fd = open_through_device();
    if (fd < 0) fd = static_cast<int>(::syscall(SYS_userfaultfd, kFlags));
  }
  if (fd >= 0) return UniqueFd(fd);
  const int err = errno;
  if (err == ENOSYS) {
    return Status(StatusCode::kUnsupported,
                  "userfaultfd: not available (ENOSYS): the kernel " + kernel_release() +
                      " is built without CONFIG_USERFAULTFD",
                  err);
  }
  if (err == EPERM) {
    return Status(StatusCode::kPermission,
                  scope == FaultScope::kUserModeOnly
                      ? "userfaultfd: not permitted (EPERM): set sysctl vm.unprivileged_userfaultfd=1 or run with "
                        "CAP_SYS_PTRACE"
                      : "userfaultfd for kernel-mode faults: not permitted (EPERM): give the daemon read-write "
                        "access to /dev/userfaultfd, CAP_SYS_PTRACE, or set sysctl vm.unprivileged_userfaultfd=1",
                  err);
  }
  return Status::from_errno(err, "userfaultfd");
}

Result<uint64_t> uffd_api_handshake(int fd, uint64_t features) {
  struct uffdio_api api {};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd, UFFDIO_API, &api) != 0) return Status::from_errno(errno, "ioctl UFFDIO_API");
  return static_cast<uint64_t>(api.features);
}

Result<uint64_t> uffd_features_offered(FaultScope scope) {
  CKPT_ASSIGN_OR_RETURN(UniqueFd probe, open_userfaultfd(scope));
  return uffd_api_handshake(probe.get(), 0);
}

}  // namespace ckpt::vmm
