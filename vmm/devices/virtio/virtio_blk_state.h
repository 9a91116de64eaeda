// The saved state of a virtio-blk device: what the driver configured and observed through the transport, and the
// queue's two ring positions. Nothing of the disk's contents (they live in the image) and no request in flight
// (a device saves only with none: see VirtioBlk::pause).
//
// Version 1, 64 bytes, little-endian:
//   0  "VBLK"            4  version (1)         5  status             6  interrupt status
//   7  flags: bit 0 queue ready, bit 1 driver features above bit 63 were set
//   8  DeviceFeaturesSel u32    12 DriverFeaturesSel u32   16 driver features u64   24 QueueSel u32
//   28 ConfigGeneration u32     32 QueueNum u32            36 QueueDesc u64         44 QueueDriver u64
//   52 QueueDevice u64          60 last_avail_idx u16      62 used_idx u16
// Decoding checks the format only (size, magic, version, flag bits); the device checks the values.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "vmm/devices/virtio/virtio_mmio.h"

namespace ckpt::vmm::devices::virtio {

struct VirtioBlkState {
  static constexpr uint8_t kVersion = 1;
  static constexpr size_t kBytes = 64;

  TransportState transport;
  uint16_t last_avail_idx = 0;
  uint16_t used_idx = 0;
};

std::vector<uint8_t> encode_virtio_blk_state(const VirtioBlkState& state);
Result<VirtioBlkState> decode_virtio_blk_state(std::span<const uint8_t> blob);

}  // namespace ckpt::vmm::devices::virtio
