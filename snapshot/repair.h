// The way out of a store that a daemon cannot resume: its newest epoch damaged (a bit flip, a torn disk), or a
// stray file named like an epoch above it. repair_store verifies every epoch and moves the ones that cannot be
// restored (damaged, or whose chain runs through a damaged one) into a subdirectory of the store, never deleting
// anything; the newest intact epoch is then the one ckptd resumes from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::snap {

struct RepairOptions {
  bool dry_run = false;  // report what would move, move nothing
  unsigned threads = 0;
};

struct RepairReport {
  struct Moved {
    uint64_t epoch;
    std::string why;
  };
  std::vector<Moved> moved;              // ascending epochs
  std::string moved_to;                  // the directory they went to (empty when nothing moved)
  uint64_t epochs_checked = 0;
  std::optional<uint64_t> newest_intact;  // what ckptd --resume continues from; nullopt: no epoch is left
};

// Takes the store's writer lock (so no daemon may run on it), verifies it, and moves every epoch that fails into
// `<dir>/damaged-<UTC time>/`. Fails only when the store cannot be opened or a file cannot be moved.
Result<RepairReport> repair_store(const std::string& dir, const RepairOptions& options = {});

}  // namespace ckpt::snap
