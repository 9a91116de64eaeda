#include "vmm/devices/virtio/virtio_mmio.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ckpt::vmm::devices::virtio {

using namespace mmio;

namespace {

constexpr uint8_t kDriverStatusBits =
    kStatusAcknowledge | kStatusDriver | kStatusDriverOk | kStatusFeaturesOk | kStatusFailed;
constexpr uint8_t kKnownStatusBits = kDriverStatusBits | kStatusNeedsReset;

void set_low(uint64_t& reg, uint32_t value) { reg = (reg & ~0xffffffffull) | value; }
void set_high(uint64_t& reg, uint32_t value) { reg = (reg & 0xffffffffull) | (uint64_t{value} << 32); }

}  // namespace

MmioTransport::MmioTransport(DeviceIdentity identity, std::function<Status(const QueueRegs&)> check_queue,
                             std::function<void()> raise_irq)
    : identity_(std::move(identity)), check_queue_(std::move(check_queue)), raise_irq_(std::move(raise_irq)) {
  if (identity_.config.size() > kWindowBytes - kConfig) identity_.config.resize(kWindowBytes - kConfig);
}

bool MmioTransport::features_acceptable(uint64_t features, bool beyond) const {
  return !beyond && (features & ~identity_.features) == 0 && (features & kFeatureVersion1) != 0;
}

bool MmioTransport::live() const {
  uint8_t s = state_.status;
  return (s & kStatusDriverOk) && (s & kStatusFeaturesOk) && !(s & (kStatusFailed | kStatusNeedsReset));
}

uint64_t MmioTransport::read(uint64_t offset, unsigned size) const {
  if (offset < kConfig) return size == 4 && offset % 4 == 0 ? read_register(offset) : 0;
  if ((size != 1 && size != 2 && size != 4 && size != 8) || offset >= kWindowBytes || size > kWindowBytes - offset) {
    return 0;
  }
  // Configuration bytes past the device's structure read as zero, like its unused fields.
  uint8_t bytes[8] = {};
  uint64_t at = offset - kConfig;
  for (unsigned i = 0; i < size && at + i < identity_.config.size(); ++i) bytes[i] = identity_.config[at + i];
  uint64_t value = 0;
  std::memcpy(&value, bytes, size);
  return value;
}

uint32_t MmioTransport::read_register(uint64_t offset) const {
  const QueueRegs& q = state_.queue;
  bool queue0 = state_.queue_sel == 0;
  switch (offset) {
    case kMagicValue:
      return kMagic;
    case kVersion:
      return 2;
    case kDeviceId:
      return identity_.device_id;
    case kVendorId:
      return kVendor;
    case kDeviceFeatures:
      if (state_.device_features_sel == 0) return static_cast<uint32_t>(identity_.features);
      if (state_.device_features_sel == 1) return static_cast<uint32_t>(identity_.features >> 32);
      return 0;
    case kQueueNumMax:
      return queue0 ? identity_.queue_max : 0;
    case kQueueReady:
      return queue0 && q.ready ? 1 : 0;
    case kInterruptStatus:
      return state_.interrupt_status;
    case kStatus:
      return state_.status;
    case kShmLenLow:
    case kShmLenHigh:
      return 0xffffffff;  // a length of -1: no shared memory region with the selected id
    case kConfigGeneration:
      return state_.config_generation;
    default:
      return 0;  // write-only registers and offsets without a register
  }
}

bool MmioTransport::stops_queue(uint64_t offset, unsigned size, uint64_t value) const {
  if (size != 4) return false;
  if (offset == kStatus) return static_cast<uint32_t>(value) == 0;
  return offset == kQueueReady && static_cast<uint32_t>(value) == 0 && state_.queue_sel == 0 && state_.queue.ready;
}

MmioTransport::Event MmioTransport::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= kConfig || size != 4 || offset % 4 != 0) return Event::kNone;
  return write_register(offset, static_cast<uint32_t>(value));
}

