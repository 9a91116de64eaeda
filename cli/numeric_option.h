// Range checks for ckpt's numeric options. CLI11 2.1 converts an unsigned option with strtoull(base 0): "-1" wraps
// to 18446744073709551615, a number past 2^64 saturates to it, and "010" reads as octal 8. Every whole-number option
// of ckpt goes through whole_number() instead, so a bad value is a usage error (exit 2) naming the option:
//   ckpt compact: --keep-last: -1 is not a whole number (digits only)
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>

namespace ckpt::cli {

// Accepts decimal digits only, with a value in [min, max]; rewrites the text without leading zeros, so add it with
// Option::transform (check() would discard the rewrite).
CLI::Validator whole_number(uint64_t min = 0, uint64_t max = std::numeric_limits<uint64_t>::max());

// Accepts a finite decimal number in (0, max] (no sign, no exponent, no inf or nan).
CLI::Validator positive_seconds(double max);

}  // namespace ckpt::cli
