#include "vmm/kvm/kvm_api.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace ckpt::vmm::kvm {

Result<int> checked_ioctl(int fd, unsigned long request, unsigned long arg, const char* name, bool interruptible) {
  for (;;) {
    int rc = ::ioctl(fd, request, arg);
    if (rc >= 0) return rc;
    if (errno == EINTR && !interruptible) continue;
    return Status::from_errno(errno, std::string("ioctl ") + name);
  }
}

Result<std::unique_ptr<KvmSystem>> KvmSystem::open(const std::string& path) {
  std::unique_ptr<KvmSystem> kvm(new KvmSystem());
  kvm->fd_.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!kvm->fd_.valid()) return Status::from_errno(errno, "open " + path);
  CKPT_ASSIGN_OR_RETURN(int version, KVM_CALL_VALUE(kvm->fd(), KVM_GET_API_VERSION, 0));
  if (version != KVM_API_VERSION) {
    return unsupported(path + ": KVM API version " + std::to_string(version) + ", expected " +
                       std::to_string(KVM_API_VERSION));
  }
  return kvm;
}

int KvmSystem::check(long capability) const {
  int rc = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return rc < 0 ? 0 : rc;
}

Result<std::vector<uint32_t>> KvmSystem::msr_index_list() const {
  // First call learns the count (E2BIG), the second fills the list.
  kvm_msr_list probe{};
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
    return Status::from_errno(errno, "ioctl KVM_GET_MSR_INDEX_LIST");
  }
  std::vector<uint8_t> buffer(sizeof(kvm_msr_list) + probe.nmsrs * sizeof(uint32_t));
  auto* list = reinterpret_cast<kvm_msr_list*>(buffer.data());
  list->nmsrs = probe.nmsrs;
  CKPT_RETURN_IF_ERROR(KVM_CALL(fd_.get(), KVM_GET_MSR_INDEX_LIST, list).status());
  return std::vector<uint32_t>(list->indices, list->indices + list->nmsrs);
}

Result<std::vector<uint8_t>> KvmSystem::supported_cpuid() const {
  for (uint32_t entries = 64; entries <= 4096; entries *= 2) {
    std::vector<uint8_t> buffer(sizeof(kvm_cpuid2) + entries * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
    cpuid->nent = entries;
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
      buffer.resize(sizeof(kvm_cpuid2) + cpuid->nent * sizeof(kvm_cpuid_entry2));
      return buffer;
    }
    if (errno != E2BIG) return Status::from_errno(errno, "ioctl KVM_GET_SUPPORTED_CPUID");
  }
  return unsupported("KVM_GET_SUPPORTED_CPUID wants more than 4096 entries");
}

Result<int> KvmSystem::vcpu_mmap_size() const { return KVM_CALL_VALUE(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0); }

bool kvm_available(std::string* why) {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (why) *why = std::string("/dev/kvm: ") + std::strerror(errno);
    return false;
  }
  ::close(fd);
  return true;
}

}  // namespace ckpt::vmm::kvm
