// Guest memory: one memfd, mapped shared, divided into slots of at most 1 GiB (the unit KVM logs dirty pages by).
// The software backend uses the same layout. The VMM's own writes are recorded in a dirty bitmap of its own,
// merged into every harvest.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "vmm/dirty_bitmap.h"

namespace ckpt::vmm {

struct MemorySlot {
  uint32_t id;
  uint64_t gpa;
  uint64_t bytes;
  uint8_t* host;
  uint64_t first_gfn() const { return gpa / 4096; }
  uint64_t pages() const { return bytes / 4096; }
};

class GuestMemory {
 public:
  static constexpr uint64_t kMaxSlotBytes = 1ull << 30;

  // `bytes` must be a positive multiple of 2 MiB.
  static Result<std::unique_ptr<GuestMemory>> create(uint64_t bytes);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t bytes() const { return bytes_; }
  uint64_t pages() const { return bytes_ / 4096; }
  uint8_t* host() { return host_; }
  const std::vector<MemorySlot>& slots() const { return slots_; }
  int fd() const { return fd_.get(); }

  // Copies into guest memory and marks the pages dirty.
  Status write(uint64_t gpa, std::span<const uint8_t> data);
  // The gfn ranges (first, count) that may hold data, ascending. Pages outside them were never touched: holes in the
  // memfd, which read as zero without costing a page fault each (SEEK_DATA/SEEK_HOLE).
  Result<std::vector<std::pair<uint64_t, uint64_t>>> data_ranges() const;
  // Records that the VMM (a device model) wrote [gpa, gpa + bytes) through its own mapping, which KVM's dirty log
  // does not see; the pages join the next harvest. The part outside guest memory is ignored. Any thread.
  void mark_dirty(uint64_t gpa, uint64_t bytes);
  // Moves the VMM-dirty pages into `out` and clears them.
  void take_vmm_dirty(DirtyBitmap& out);

 private:
  GuestMemory() = default;
  uint64_t bytes_ = 0;
  UniqueFd fd_;
  uint8_t* host_ = nullptr;
  std::vector<MemorySlot> slots_;
  std::mutex vmm_dirty_mutex_;
  DirtyBitmap vmm_dirty_;
};

}  // namespace ckpt::vmm
