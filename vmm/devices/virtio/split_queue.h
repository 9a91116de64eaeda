// The device side of a split virtqueue (virtio 1.x, "Split Virtqueues"): the descriptor table, the available ring
// and the used ring at addresses the driver chose, in guest memory the guest keeps changing concurrently.
//
// Everything the guest supplies is checked before use: the layout (a power-of-two size up to kMaxSize, each part
// aligned as the spec requires and wholly inside guest memory), how far the available index runs ahead, every
// descriptor index, the chain's length (at most the queue's size, so a descriptor loop ends in an error), every
// buffer (inside guest memory, without overflow) and the order of buffers (device-writable ones after the
// device-readable ones). Neither VIRTIO_F_INDIRECT_DESC nor VIRTIO_F_EVENT_IDX is offered: an indirect descriptor
// makes a bad chain, and interrupts are suppressed only through the available ring's NO_INTERRUPT flag.
//
// Not thread-safe: the device serialises calls under its lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/devices/virtio/guest_ram.h"

namespace ckpt::vmm::devices::virtio {

struct QueueLayout {
  uint32_t size = 0;   // descriptors (QueueNum)
  uint64_t desc = 0;   // descriptor table
  uint64_t avail = 0;  // available ring (the "driver area")
  uint64_t used = 0;   // used ring (the "device area")
};

// One buffer of a descriptor chain.
struct Segment {
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool device_writable = false;
};

struct Chain {
  uint16_t head = 0;              // the id the used element carries
  std::vector<Segment> segments;  // in chain order: readable ones first; zero-length buffers left out
};

class SplitQueue {
 public:
  static constexpr uint32_t kMaxSize = 256;

  enum class PopOutcome {
    kEmpty,     // nothing new in the available ring
    kChain,     // a valid chain, now the device's
    kBadChain,  // a valid head whose chain is malformed: taken (its id must still be returned, with len 0)
    kBroken,    // the ring itself is unusable (index out of range, runaway available index): nothing was taken
  };
  struct Popped {
    PopOutcome outcome = PopOutcome::kEmpty;
    Chain chain;        // kChain: the buffers; kBadChain: the head only
    std::string error;  // kBadChain, kBroken: what was wrong
  };

  // Whether `layout` obeys the spec's rules and lies inside `ram`; the error names the part that does not.
  static Status check_layout(const QueueLayout& layout, const GuestRam& ram);

  // Starts using a layout that passed check_layout, continuing at the given ring positions (0, 0 for a queue the
  // driver just set up; saved ones after a restore).
  void start(const QueueLayout& layout, uint16_t last_avail_idx, uint16_t used_idx);
  void stop();
  bool running() const { return running_; }
  const QueueLayout& layout() const { return layout_; }
  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }

  // Takes the next chain from the available ring, starting at last_avail_idx.
  Popped pop(const GuestRam& ram);
  // Returns a chain: writes the used element, then publishes the used index with release ordering.
  void push(GuestRam& ram, uint16_t head, uint32_t len);
  // After push: whether the driver wants an interrupt (the available ring's NO_INTERRUPT flag is clear).
  bool interrupt_wanted(const GuestRam& ram) const;

 private:
  bool running_ = false;
  QueueLayout layout_;
  uint16_t last_avail_idx_ = 0;
  uint16_t used_idx_ = 0;
};

}  // namespace ckpt::vmm::devices::virtio
