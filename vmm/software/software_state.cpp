#include "vmm/software/software_state.h"

#include <charconv>
#include <optional>

namespace ckpt::vmm::software {
namespace {

constexpr std::string_view kPrefix = "software/vcpu";
constexpr std::string_view kSuffix = "/workload";

// "software/vcpu<i>/workload" -> i, decimal without leading zeros.
std::optional<unsigned> vcpu_of(std::string_view name) {
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  unsigned index = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return index;
}

}  // namespace

std::string vcpu_state_name(unsigned index) {
  return std::string(kPrefix) + std::to_string(index) + std::string(kSuffix);
}

void append_vcpu_state(unsigned index, const guest::WorkloadCpuState& state, std::vector<StateBlob>& out) {
  auto bytes = state.encode();
  out.push_back(StateBlob{vcpu_state_name(index), std::vector<uint8_t>(bytes.begin(), bytes.end())});
}

Result<std::vector<guest::WorkloadCpuState>> parse_vcpu_states(const std::vector<StateBlob>& state, unsigned vcpus) {
  std::vector<std::optional<guest::WorkloadCpuState>> found(vcpus);
  for (const StateBlob& blob : state) {
    if (!blob.name.starts_with("software/")) {
      return invalid_argument("state blob \"" + blob.name +
                              "\" is not software backend state (saved by another "
                              "backend? machine state does not cross backends)");
    }
    std::optional<unsigned> index = vcpu_of(blob.name);
    if (!index) return invalid_argument("unknown software state blob \"" + blob.name + "\"");
    if (*index >= vcpus) {
      return invalid_argument("state blob \"" + blob.name + "\" is for a vCPU this " + std::to_string(vcpus) +
                              "-vCPU machine does not have");
    }
    if (found[*index]) return invalid_argument("duplicate state blob \"" + blob.name + "\"");
    auto decoded = guest::WorkloadCpuState::decode(blob.data);
    if (!decoded.is_ok()) return decoded.status().with_context("state blob \"" + blob.name + "\"");
    found[*index] = *decoded;
  }
  std::vector<guest::WorkloadCpuState> out;
  for (unsigned i = 0; i < vcpus; ++i) {
    if (!found[i]) return not_found("no state blob \"" + vcpu_state_name(i) + "\"");
    out.push_back(*found[i]);
  }
  return out;
}

}  // namespace ckpt::vmm::software
