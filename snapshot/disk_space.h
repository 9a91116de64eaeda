// Guest disks as a store sees them (format 1.1, docs/format.md "Disks"): address spaces of 4 KiB blocks beside guest
// memory, checkpointed in the same epoch files with the same blocks, compression and checksums. A disk's id is also
// the address space of its blocks (BlockRef::space); memory is space 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::snap {

// One disk's share of an epoch: what its disk block records hold (checked against them on every read).
struct DiskStats {
  uint64_t data_blocks = 0;   // blocks stored with bytes
  uint64_t zero_blocks = 0;   // blocks recorded as zero
  uint64_t stored_bytes = 0;  // bytes of this disk's data blocks on disk
  bool operator==(const DiskStats&) const = default;
};

// A disk of an epoch: its layout, the same in every epoch of a chain, and this epoch's statistics.
struct DiskSpace {
  uint32_t id = 0;  // 1..16, in order; the space of its blocks
  std::string name;
  uint64_t blocks = 0;  // size in 4 KiB blocks
  bool read_only = false;
  DiskStats stats;
};

// A disk as a writer's caller describes it (EpochOptions::disks); ids follow the order, from 1.
struct DiskSpec {
  std::string name;  // 1..256 bytes, unique among the epoch's disks
  uint64_t blocks = 0;
  bool read_only = false;
  bool operator==(const DiskSpec&) const = default;
};

// Checks `specs` against the format's limits and numbers them; invalid_argument naming the bad disk.
Result<std::vector<DiskSpace>> disks_from_specs(const std::vector<DiskSpec>& specs);
std::vector<DiskSpec> disk_specs(const std::vector<DiskSpace>& disks);

// Whether two epochs have the same disks: count, ids, names, sizes and read-only flags (not statistics).
bool same_disk_layout(const std::vector<DiskSpace>& a, const std::vector<DiskSpace>& b);
// "no disks", or "disk 1 'disk0' (2048 blocks), disk 2 'iso' (512 blocks, read-only)", for messages.
std::string describe_disks(const std::vector<DiskSpace>& disks);

}  // namespace ckpt::snap
