#include "vmm/devices/virtio/virtio_blk_state.h"

#include <cstring>
#include <string>

namespace ckpt::vmm::devices::virtio {
namespace {

constexpr char kMagic[4] = {'V', 'B', 'L', 'K'};
constexpr uint8_t kFlagQueueReady = 1, kFlagFeaturesBeyond = 2;

template <typename T>
void put(std::vector<uint8_t>& out, size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <typename T>
T get(std::span<const uint8_t> in, size_t at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof value);
  return value;
}

}  // namespace

std::vector<uint8_t> encode_virtio_blk_state(const VirtioBlkState& state) {
  const TransportState& t = state.transport;
  std::vector<uint8_t> out(VirtioBlkState::kBytes, 0);
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  out[4] = VirtioBlkState::kVersion;
  out[5] = t.status;
  out[6] = t.interrupt_status;
  out[7] = static_cast<uint8_t>((t.queue.ready ? kFlagQueueReady : 0) |
                                (t.driver_features_beyond ? kFlagFeaturesBeyond : 0));
  put<uint32_t>(out, 8, t.device_features_sel);
  put<uint32_t>(out, 12, t.driver_features_sel);
  put<uint64_t>(out, 16, t.driver_features);
  put<uint32_t>(out, 24, t.queue_sel);
  put<uint32_t>(out, 28, t.config_generation);
  put<uint32_t>(out, 32, t.queue.num);
  put<uint64_t>(out, 36, t.queue.desc);
  put<uint64_t>(out, 44, t.queue.driver);
  put<uint64_t>(out, 52, t.queue.device);
  put<uint16_t>(out, 60, state.last_avail_idx);
  put<uint16_t>(out, 62, state.used_idx);
  return out;
}

Result<VirtioBlkState> decode_virtio_blk_state(std::span<const uint8_t> blob) {
  if (blob.size() < 5 || std::memcmp(blob.data(), kMagic, sizeof kMagic) != 0) {
    return corruption("virtio-blk state: not a virtio-blk state blob (" + std::to_string(blob.size()) +
                      " bytes, no VBLK magic)");
  }
  if (blob[4] != VirtioBlkState::kVersion) {
    return Status(StatusCode::kUnsupported, "virtio-blk state: version " + std::to_string(blob[4]) +
                                                " (this ckptd reads version " +
                                                std::to_string(VirtioBlkState::kVersion) + ")");
  }
  if (blob.size() != VirtioBlkState::kBytes) {
    return corruption("virtio-blk state: " + std::to_string(blob.size()) + " bytes, not " +
                      std::to_string(VirtioBlkState::kBytes));
  }
  uint8_t flags = blob[7];
  if (flags & ~(kFlagQueueReady | kFlagFeaturesBeyond)) {
    return corruption("virtio-blk state: unknown flags " + std::to_string(flags));
  }
  VirtioBlkState s;
  TransportState& t = s.transport;
  t.status = blob[5];
  t.interrupt_status = blob[6];
  t.queue.ready = flags & kFlagQueueReady;
  t.driver_features_beyond = flags & kFlagFeaturesBeyond;
  t.device_features_sel = get<uint32_t>(blob, 8);
  t.driver_features_sel = get<uint32_t>(blob, 12);
  t.driver_features = get<uint64_t>(blob, 16);
  t.queue_sel = get<uint32_t>(blob, 24);
  t.config_generation = get<uint32_t>(blob, 28);
  t.queue.num = get<uint32_t>(blob, 32);
  t.queue.desc = get<uint64_t>(blob, 36);
  t.queue.driver = get<uint64_t>(blob, 44);
  t.queue.device = get<uint64_t>(blob, 52);
  s.last_avail_idx = get<uint16_t>(blob, 60);
  s.used_idx = get<uint16_t>(blob, 62);
  return s;
}

}  // namespace ckpt::vmm::devices::virtio
