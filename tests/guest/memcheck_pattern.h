// The memory pattern of memcheck (tests/guest/memcheck.cpp), the program a Linux test guest runs: which pages each
// round rewrites, which generation every page must hold after a round, and what a page of a given generation holds.
//
// Every write is a pure function of (seed, round), so the generation each page must hold after round R follows from
// R alone; no table in memory that a lost page could take along with it. A page holds its own generation, so it
// checks itself: a page that went back to an older round (a dirty page a checkpoint lost), a zero page, a page of
// another location or of another run (another seed), and a single flipped bit are all told apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/guest/guest_common.h"

namespace ckpt::guest {

inline constexpr size_t kPageBytes = 4096;
inline constexpr size_t kPageWords = kPageBytes / sizeof(uint64_t);

struct PatternConfig {
  uint64_t seed = 1;
  uint64_t pages = 0;
  // The sequential sweep rewrites memory in order, pages/sweep_rounds contiguous pages a round, so every page is
  // rewritten at least once every sweep_rounds rounds.
  uint64_t sweep_rounds = 16;
  // On top of the sweep, each page is rewritten in a round with this probability (per mille), independently.
  uint32_t random_per_mille = 62;
};

class Pattern {
 public:
  explicit Pattern(const PatternConfig& config);

  const PatternConfig& config() const { return config_; }
  // Whether round `round` (1, 2, ...) rewrites page `page`. Round 0 is the initial fill of every page.
  bool written_in(uint64_t round, uint64_t page) const;
  // The generation page `page` must hold once round `round` is complete: the last round <= `round` that wrote it.
  uint64_t expected_generation(uint64_t page, uint64_t round) const;

  void fill(uint64_t* page_words, uint64_t page, uint64_t generation) const;

  enum class Verdict {
    kGood,
    kStale,    // a valid page of this location, but an older generation: a lost write
    kFuture,   // a valid page of this location, but a newer generation than this round wrote
    kZero,     // all zero
    kForeign,  // the header names another page, or another run (seed)
    kCorrupt,  // the header is right but the contents do not match its generation
  };
  // Checks the page against the generation it must hold; *found is the generation it claims to hold.
  Verdict check(const uint64_t* page_words, uint64_t page, uint64_t expected, uint64_t* found) const;

 private:
  uint64_t sweep_slot(uint64_t page) const;
  uint64_t body_base(uint64_t page, uint64_t generation) const;

  PatternConfig config_;
  uint64_t random_threshold_;
};

std::string_view verdict_name(Pattern::Verdict verdict);

}  // namespace ckpt::guest
