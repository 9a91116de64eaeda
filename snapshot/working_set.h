// The working-set record: the guest pages a lazily restored guest reached for first, kept in the store
// (store/working-set, docs/format.md) so that the next lazy restore from it installs their blocks before the guest
// asks for them (REAP's record-and-prefetch). A hint, never data: a missing, damaged or foreign record only means
// no prefetch, and nothing in the store depends on it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

inline constexpr char kWorkingSetName[] = "working-set";
inline constexpr uint32_t kMaxWorkingSetGfns = 1u << 16;  // 512 KiB of record at most

// The record of `store_dir`: its gfns in the order they were reached for. An empty list when there is none;
// kCorruption naming the file and offset when it is damaged; kInvalidArgument when it was written for a guest of
// another size than `guest_pages` (not this store's VM).
Result<std::vector<uint64_t>> load_working_set(FileSystem& fs, const std::string& store_dir, uint64_t guest_pages);

// Replaces the record (written beside it, then renamed over it: a crash leaves the old record or the new one).
// Not made durable: a record lost to a power failure costs one restore its prefetch. At most kMaxWorkingSetGfns.
Status save_working_set(FileSystem& fs, const std::string& store_dir, uint64_t guest_pages,
                        std::span<const uint64_t> gfns);

}  // namespace ckpt::snap
