#include "vmm/devices/virtio/guest_ram.h"

#include <bit>
#include <cstring>

namespace ckpt::vmm::devices::virtio {

static_assert(std::endian::native == std::endian::little, "virtio 1.x structures are little-endian, as is the host");

bool GuestRam::read(uint64_t gpa, void* out, uint64_t bytes) const {
  if (!contains(gpa, bytes)) return false;
  if (bytes > 0) std::memcpy(out, memory_.data() + gpa, bytes);
  return true;
}

bool GuestRam::write(uint64_t gpa, const void* data, uint64_t bytes) {
  if (!contains(gpa, bytes)) return false;
  if (bytes == 0) return true;
  std::memcpy(memory_.data() + gpa, data, bytes);
  mark_written(gpa, bytes);
  return true;
}

uint8_t* GuestRam::host(uint64_t gpa, uint64_t bytes) {
  if (!contains(gpa, bytes)) return nullptr;
  return memory_.data() + gpa;
}

void GuestRam::mark_written(uint64_t gpa, uint64_t bytes) {
  if (bytes == 0 || !contains(gpa, bytes)) return;
  if (on_write_) on_write_(gpa, bytes);
}

// The guest's vCPUs access these indices at the same time as the device: a single atomic access keeps a 16-bit
// value from being torn. The rings' alignment (checked when a queue is configured) makes the guest address even;
// a host mapping at an odd address (possible only for a caller's own buffer) falls back to a plain copy.
bool GuestRam::load_u16_acquire(uint64_t gpa, uint16_t* out) const {
  if (!contains(gpa, 2)) return false;
  uint8_t* p = memory_.data() + gpa;
  if (reinterpret_cast<uintptr_t>(p) % alignof(uint16_t) == 0) {
    *out = __atomic_load_n(reinterpret_cast<uint16_t*>(p), __ATOMIC_ACQUIRE);
  } else {
    std::memcpy(out, p, 2);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
  }
  return true;
}

bool GuestRam::store_u16_release(uint64_t gpa, uint16_t value) {
  if (!contains(gpa, 2)) return false;
  uint8_t* p = memory_.data() + gpa;
  if (reinterpret_cast<uintptr_t>(p) % alignof(uint16_t) == 0) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(p), value, __ATOMIC_RELEASE);
  } else {
    __atomic_thread_fence(__ATOMIC_RELEASE);
    std::memcpy(p, &value, 2);
  }
  mark_written(gpa, 2);
  return true;
}

}  // namespace ckpt::vmm::devices::virtio
