// Guest-physical memory as a device model sees it: one host mapping of the guest's RAM, gpa [0, size), with every
// access bounds-checked, so that no address a guest hands the device can reach host memory outside the mapping.
//
// Every range the device writes is reported to the write observer: KVM's dirty log sees only what the guest itself
// writes, so without the report an epoch would miss a used-ring update, a status byte or the data of a disk read.
// Ranges the host kernel fills on the device's behalf (io_uring reading the disk into guest memory) are reported by
// the device through mark_written once the data is there.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>

namespace ckpt::vmm::devices::virtio {

class GuestRam {
 public:
  // Receives each range the device wrote: (gpa, bytes), always inside the memory. Called on whichever thread made
  // the write (a vCPU thread or the disk's I/O thread); must be thread-safe (GuestMemory::mark_dirty is).
  using WriteObserver = std::function<void(uint64_t gpa, uint64_t bytes)>;

  GuestRam(std::span<uint8_t> memory, WriteObserver on_write) : memory_(memory), on_write_(std::move(on_write)) {}

  uint64_t size() const { return memory_.size(); }
  // Whether [gpa, gpa + bytes) lies inside the memory; immune to overflow of gpa + bytes.
  bool contains(uint64_t gpa, uint64_t bytes) const { return gpa <= size() && bytes <= size() - gpa; }

  // Copies out of / into guest memory; false (and nothing copied) when the range is not wholly inside.
  bool read(uint64_t gpa, void* out, uint64_t bytes) const;
  bool write(uint64_t gpa, const void* data, uint64_t bytes);  // reports the range

  // The host address of [gpa, gpa + bytes) for I/O the host kernel performs, or nullptr when not wholly inside.
  // Writes made through it are not seen here: the caller reports them with mark_written.
  uint8_t* host(uint64_t gpa, uint64_t bytes);
  void mark_written(uint64_t gpa, uint64_t bytes);

  // The 16-bit ring indices that the guest's vCPUs read and write concurrently with the device: a load with
  // acquire ordering (what the driver published before the index is visible after it) and a store with release
  // ordering (what the device wrote before, the used element, is visible before the index). False when outside.
  bool load_u16_acquire(uint64_t gpa, uint16_t* out) const;
  bool store_u16_release(uint64_t gpa, uint16_t value);

 private:
  std::span<uint8_t> memory_;
  WriteObserver on_write_;
};

}  // namespace ckpt::vmm::devices::virtio
