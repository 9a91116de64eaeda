#include "vmm/machine_factory.h"

#include <string>
#include <utility>

#include "common/log.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/kvm/kvm_machine.h"

namespace ckpt::vmm {
namespace {

constexpr std::pair<std::string_view, Backend> kBackends[] = {
    {"auto", Backend::kAuto}, {"kvm", Backend::kKvm}, {"software", Backend::kSoftware}};

// kAuto: uffd-wp exists only in the software backend, so asking for it chooses that backend; otherwise KVM
// wherever /dev/kvm opens. `why` gets the reason for the software backend.
Backend resolve_auto(const MachineConfig& config, std::string* why) {
  if (config.guest == GuestKind::kLinux) return Backend::kKvm;  // the software backend runs only the built-in loops
  if (config.tracking == TrackingMode::kUffdWp) {
    *why = "tracking mode uffd-wp asked for";
    return Backend::kSoftware;
  }
  std::string kvm_missing;
  if (kvm::kvm_available(&kvm_missing)) return Backend::kKvm;
  *why = "no usable /dev/kvm (" + kvm_missing + ")";
  return Backend::kSoftware;
}

}  // namespace

std::string_view backend_name(Backend backend) {
  for (const auto& [name, b] : kBackends) {
    if (b == backend) return name;
  }
  return "unknown";
}

bool parse_backend(std::string_view text, Backend* out) {
  for (const auto& [name, b] : kBackends) {
    if (name == text) {
      *out = b;
      return true;
    }
  }
  return false;
}

Result<std::unique_ptr<Machine>> create_machine(const MachineConfig& config, Backend backend,
                                                const software::SoftwareOptions& software) {
  switch (backend) {
    case Backend::kKvm:
      return kvm::create_kvm_machine(config);
    case Backend::kSoftware:
      if (config.guest != GuestKind::kBuiltin) {
        return invalid_argument("the software backend runs only the built-in guest; a Linux guest needs KVM");
      }
      return software::create_software_machine(config, software);
    case Backend::kAuto:
      break;
  }
  std::string why;
  if (resolve_auto(config, &why) == Backend::kKvm) return kvm::create_kvm_machine(config);
  CKPT_LOG(kInfo) << "backend auto: using the software backend: " << why;
  auto machine = software::create_software_machine(config, software);
  if (!machine.is_ok()) return machine.status().with_context("backend auto chose software because " + why);
  return machine;
}

}  // namespace ckpt::vmm
