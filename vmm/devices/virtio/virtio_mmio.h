// The virtio-mmio transport (virtio 1.x, "Virtio Over MMIO"), version 2 only (no legacy interface): the register
// file at offsets 0x000..0x0fc of a device's window and the device-specific configuration from 0x100, as Linux's
// virtio_mmio driver uses them. It keeps the registers and enforces their rules; the device model around it owns
// the queue, the lock and the work.
//
// Rules it enforces (anything else is ignored, never a crash):
//  * Registers below 0x100 are 32 bits wide: an access of another width, or to an offset with no register, reads
//    0 and writes nothing. The configuration space reads with widths 1, 2, 4 and 8 and ignores writes (no field the
//    offered features define is writable).
//  * Feature negotiation is honest: the driver may accept only what the device offers, VIRTIO_F_VERSION_1 among
//    it; otherwise FEATURES_OK does not stick (the driver reads Status back and gives up, as the spec asks). The
//    accepted features are frozen once FEATURES_OK is set.
//  * A Status write sets bits (only a reset clears them); writing 0 resets the transport: status, features,
//    selectors, queue registers and pending interrupts are dropped.
//  * Queue registers change only while the queue is not ready; QueueReady=1 succeeds only for a layout the device
//    accepts (check_queue), else QueueReady reads 0.
//  * One queue (index 0); QueueNumMax reads 0 for any other, which tells the driver it does not exist.
//
// Not thread-safe: the device calls it under its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"

namespace ckpt::vmm::devices::virtio {

namespace mmio {
// Register offsets (virtio 1.x 4.2.2).
constexpr uint64_t kMagicValue = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
                   kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020,
                   kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
                   kQueueReady = 0x044, kQueueNotify = 0x050, kInterruptStatus = 0x060, kInterruptAck = 0x064,
                   kStatus = 0x070, kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090,
                   kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kShmSel = 0x0ac,
                   kShmLenLow = 0x0b0, kShmLenHigh = 0x0b4, kShmBaseLow = 0x0b8, kShmBaseHigh = 0x0bc,
                   kConfigGeneration = 0x0fc, kConfig = 0x100;
// The size of a device's window: registers plus up to 256 bytes of configuration.
constexpr uint64_t kWindowBytes = 0x200;

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x54504b43;  // "CKPT"

// Device status bits (virtio 1.x 2.1).
constexpr uint8_t kStatusAcknowledge = 1, kStatusDriver = 2, kStatusDriverOk = 4, kStatusFeaturesOk = 8,
                  kStatusNeedsReset = 64, kStatusFailed = 128;
// InterruptStatus bits.
constexpr uint32_t kInterruptUsedBuffer = 1, kInterruptConfigChange = 2;

constexpr uint64_t kFeatureVersion1 = 1ull << 32;
}  // namespace mmio

// What the device presents through the transport.
struct DeviceIdentity {
  uint32_t device_id = 0;
  uint64_t features = 0;        // offered; must include VIRTIO_F_VERSION_1
  uint32_t queue_max = 0;       // QueueNumMax of queue 0
  std::vector<uint8_t> config;  // the device-specific configuration, at most 256 bytes
};

// Queue 0 as the driver configured it.
struct QueueRegs {
  uint32_t num = 0;
  uint64_t desc = 0, driver = 0, device = 0;
  bool ready = false;
};

// Everything the driver can observe or has configured; what a checkpoint keeps of the transport.
struct TransportState {
  uint8_t status = 0;
  uint8_t interrupt_status = 0;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint64_t driver_features = 0;
  bool driver_features_beyond = false;  // the driver set a bit above 63, which no device offers
  uint32_t queue_sel = 0;
  uint32_t config_generation = 0;
  QueueRegs queue;
};

class MmioTransport {
 public:
  // What a write asks of the device. kQueueStopped and kReset are reported after the fact: the device must
  // finish what it took from the queue before it passes such a write on (see stops_queue).
  enum class Event { kNone, kReset, kNotify, kQueueReady, kQueueStopped, kDriverOk };

  // check_queue: whether the device accepts a queue layout (called on QueueReady=1); raise_irq: an interrupt edge,
  // called after InterruptStatus gained a bit.
  MmioTransport(DeviceIdentity identity, std::function<Status(const QueueRegs&)> check_queue,
                std::function<void()> raise_irq);

  uint64_t read(uint64_t offset, unsigned size) const;
  Event write(uint64_t offset, unsigned size, uint64_t value);
  // Whether this write would reset the device or stop its queue (the device drains in-flight work first).
  bool stops_queue(uint64_t offset, unsigned size, uint64_t value) const;

  // The driver has finished setting up (DRIVER_OK with FEATURES_OK) and neither it nor the device gave up.
  bool live() const;
  uint64_t driver_features() const { return state_.driver_features; }
  const QueueRegs& queue() const { return state_.queue; }

  // Sets InterruptStatus bits and raises the interrupt.
  void interrupt(uint32_t bits);
  // The device hit an error only a reset clears: DEVICE_NEEDS_RESET, announced by a configuration interrupt.
  void set_needs_reset();

  const TransportState& state() const { return state_; }
  // Whether `state` is one this transport could have reached; the error names the first field that is not.
  Status check_state(const TransportState& state) const;
  void set_state(const TransportState& state) { state_ = state; }

 private:
  bool features_acceptable(uint64_t features, bool beyond) const;
  uint32_t read_register(uint64_t offset) const;
  Event write_register(uint64_t offset, uint32_t value);
  Event write_status(uint8_t value);

  DeviceIdentity identity_;
  std::function<Status(const QueueRegs&)> check_queue_;
  std::function<void()> raise_irq_;
  TransportState state_;
};

}  // namespace ckpt::vmm::devices::virtio
