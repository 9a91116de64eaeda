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
constexpr std::pair<std::string_view, GuestKind> kGuests[] = {
    {"builtin", GuestKind::kBuiltin},
    {"linux", GuestKind::kLinux},
};
constexpr std::pair<std::string_view, GuestStopReason> kStopReasons[] = {
    {"running", GuestStopReason::kNone},
    {"triple-fault", GuestStopReason::kTripleFault},
    {"reset", GuestStopReason::kReset},
    {"poweroff", GuestStopReason::kPowerOff},
    {"restore-failed", GuestStopReason::kRestoreFailed},
};

// The name of `value` in `table`, or "unknown".
template <typename T, size_t N>
std::string_view name_in(const std::pair<std::string_view, T> (&table)[N], T value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename T, size_t N>
bool parse_in(const std::pair<std::string_view, T> (&table)[N], std::string_view text, T* out) {
  for (const auto& [name, v] : table) {
    if (name == text) {
      *out = v;
      return true;
    }
  }
  return false;
}
}  // namespace

std::string_view guest_kind_name(GuestKind kind) { return name_in(kGuests, kind); }
bool parse_guest_kind(std::string_view text, GuestKind* out) { return parse_in(kGuests, text, out); }
std::string_view guest_stop_reason_name(GuestStopReason reason) { return name_in(kStopReasons, reason); }

std::string_view workload_kind_name(guest::WorkloadKind kind) { return name_in(kWorkloads, kind); }
bool parse_workload_kind(std::string_view text, guest::WorkloadKind* out) { return parse_in(kWorkloads, text, out); }
std::string_view tracking_mode_name(TrackingMode mode) { return name_in(kModes, mode); }
bool parse_tracking_mode(std::string_view text, TrackingMode* out) { return parse_in(kModes, text, out); }

}  // namespace ckpt::vmm
