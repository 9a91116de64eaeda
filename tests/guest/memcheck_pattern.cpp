#include "tests/guest/memcheck_pattern.h"

#include <algorithm>
#include <limits>

namespace ckpt::guest {
namespace {

// Word 0 of a page: this tag xor the page index. Derived from the seed, so a page left by another run (a rebooted
// guest reusing the same physical page) reads as foreign, not as stale.
uint64_t header_tag(uint64_t seed) { return mix64(seed ^ 0x4d454d434845434bull); }  // "MEMCHECK"

constexpr uint64_t kWordStep = 0x9e3779b97f4a7c15ull;  // odd: word i of the body is base + i * kWordStep

}  // namespace

Pattern::Pattern(const PatternConfig& config) : config_(config) {
  config_.sweep_rounds = std::max<uint64_t>(config_.sweep_rounds, 1);
  const uint32_t per_mille = std::min<uint32_t>(config_.random_per_mille, 1000);
  random_threshold_ = per_mille == 1000 ? std::numeric_limits<uint64_t>::max()
                                        : per_mille * (std::numeric_limits<uint64_t>::max() / 1000);
}

uint64_t Pattern::sweep_slot(uint64_t page) const {
  // Contiguous runs: slot s covers pages [s * pages / S, (s + 1) * pages / S). 128-bit: page * S may not fit.
  __extension__ using Wide = unsigned __int128;
  return static_cast<uint64_t>(static_cast<Wide>(page) * config_.sweep_rounds / config_.pages);
}

bool Pattern::written_in(uint64_t round, uint64_t page) const {
  if (round == 0) return true;
  if ((round - 1) % config_.sweep_rounds == sweep_slot(page)) return true;
  return mix64(mix64(config_.seed ^ (round << 1)) ^ page) < random_threshold_;
}

uint64_t Pattern::expected_generation(uint64_t page, uint64_t round) const {
  if (round == 0) return 0;
  const uint64_t slot = sweep_slot(page);
  // The last round <= `round` whose sweep covered this page (0: none yet, the initial fill).
  const uint64_t last_sweep = round >= slot + 1 ? round - (round - 1 - slot) % config_.sweep_rounds : 0;
  // Random rewrites after it: fewer than sweep_rounds rounds to look at.
  for (uint64_t r = round; r > last_sweep; --r) {
    if (written_in(r, page)) return r;
  }
  return last_sweep;
}

uint64_t Pattern::body_base(uint64_t page, uint64_t generation) const {
  return mix64(mix64(config_.seed ^ page) + generation);
}

void Pattern::fill(uint64_t* words, uint64_t page, uint64_t generation) const {
  words[0] = header_tag(config_.seed) ^ page;
  words[1] = generation;
  uint64_t value = body_base(page, generation) + 2 * kWordStep;
  for (size_t i = 2; i < kPageWords; ++i, value += kWordStep) words[i] = value;
}

Pattern::Verdict Pattern::check(const uint64_t* words, uint64_t page, uint64_t expected, uint64_t* found) const {
  *found = words[1];
  if (words[0] != (header_tag(config_.seed) ^ page)) {
    const bool zero = std::all_of(words, words + kPageWords, [](uint64_t w) { return w == 0; });
    return zero ? Verdict::kZero : Verdict::kForeign;
  }
  uint64_t value = body_base(page, words[1]) + 2 * kWordStep;
  for (size_t i = 2; i < kPageWords; ++i, value += kWordStep) {
    if (words[i] != value) return Verdict::kCorrupt;
  }
  if (words[1] < expected) return Verdict::kStale;
  if (words[1] > expected) return Verdict::kFuture;
  return Verdict::kGood;
}

std::string_view verdict_name(Pattern::Verdict verdict) {
  switch (verdict) {
    case Pattern::Verdict::kGood: return "good";
    case Pattern::Verdict::kStale: return "stale";
    case Pattern::Verdict::kFuture: return "future";
    case Pattern::Verdict::kZero: return "zero";
    case Pattern::Verdict::kForeign: return "foreign";
    case Pattern::Verdict::kCorrupt: return "corrupt";
  }
  return "?";
}

}  // namespace ckpt::guest
