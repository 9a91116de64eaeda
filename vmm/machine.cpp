#include "vmm/machine.h"

namespace ckpt::vmm {

namespace {
constexpr std::pair<std::string_view, TrackingMode> kModes[] = {
    {"auto", TrackingMode::kAuto},         {"ring", TrackingMode::kDirtyRing}, {"clear-log", TrackingMode::kClearLog},
    {"dirty-log", TrackingMode::kDirtyLog}, {"uffd-wp", TrackingMode::kUffdWp},
    {"conservative", TrackingMode::kConservative},
};
constexpr std::pair<std::string_view, guest::WorkloadKind> kWorkloads[] = {
    {"random-writer", guest::WorkloadKind::kRandomWriter},
    {"hot-set", guest::WorkloadKind::kHotSet},
    {"sweep", guest::WorkloadKind::kSweep},
    {"idle", guest::WorkloadKind::kIdle},
};
}  // namespace

std::string_view workload_kind_name(guest::WorkloadKind kind) {
  for (const auto& [name, k] : kWorkloads) {
    if (k == kind) return name;
  }
  return "unknown";
}

bool parse_workload_kind(std::string_view text, guest::WorkloadKind* out) {
  for (const auto& [name, k] : kWorkloads) {
    if (name == text) {
      *out = k;
      return true;
    }
  }
  return false;
}

std::string_view tracking_mode_name(TrackingMode mode) {
  for (const auto& [name, m] : kModes) {
    if (m == mode) return name;
  }
  return "unknown";
}

bool parse_tracking_mode(std::string_view text, TrackingMode* out) {
  for (const auto& [name, m] : kModes) {
    if (name == text) {
      *out = m;
      return true;
    }
  }
  return false;
}

}  // namespace ckpt::vmm
