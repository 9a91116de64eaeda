#include "daemon/resume_settings.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "vmm/machine.h"

namespace ckpt::daemon {
namespace {

struct Difference {
  std::string key;
  std::string in_store;
  std::string given;
};

// One sentence for all differences, so a user fixing the config sees every one at once.
Status refuse(const DaemonConfig& config, const std::vector<Difference>& differences, const std::string& store) {
  if (differences.empty()) return Status::ok();
  std::string message = "resume from " + store + ": ";
  for (size_t i = 0; i < differences.size(); ++i) {
    const Difference& d = differences[i];
    if (i > 0) message += "; ";
    message += d.key + " is " + d.in_store + " in the store but " + d.given + " in " +
               config.explicit_settings.at(d.key);
  }
  message += ". The VM is rebuilt from the store, so its size and workload are the store's and cannot change on "
             "resume: remove " +
             std::string(differences.size() == 1 ? "that setting" : "those settings") +
             " (or set the store's values), or start a new store";
  return invalid_argument(message);
}

void compare(const DaemonConfig& config, const char* key, const std::string& in_store, const std::string& given,
             std::vector<Difference>& out) {
  if (config.explicit_settings.count(key) && in_store != given) out.push_back({key, in_store, given});
}

std::string workload_name(uint32_t kind) {
  return std::string(vmm::workload_kind_name(static_cast<vmm::guest::WorkloadKind>(kind)));
}

}  // namespace

unsigned vcpus_in_state(const std::vector<snap::StateBlob>& states) {
  unsigned count = 0;
  for (const snap::StateBlob& blob : states) {
    size_t at = blob.name.find("/vcpu");
    if (at == std::string::npos) continue;
    const char* digits = blob.name.data() + at + 5;
    const char* end = blob.name.data() + blob.name.size();
    unsigned index = 0;
    auto [stop, ec] = std::from_chars(digits, end, index);
    if (ec != std::errc() || stop == digits || (stop != end && *stop != '/')) continue;
    if (index < vmm::guest::kMaxVcpus) count = std::max(count, index + 1);
  }
  return count;
}

Result<vmm::GuestKind> stored_guest_kind(const DaemonConfig& config, const std::vector<snap::StateBlob>& states,
                                         const std::string& store) {
  vmm::GuestKind kind = vmm::GuestKind::kBuiltin;
  for (const snap::StateBlob& blob : states) {
    if (blob.name == vmm::kGuestKindStateBlob) {
      std::string text(blob.data.begin(), blob.data.end());
      if (!vmm::parse_guest_kind(text, &kind)) return corruption(store + ": unknown guest kind '" + text + "'");
    }
  }
  std::vector<Difference> differences;
  std::string given = config.guest_setting;
  if (given != "auto") compare(config, "guest", std::string(vmm::guest_kind_name(kind)), given, differences);
  if (kind == vmm::GuestKind::kLinux) {
    for (const auto& [key, place] : config.explicit_settings) {
      if (key.starts_with("workload")) differences.push_back({key, "unused (a Linux guest)", "set"});
    }
  } else if (config.machine.guest == vmm::GuestKind::kLinux && given == "auto") {
    differences.push_back({"kernel", "unused (the built-in guest)", config.machine.linux_guest.kernel});
  }
  CKPT_RETURN_IF_ERROR(refuse(config, differences, store));
  return kind;
}

Status check_size_settings(const DaemonConfig& config, uint64_t memory_bytes, unsigned vcpus,
                           const std::string& store) {
  std::vector<Difference> differences;
  compare(config, "memory-mib", std::to_string(memory_bytes >> 20), std::to_string(config.machine.memory_bytes >> 20),
          differences);
  compare(config, "vcpus", std::to_string(vcpus), std::to_string(config.machine.vcpus), differences);
  return refuse(config, differences, store);
}

Status check_workload_settings(const DaemonConfig& config, const vmm::guest::WorkloadControl& stored,
                               const std::string& store) {
  const vmm::WorkloadConfig& w = config.machine.workload;
  std::vector<Difference> differences;
  compare(config, "workload", workload_name(stored.kind), workload_name(static_cast<uint32_t>(w.kind)), differences);
  compare(config, "workload-seed", std::to_string(stored.seed), std::to_string(w.seed), differences);
  compare(config, "workload-writes", std::to_string(stored.writes_per_iteration),
          std::to_string(w.writes_per_iteration), differences);
  compare(config, "workload-hot-pages", std::to_string(stored.hot_pages), std::to_string(w.hot_pages), differences);
  compare(config, "workload-delay-loops", std::to_string(stored.delay_loops), std::to_string(w.delay_loops),
          differences);
  return refuse(config, differences, store);
}

}  // namespace ckpt::daemon
