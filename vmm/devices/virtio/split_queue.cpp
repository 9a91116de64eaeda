#include "vmm/devices/virtio/split_queue.h"

#include <atomic>
#include <cstdio>

namespace ckpt::vmm::devices::virtio {
namespace {

constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16);

struct UsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElem) == 8);

// Bytes of each part for `size` descriptors (virtio 1.x 2.7): the rings include the event words even though
// VIRTIO_F_EVENT_IDX is not offered, as the driver allocates them anyway.
uint64_t desc_bytes(uint64_t size) { return 16 * size; }
uint64_t avail_bytes(uint64_t size) { return 6 + 2 * size; }
uint64_t used_bytes(uint64_t size) { return 6 + 8 * size; }

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Status SplitQueue::check_layout(const QueueLayout& layout, const GuestRam& ram) {
  uint64_t n = layout.size;
  if (n == 0 || n > kMaxSize || (n & (n - 1)) != 0) {
    return invalid_argument("queue size " + std::to_string(n) + " is not a power of two from 1 to " +
                            std::to_string(kMaxSize));
  }
  struct Part {
    const char* name;
    uint64_t gpa, bytes, align;
  } parts[] = {{"descriptor table", layout.desc, desc_bytes(n), 16},
               {"available ring", layout.avail, avail_bytes(n), 2},
               {"used ring", layout.used, used_bytes(n), 4}};
  for (const Part& p : parts) {
    if (p.gpa % p.align != 0) {
      return invalid_argument(std::string(p.name) + " at " + hex(p.gpa) + " is not " + std::to_string(p.align) +
                              "-byte aligned");
    }
    if (!ram.contains(p.gpa, p.bytes)) {
      return invalid_argument(std::string(p.name) + " at " + hex(p.gpa) + " (" + std::to_string(p.bytes) +
                              " bytes) is not inside guest memory (" + std::to_string(ram.size()) + " bytes)");
    }
  }
  return Status::ok();
}

void SplitQueue::start(const QueueLayout& layout, uint16_t last_avail_idx, uint16_t used_idx) {
  layout_ = layout;
  last_avail_idx_ = last_avail_idx;
  used_idx_ = used_idx;
  running_ = true;
}

void SplitQueue::stop() {
  *this = SplitQueue();
}

SplitQueue::Popped SplitQueue::pop(const GuestRam& ram) {
  Popped popped;
  if (!running_) return popped;
  auto broken = [&](std::string why) {
    popped.outcome = PopOutcome::kBroken;
    popped.error = std::move(why);
    return popped;
  };
  uint16_t avail_idx = 0;
  // Acquire: the ring entries and descriptors the driver wrote before publishing the index are read after it.
  if (!ram.load_u16_acquire(layout_.avail + 2, &avail_idx)) return broken("available ring outside guest memory");
  uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_idx_);
  if (pending == 0) return popped;
  if (pending > layout_.size) {
    return broken("available index " + std::to_string(avail_idx) + " is " + std::to_string(pending) +
                  " entries ahead of the device's " + std::to_string(last_avail_idx_) + ", more than the queue's " +
                  std::to_string(layout_.size));
  }
  uint16_t head = 0;
  uint64_t slot = layout_.avail + 4 + 2 * (last_avail_idx_ % layout_.size);
  if (!ram.read(slot, &head, sizeof head)) return broken("available ring outside guest memory");
  if (head >= layout_.size) {
    return broken("available ring entry " + std::to_string(last_avail_idx_) + " names descriptor " +
                  std::to_string(head) + " of a queue of " + std::to_string(layout_.size));
  }
  ++last_avail_idx_;
  popped.chain.head = head;

  auto bad = [&](std::string why) {
    popped.outcome = PopOutcome::kBadChain;
    popped.chain.segments.clear();
    popped.error = "chain " + std::to_string(head) + ": " + std::move(why);
    return popped;
  };
  bool seen_writable = false;
  uint16_t index = head;
  for (uint32_t count = 1;; ++count) {
    if (count > layout_.size) {
      return bad("more than " + std::to_string(layout_.size) + " descriptors (a loop)");
    }
    Desc d;
    if (!ram.read(layout_.desc + 16ull * index, &d, sizeof d)) return bad("descriptor table outside guest memory");
    if (d.flags & kDescIndirect) return bad("indirect descriptor " + std::to_string(index) + " (not offered)");
    if (!ram.contains(d.addr, d.len)) {
      return bad("descriptor " + std::to_string(index) + " buffer " + hex(d.addr) + " + " + std::to_string(d.len) +
                 " is outside guest memory");
    }
    bool writable = d.flags & kDescWrite;
    if (!writable && seen_writable) {
      return bad("device-readable descriptor " + std::to_string(index) + " after a device-writable one");
    }
    seen_writable |= writable;
    if (d.len > 0) popped.chain.segments.push_back(Segment{d.addr, d.len, writable});
    if (!(d.flags & kDescNext)) break;
    if (d.next >= layout_.size) {
      return bad("descriptor " + std::to_string(index) + " continues at " + std::to_string(d.next) +
                 ", outside the table of " + std::to_string(layout_.size));
    }
    index = d.next;
  }
  popped.outcome = PopOutcome::kChain;
  return popped;
}

void SplitQueue::push(GuestRam& ram, uint16_t head, uint32_t len) {
  if (!running_) return;
  UsedElem elem{head, len};
  (void)ram.write(layout_.used + 4 + 8ull * (used_idx_ % layout_.size), &elem, sizeof elem);
  ++used_idx_;
  // Release: the element (and the data and status bytes written before it) is visible before the new index.
  (void)ram.store_u16_release(layout_.used + 2, used_idx_);
}

bool SplitQueue::interrupt_wanted(const GuestRam& ram) const {
  // The used index store must be visible before the flag is read, or a driver that clears NO_INTERRUPT and then
  // checks the used ring could miss both the entry and the interrupt (a store-load order: a full fence).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t flags = 0;
  if (!ram.load_u16_acquire(layout_.avail, &flags)) return true;
  return !(flags & kAvailNoInterrupt);
}

}  // namespace ckpt::vmm::devices::virtio
