// Checks a store offline: every checksum of every epoch file (header, data blocks of memory and disks before and
// after decoding, metadata records, commit record), the statistics (checked when the metadata is read), and the
// chain's structure (parents present, one store, one guest size, one set of disks per chain, bases complete in
// memory and on every disk).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

struct VerifyProblem {
  uint64_t epoch;
  std::string path;
  Status status;  // names the offset
};

struct VerifyReport {
  uint64_t epochs_checked = 0;
  uint64_t blocks_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<VerifyProblem> problems;  // ordered by epoch; problems.front() is the first bad epoch
  bool ok() const { return problems.empty(); }
};

struct VerifyOptions {
  std::optional<uint64_t> epoch;  // check only this epoch's chain; default: every epoch
  unsigned threads = 0;
  std::function<void(uint64_t done, uint64_t total)> progress;  // in blocks
};

// Fails only when the store cannot be listed at all; everything found wrong is in the report.
Result<VerifyReport> verify_store(FileSystem& fs, const std::string& dir, const VerifyOptions& options = {});

}  // namespace ckpt::snap
