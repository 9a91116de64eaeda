// A virtio-blk device (virtio 1.x, "Block Device") on the virtio-mmio transport, as Linux's virtio_mmio and
// virtio_blk drivers use it. The model knows nothing of KVM: the machine forwards MMIO exits inside the device's
// window (kMmioWindowBytes from its base) to mmio_read/mmio_write, turns raise_irq into an interrupt edge, and
// reports the device's writes to guest memory through the GuestRam's observer (GuestMemory::mark_dirty).
//
// Offered features: VIRTIO_F_VERSION_1, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_FLUSH, and VIRTIO_BLK_F_RO for a
// read-only disk; nothing else. One queue of at most 256 descriptors. Requests: T_IN, T_OUT, T_FLUSH and T_GET_ID
// (the serial: the image file's name, its first 20 bytes); any other type is answered UNSUPP, and a malformed
// request IOERR (blk_request.h lists the cases), after which the device carries on. A ring the device cannot use
// at all (a descriptor index out of range, an available index running more than the queue's size ahead) sets
// DEVICE_NEEDS_RESET; the device then takes nothing more until the driver resets it.
//
// Threads:
//  * vCPU threads call mmio_read/mmio_write, any number at once. A QueueNotify only signals the backend (kick).
//    A write that resets the device or stops its queue waits until the requests the device took have completed,
//    as the driver expects of a reset (Linux reuses the memory right after).
//  * The backend's context (the io_uring backend's thread; the caller of kick for the in-memory backend) takes
//    requests from the queue, submits them and completes them: writes the status byte, the used element, the used
//    index, and raises the interrupt.
//  * The daemon's loop thread calls pause/resume, take_written_blocks/return_written_blocks, save_state/load_state.
// raise_irq is called with the device's lock held, and must not call back into the device.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/devices/virtio/blk_request.h"
#include "vmm/devices/virtio/block_backend.h"
#include "vmm/devices/virtio/block_set.h"
#include "vmm/devices/virtio/guest_ram.h"
#include "vmm/devices/virtio/split_queue.h"
#include "vmm/devices/virtio/virtio_mmio.h"

namespace ckpt::vmm::devices::virtio {

class VirtioBlk {
 public:
  static constexpr uint32_t kDeviceId = 2;
  static constexpr uint64_t kMmioWindowBytes = mmio::kWindowBytes;
  static constexpr uint64_t kFeatureSegMax = 1ull << 2, kFeatureRo = 1ull << 5, kFeatureFlush = 1ull << 9;
  // Data buffers per request: the queue's size less the header and the status (no indirect descriptors).
  static constexpr uint32_t kSegMax = SplitQueue::kMaxSize - 2;
  static constexpr uint64_t kBlockBytes = 4096;  // the unit of written-block tracking

  // The device serves `backend`'s disk (read-only if the backend is) to the guest whose memory `ram` maps. Its
  // serial number (GET_ID, the guest's /sys/block/vdX/serial) is `serial` (its first 20 bytes), or the file name of
  // the backend when empty: a VMM whose image files change names (a working image rebuilt under a temporary name)
  // passes one that stays the same.
  VirtioBlk(GuestRam ram, std::unique_ptr<BlockBackend> backend, std::function<void()> raise_irq,
            std::string serial = {});
  ~VirtioBlk();  // waits for requests in flight; the vCPUs must no longer call in
  VirtioBlk(const VirtioBlk&) = delete;
  VirtioBlk& operator=(const VirtioBlk&) = delete;

  // A guest access at `offset` into the window, `size` bytes wide (1, 2, 4 or 8); values little-endian in the low
  // bytes. Accesses the transport does not define read 0 and write nothing.
  uint64_t mmio_read(uint64_t offset, unsigned size);
  void mmio_write(uint64_t offset, unsigned size, uint64_t value);

  // Quiesce for a checkpoint: the device stops taking requests from the available ring and waits until every
  // request it took has completed (the data in the image's page cache, the used element written, the interrupt
  // raised). Fails (kAborted) if some are still in flight after `timeout`; the device stays paused then. While
  // paused the rings are left alone. Idempotent.
  Status pause(std::chrono::milliseconds timeout);
  // Takes requests again, including any the guest added or notified while paused.
  void resume();

  // The 4 KiB disk blocks written (T_OUT) since the last call, ascending, each once. A block is recorded when its
  // write is submitted, so a harvest while paused includes every write the image holds.
  std::vector<uint64_t> take_written_blocks();
  // Adds blocks back (an epoch that failed to store them); they come out of the next take_written_blocks.
  void return_written_blocks(std::span<const uint64_t> blocks);

  // The transport and queue state (virtio_blk_state.h), taken while paused: with requests in flight the blob
  // is one load_state refuses. load_state needs a device with nothing in flight (paused, or not yet running) and
  // refuses a blob whose values this device could not have reached (its memory, its features). It starts
  // nothing: once guest memory holds the matching image, resume() makes the device pick up the requests still
  // waiting in the available ring.
  std::vector<uint8_t> save_state() const;
  Status load_state(std::span<const uint8_t> blob);

  uint64_t capacity_sectors() const { return capacity_bytes_ / blk::kSectorBytes; }
  bool read_only() const { return read_only_; }
  uint64_t offered_features() const { return features_; }
  // For tests and status.
  size_t requests_in_flight() const;
  bool needs_reset() const;
  uint16_t last_avail_idx() const;

 private:
  struct Taken {
    uint16_t head;
    BlkRequest request;
  };

  void service();  // the backend's context
  bool can_take_locked() const;
  void take_locked(std::vector<Taken>& io, bool& used_pushed);
  void submit(Taken t);
  void finish(const Taken& t, int64_t result);
  void answer_locked(uint16_t head, const BlkRequest& r, uint8_t status, uint64_t data_written);
  void interrupt_if_wanted_locked();
  void wait_idle_locked(std::unique_lock<std::mutex>& lock);
  Status check_queue(const QueueRegs& regs);
  static QueueLayout layout_of(const QueueRegs& regs);
  void log_guest_error(const std::string& what);

  GuestRam ram_;
  const uint64_t capacity_bytes_;
  const bool read_only_;
  const uint64_t features_;
  std::array<uint8_t, blk::kIdBytes> serial_{};
  // For messages; kept apart from backend_, which the destructor resets while completions still log through here.
  const std::string name_;
  std::unique_ptr<BlockBackend> backend_;

  mutable std::mutex mu_;
  std::condition_variable idle_;  // in_flight_ dropped to 0
  MmioTransport transport_;
  SplitQueue queue_;
  size_t in_flight_ = 0;  // requests taken from the ring and not yet returned to it
  bool paused_ = false;
  unsigned draining_ = 0;  // vCPU writes waiting for in_flight_ == 0 before a reset or queue stop
  bool guest_error_logged_ = false;  // a guest can make errors quickly: the log hears of the first as a warning
  BlockSet written_;
};

}  // namespace ckpt::vmm::devices::virtio
