// Test-only evidence (setting record-digests): for every committed epoch, a digest of the whole guest memory taken
// at that epoch's pause, and for every VM rebuilt eagerly from an epoch, the digest of the memory loaded (a lazy one
// is not read at load: Session::adopt_machine). Tests restore each
// epoch offline and compare. Hashing all memory at every pause lengthens pauses: never enable it in production.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace ckpt::daemon {

class DigestLog {
 public:
  // An empty path gives a disabled log.
  static Result<DigestLog> open(const std::string& path);
  bool enabled() const { return fd_.valid(); }
  static uint64_t digest(std::span<const uint8_t> memory);
  // Appends "<event> <epoch> <digest as 16 hex digits>\n", e.g. "epoch 7 ..." or "loaded 7 ...".
  Status record(std::string_view event, uint64_t epoch, uint64_t digest);

 private:
  UniqueFd fd_;
  std::string path_;
};

}  // namespace ckpt::daemon
