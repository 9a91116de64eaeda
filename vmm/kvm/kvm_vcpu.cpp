#include "vmm/kvm/kvm_vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <mutex>

#include "common/log.h"
#include "common/thread_name.h"

namespace ckpt::vmm::kvm {
namespace {

int kick_signal() { return SIGRTMIN; }

void on_kick(int) {}  // only interrupts KVM_RUN

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

void install_kick_signal() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_kick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return -EINTR
    sigaction(kick_signal(), &sa, nullptr);
  });
}

KvmVcpu::KvmVcpu(unsigned index, UniqueFd fd, kvm_run* run, size_t run_size, DirtyTracker& tracker,
                 VcpuControl& control, VcpuExitHandler& exits)
    : index_(index),
      fd_(std::move(fd)),
      run_(run),
      run_size_(run_size),
      tracker_(tracker),
      control_(control),
      exits_(exits) {}

KvmVcpu::~KvmVcpu() {
  join();
  if (run_) ::munmap(run_, run_size_);
}

void KvmVcpu::start_thread() {
  thread_ = std::thread([this] { thread_main(); });
  handle_ = thread_.native_handle();
}

void KvmVcpu::join() {
  if (thread_.joinable()) thread_.join();
}

void KvmVcpu::kick() {
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (thread_.joinable()) pthread_kill(handle_, kick_signal());
}

void KvmVcpu::fail(Status s) {
  CKPT_LOG(kError) << "vCPU " << index_ << ": " << s.to_string();
  if (control_.error.is_ok()) control_.error = s.with_context("vCPU " + std::to_string(index_));
}

void KvmVcpu::thread_main() {
  name_this_thread("vcpu" + std::to_string(index_));
  sigset_t kick_set;
  sigemptyset(&kick_set);
  sigaddset(&kick_set, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &kick_set, nullptr);  // whatever the creator blocked, kicks must get through
  std::unique_lock lock(control_.mutex);
  bool parked = false;
  bool broken = false;  // after a failure the vCPU stays parked until the machine is destroyed
  for (;;) {
    while ((!control_.run || broken || control_.guest_stopped) && !control_.stop) {
      if (!parked) {
        parked = true;
        ++control_.parked;
        control_.cv.notify_all();
      }
      control_.cv.wait(lock);
    }
    if (control_.stop) break;
    if (parked) {
      parked = false;
      --control_.parked;
    }
    // Cleared under the lock after seeing run == true: a pause sets run = false before kicking, so a kick can never
    // be lost between this store and KVM_RUN.
    __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
    lock.unlock();
    int rc = ::ioctl(fd_.get(), KVM_RUN, 0);
    int err = errno;
    bool ok = handle_exit(rc, err);
    bool access_pending = ok && rc == 0 && (run_->exit_reason == KVM_EXIT_IO || run_->exit_reason == KVM_EXIT_MMIO);
    lock.lock();
    if (access_pending && (!control_.run || control_.stop || control_.guest_stopped)) {
      lock.unlock();  // about to park: the state saved while parked must show the access done
      ok = complete_pending_io();
      lock.lock();
    }
    if (!ok) broken = true;
  }
  if (parked) --control_.parked;
}

// A port or MMIO exit is finished by KVM only at the next KVM_RUN (the IN's value reaches the register, the
// instruction is skipped); until then the vCPU's registers show the instruction not yet done, and a state saved
// then would make a restored guest run it again: a second IIR read that finds its interrupt already acknowledged,
// a console byte written twice. So a vCPU about to park re-enters with immediate_exit set, which completes the
// access and returns -EINTR before any guest instruction runs (Documentation/virt/kvm/api.rst, KVM_RUN); a running
// one completes the access on its next KVM_RUN anyway.
bool KvmVcpu::complete_pending_io() {
  while (run_->exit_reason == KVM_EXIT_IO || run_->exit_reason == KVM_EXIT_MMIO) {
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
    int rc = ::ioctl(fd_.get(), KVM_RUN, 0);
    int err = errno;
    if (rc < 0 && (err == EINTR || err == EAGAIN)) return true;  // done, and no guest instruction ran
    // Otherwise the access went on (the next chunk of a rep ins/outs): handle it like any exit, then finish that.
    if (!handle_exit(rc, err)) return false;
  }
  return true;
}

// Where the vCPU stood, for an error message: read on the vCPU's own thread, after KVM_RUN returned.
std::string KvmVcpu::cpu_context() const {
  kvm_regs regs{};
  kvm_sregs sregs{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) != 0 || ::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) != 0) return "";
  // After a shutdown, KVM on AMD has already reset the vCPU (the VMCB is undefined after one): printing its
  // reset-vector registers would point at the wrong place.
  if (regs.rip == 0xfff0 && sregs.cs.selector == 0xf000 && (sregs.cr0 & 1) == 0) {
    return "; its registers at the fault are gone: KVM reset the vCPU (AMD does so on every shutdown)";
  }
  char text[160];
  std::snprintf(text, sizeof text, "; rip 0x%llx rsp 0x%llx cr0 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx",
                static_cast<unsigned long long>(regs.rip), static_cast<unsigned long long>(regs.rsp),
                static_cast<unsigned long long>(sregs.cr0), static_cast<unsigned long long>(sregs.cr3),
                static_cast<unsigned long long>(sregs.cr4), static_cast<unsigned long long>(sregs.efer));
  return text;
}

bool KvmVcpu::handle_exit(int rc, int err) {
  if (rc < 0) {
    if (err == EINTR || err == EAGAIN) return true;  // kicked; the loop re-reads the request
    std::lock_guard lock(control_.mutex);
    fail(Status::from_errno(err, "ioctl KVM_RUN"));
    return false;
  }
  switch (run_->exit_reason) {
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_IO:
      if (exits_.on_io(*run_)) return true;
      break;
    case KVM_EXIT_MMIO:
      if (exits_.on_mmio(*run_)) return true;
      break;
    case KVM_EXIT_SHUTDOWN:
      if (exits_.on_shutdown(index_, cpu_context())) return true;
      break;
    case KVM_EXIT_DIRTY_RING_FULL: {
      Status s = tracker_.on_ring_full(index_);
      if (s.is_ok()) return true;
      std::lock_guard lock(control_.mutex);
      fail(s);
      return false;
    }
    default:
      break;
  }
  std::string detail;
  if (run_->exit_reason == KVM_EXIT_FAIL_ENTRY) {
    detail = " (entry failed, hardware reason " + std::to_string(run_->fail_entry.hardware_entry_failure_reason) +
             ")";
  } else if (run_->exit_reason == KVM_EXIT_SHUTDOWN) {
    detail = " (KVM_EXIT_SHUTDOWN: the guest triple-faulted" + cpu_context() + ")";
  } else if (run_->exit_reason == KVM_EXIT_IO) {
    detail = " (port I/O at 0x" + hex(run_->io.port) + ": no device there)";
  } else if (run_->exit_reason == KVM_EXIT_MMIO) {
    detail = " (MMIO at 0x" + hex(run_->mmio.phys_addr) + ": no device there)";
  }
  std::lock_guard lock(control_.mutex);
  fail(Status(StatusCode::kIoError,
              "KVM_RUN exited with unexpected reason " + std::to_string(run_->exit_reason) + detail));
  return false;
}

}  // namespace ckpt::vmm::kvm