MmioTransport::Event MmioTransport::write_register(uint64_t offset, uint32_t value) {
  QueueRegs& q = state_.queue;
  // The driver may change a queue's registers only while it is not ready; there is only queue 0.
  bool queue_writable = state_.queue_sel == 0 && !q.ready;
  switch (offset) {
    case kDeviceFeaturesSel:
      state_.device_features_sel = value;
      return Event::kNone;
    case kDriverFeatures:
      if (state_.status & kStatusFeaturesOk) return Event::kNone;
      if (state_.driver_features_sel == 0) {
        set_low(state_.driver_features, value);
      } else if (state_.driver_features_sel == 1) {
        set_high(state_.driver_features, value);
      } else if (value != 0) {
        state_.driver_features_beyond = true;
      }
      return Event::kNone;
    case kDriverFeaturesSel:
      state_.driver_features_sel = value;
      return Event::kNone;
    case kQueueSel:
      state_.queue_sel = value;
      return Event::kNone;
    case kQueueNum:
      if (queue_writable) q.num = value;
      return Event::kNone;
    case kQueueDescLow:
      if (queue_writable) set_low(q.desc, value);
      return Event::kNone;
    case kQueueDescHigh:
      if (queue_writable) set_high(q.desc, value);
      return Event::kNone;
    case kQueueDriverLow:
      if (queue_writable) set_low(q.driver, value);
      return Event::kNone;
    case kQueueDriverHigh:
      if (queue_writable) set_high(q.driver, value);
      return Event::kNone;
    case kQueueDeviceLow:
      if (queue_writable) set_low(q.device, value);
      return Event::kNone;
    case kQueueDeviceHigh:
      if (queue_writable) set_high(q.device, value);
      return Event::kNone;
    case kQueueReady:
      if (state_.queue_sel != 0) return Event::kNone;
      if (value == 1 && !q.ready) {
        if (!check_queue_(q).is_ok()) return Event::kNone;  // QueueReady stays 0
        q.ready = true;
        return Event::kQueueReady;
      }
      if (value == 0 && q.ready) {
        q.ready = false;
        return Event::kQueueStopped;
      }
      return Event::kNone;
    case kQueueNotify:
      return value == 0 ? Event::kNotify : Event::kNone;
    case kInterruptAck:
      state_.interrupt_status &= static_cast<uint8_t>(~value);
      return Event::kNone;
    case kStatus:
      return write_status(static_cast<uint8_t>(value & 0xff));
    default:
      return Event::kNone;  // read-only registers, shared memory selection, unknown offsets
  }
}

MmioTransport::Event MmioTransport::write_status(uint8_t value) {
  if (value == 0) {
    uint32_t generation = state_.config_generation;  // the configuration itself does not change on reset
    state_ = TransportState();
    state_.config_generation = generation;
    return Event::kReset;
  }
  uint8_t before = state_.status;
  uint8_t added = static_cast<uint8_t>(value & kDriverStatusBits & ~before);
  if ((added & kStatusFeaturesOk) &&
      !features_acceptable(state_.driver_features, state_.driver_features_beyond)) {
    added &= static_cast<uint8_t>(~kStatusFeaturesOk);  // refused: the driver reads Status back without it
  }
  state_.status = before | added;
  return (added & kStatusDriverOk) ? Event::kDriverOk : Event::kNone;
}

void MmioTransport::interrupt(uint32_t bits) {
  state_.interrupt_status |= static_cast<uint8_t>(bits & (kInterruptUsedBuffer | kInterruptConfigChange));
  if (raise_irq_) raise_irq_();
}

void MmioTransport::set_needs_reset() {
  if (state_.status & kStatusNeedsReset) return;
  state_.status |= kStatusNeedsReset;
  // The spec asks for a configuration change notification; only a driver that has finished setting up expects one.
  if (state_.status & kStatusDriverOk) interrupt(kInterruptConfigChange);
}

Status MmioTransport::check_state(const TransportState& s) const {
  auto refuse = [](const std::string& why) { return corruption("virtio-mmio state: " + why); };
  if (s.status & ~kKnownStatusBits) return refuse("status " + std::to_string(s.status) + " has unknown bits");
  if ((s.status & kStatusFeaturesOk) && !features_acceptable(s.driver_features, s.driver_features_beyond)) {
    return refuse("FEATURES_OK with driver features " + std::to_string(s.driver_features) +
                  " that the device does not offer (or without VIRTIO_F_VERSION_1)");
  }
  if (s.interrupt_status & ~(kInterruptUsedBuffer | kInterruptConfigChange)) {
    return refuse("interrupt status " + std::to_string(s.interrupt_status) + " has unknown bits");
  }
  if (s.queue.ready) {
    Status queue_ok = check_queue_(s.queue);
    if (!queue_ok.is_ok()) return refuse("ready queue: " + queue_ok.message());
  }
  return Status::ok();
}

}  // namespace ckpt::vmm::devices::virtio
