// Chooses the backend that runs a Machine. The daemon and the CLI create machines only through here, so they never
// depend on which backend they got (Machine::backend_name() says, for status output).
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "vmm/machine.h"
#include "vmm/software/software_machine.h"

namespace ckpt::vmm {

enum class Backend {
  kAuto,      // KVM when /dev/kvm opens (and the tracking mode is not uffd-wp), else software, with a log line;
              // always KVM for a Linux guest
  kKvm,       // vmm/kvm: fails without /dev/kvm
  kSoftware,  // vmm/software: host threads, userfaultfd write-protect tracking
};

std::string_view backend_name(Backend backend);  // "auto", "kvm", "software"
bool parse_backend(std::string_view text, Backend* out);

// `software` applies only when the software backend is chosen.
Result<std::unique_ptr<Machine>> create_machine(const MachineConfig& config, Backend backend,
                                                const software::SoftwareOptions& software = {});

}  // namespace ckpt::vmm
