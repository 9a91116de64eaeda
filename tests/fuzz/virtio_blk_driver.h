// Test support for the virtio-blk device (vmm/devices/virtio), shared by its unit tests (tests/vmm/virtio_blk_test.cpp)
// and its fuzzer (virtio_blk_fuzzer.cpp):
//  * GuardedMemory: guest memory between two large inaccessible regions, so an access outside it faults at once;
//  * DirtyLog: the pages the device reports written;
//  * Driver: the steps of Linux's virtio_mmio and virtio_blk drivers (probe, negotiation, queue setup, requests);
//  * run_virtio_blk_input: one fuzz input interpreted as a guest's actions (register accesses, ring and descriptor
//    contents, requests, pause/resume, state save/load), with the device's promises checked after each step.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "vmm/devices/virtio/memory_block_backend.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtio_mmio.h"

namespace ckpt::vmm::devices::virtio::blk_test {

// `bytes` (a multiple of 4096) of zeroed memory with kGuardBytes of PROT_NONE on each side.
class GuardedMemory {
 public:
  static constexpr size_t kGuardBytes = 1 << 20;
  explicit GuardedMemory(size_t bytes) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes + 2 * kGuardBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(p);
    if (::mprotect(base_ + kGuardBytes, bytes, PROT_READ | PROT_WRITE) != 0) {
      ::munmap(base_, bytes + 2 * kGuardBytes);
      base_ = nullptr;
    }
  }
  ~GuardedMemory() {
    if (base_ != nullptr) ::munmap(base_, bytes_ + 2 * kGuardBytes);
  }
  GuardedMemory(const GuardedMemory&) = delete;
  GuardedMemory& operator=(const GuardedMemory&) = delete;
  bool ok() const { return base_ != nullptr; }
  std::span<uint8_t> span() { return {base_ + kGuardBytes, bytes_}; }

 private:
  size_t bytes_;
  uint8_t* base_ = nullptr;
};

// The device's write reports, as pages; `outside` counts reports that left the memory.
class DirtyLog {
 public:
  explicit DirtyLog(uint64_t memory_bytes) : memory_bytes_(memory_bytes) {}
  GuestRam::WriteObserver observer() {
    return [this](uint64_t gpa, uint64_t bytes) { record(gpa, bytes); };
  }
  void record(uint64_t gpa, uint64_t bytes) {
    std::lock_guard lock(mu_);
    if (bytes == 0 || gpa > memory_bytes_ || bytes > memory_bytes_ - gpa) {
      ++outside_;
      return;
    }
    for (uint64_t page = gpa / 4096; page * 4096 < gpa + bytes; ++page) pages_.insert(page);
  }
  std::set<uint64_t> take() {
    std::lock_guard lock(mu_);
    return std::exchange(pages_, {});
  }
  uint64_t outside() const {
    std::lock_guard lock(mu_);
    return outside_;
  }

 private:
  const uint64_t memory_bytes_;
  mutable std::mutex mu_;
  std::set<uint64_t> pages_;
  uint64_t outside_ = 0;
};

// Register offsets, status bits and ring layout as the drivers spell them.
namespace reg = mmio;
constexpr uint32_t kAck = reg::kStatusAcknowledge, kDrv = reg::kStatusDriver, kFeaturesOk = reg::kStatusFeaturesOk,
                   kDriverOk = reg::kStatusDriverOk;
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;

struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

// The guest side: what Linux's virtio_mmio (vm_*) and virtio_blk do, against guest memory it writes directly.
class Driver {
 public:
  Driver(VirtioBlk& dev, std::span<uint8_t> mem) : dev_(dev), mem_(mem) {}

  uint32_t read(uint64_t off) { return static_cast<uint32_t>(dev_.mmio_read(off, 4)); }
  void write(uint64_t off, uint32_t v) { dev_.mmio_write(off, 4, v); }

  // virtio_mmio_probe: magic, version 2, a device id other than 0.
  bool probe() {
    return read(reg::kMagicValue) == reg::kMagic && read(reg::kVersion) == 2 && read(reg::kDeviceId) == 2;
  }
  uint64_t device_features() {
    write(reg::kDeviceFeaturesSel, 1);
    uint64_t f = uint64_t{read(reg::kDeviceFeatures)} << 32;
    write(reg::kDeviceFeaturesSel, 0);
    return f | read(reg::kDeviceFeatures);
  }
  // virtio_dev_probe up to virtio_features_ok: reset, ACKNOWLEDGE, DRIVER, the features, FEATURES_OK read back.
  bool negotiate(uint64_t features) {
    write(reg::kStatus, 0);
    write(reg::kStatus, kAck);
    write(reg::kStatus, kAck | kDrv);
    (void)device_features();
    write(reg::kDriverFeaturesSel, 1);
    write(reg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    write(reg::kDriverFeaturesSel, 0);
    write(reg::kDriverFeatures, static_cast<uint32_t>(features));
    write(reg::kStatus, kAck | kDrv | kFeaturesOk);
    return (read(reg::kStatus) & kFeaturesOk) != 0;
  }
  // vm_setup_vq. The rings must be zeroed already (Linux allocates them zeroed).
  bool setup_queue(uint32_t num, uint64_t desc, uint64_t avail, uint64_t used) {
    write(reg::kQueueSel, 0);
    if (read(reg::kQueueReady) != 0) return false;
    uint32_t max = read(reg::kQueueNumMax);
    if (max == 0 || num > max) return false;
    write(reg::kQueueNum, num);
    write(reg::kQueueDescLow, static_cast<uint32_t>(desc));
    write(reg::kQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    write(reg::kQueueDriverLow, static_cast<uint32_t>(avail));
    write(reg::kQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
    write(reg::kQueueDeviceLow, static_cast<uint32_t>(used));
    write(reg::kQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
    write(reg::kQueueReady, 1);
    num_ = num;
    desc_ = desc;
    avail_ = avail;
    used_ = used;
    next_desc_ = 0;
    avail_idx_ = 0;
    configured_ = true;
    return read(reg::kQueueReady) == 1;
  }
  void driver_ok() { write(reg::kStatus, kAck | kDrv | kFeaturesOk | kDriverOk); }
  // The whole sequence, accepting every offered feature (Linux knows them all), with the descriptor table, the
  // available ring and the used ring on the three pages from `base`.
  bool bring_up(uint32_t num, uint64_t base) {
    bool ok = probe() && negotiate(device_features()) && setup_queue(num, base, base + 4096, base + 8192);
    driver_ok();
    return ok;
  }

  // Writes descriptors for `bufs` at the next free indices (sequential, wrapping) with the given extra flags on
  // each, returns the head. Not yet available to the device.
  uint16_t write_chain(const std::vector<Buf>& bufs, uint16_t extra_flags = 0) {
    uint16_t head = static_cast<uint16_t>(next_desc_ % num_);
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t index = static_cast<uint16_t>((next_desc_ + i) % num_);
      uint16_t next = static_cast<uint16_t>((next_desc_ + i + 1) % num_);
      uint16_t flags = static_cast<uint16_t>((bufs[i].writable ? kDescWrite : 0) |
                                             (i + 1 < bufs.size() ? kDescNext : 0) | extra_flags);
      put_desc(index, bufs[i].gpa, bufs[i].len, flags, next);
    }
    next_desc_ = static_cast<uint32_t>((next_desc_ + bufs.size()) % num_);
    return head;
  }
  void put_desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    poke(desc_ + 16ull * index, d, sizeof d);
  }
  // virtqueue_add's last step: the head into the ring, then (after a write barrier) the index.
  void make_available(uint16_t head) {
    poke(avail_ + 4 + 2 * (avail_idx_ % num_), &head, 2);
    set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    if (uint16_t* p = aligned_u16(avail_ + 2)) return __atomic_store_n(p, idx, __ATOMIC_RELEASE);
    poke(avail_ + 2, &idx, 2);  // a ring the device refused: not shared with it
  }
  void set_avail_flags(uint16_t flags) { poke(avail_, &flags, 2); }
  uint16_t add(const std::vector<Buf>& bufs, uint16_t extra_flags = 0) {
    uint16_t head = write_chain(bufs, extra_flags);
    make_available(head);
    return head;
  }
  void notify() { write(reg::kQueueNotify, 0); }

  // A virtio-blk request header at `gpa`.
  void put_header(uint64_t gpa, uint32_t type, uint64_t sector) {
    uint8_t h[16] = {};
    std::memcpy(h, &type, 4);
    std::memcpy(h + 8, &sector, 8);
    poke(gpa, h, sizeof h);
  }
  // A ring index the device accesses concurrently, for an atomic access; nullptr if odd or outside memory.
  uint16_t* aligned_u16(uint64_t gpa) const {
    if (gpa % 2 != 0 || gpa >= mem_.size() || mem_.size() - gpa < 2) return nullptr;
    return reinterpret_cast<uint16_t*>(mem_.data() + gpa);
  }
  // The guest's own accesses to its memory; whatever falls outside it is dropped (reads as zero).
  void poke(uint64_t gpa, const void* src, size_t len) {
    for (size_t i = 0; i < len && gpa < mem_.size() && i < mem_.size() - gpa; ++i) {
      mem_[gpa + i] = static_cast<const uint8_t*>(src)[i];
    }
  }
  void peek(uint64_t gpa, void* dst, size_t len) const {
    std::memset(dst, 0, len);
    for (size_t i = 0; i < len && gpa < mem_.size() && i < mem_.size() - gpa; ++i) {
      static_cast<uint8_t*>(dst)[i] = mem_[gpa + i];
    }
  }

  uint16_t used_idx() const {
    if (uint16_t* p = aligned_u16(used_ + 2)) return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    uint16_t idx = 0;
    peek(used_ + 2, &idx, 2);
    return idx;
  }
  UsedElem used_elem(uint16_t i) const {
    UsedElem e{};
    peek(used_ + 4 + 8 * (i % num_), &e, 8);
    return e;
  }
  uint16_t avail_idx() const { return avail_idx_; }
  uint32_t num() const { return num_; }
  bool configured() const { return configured_; }
  // Takes over another driver's rings and positions: the same guest after a restore.
  void continue_from(const Driver& other) {
    num_ = other.num_;
    desc_ = other.desc_;
    avail_ = other.avail_;
    used_ = other.used_;
    next_desc_ = other.next_desc_;
    avail_idx_ = other.avail_idx_;
    configured_ = other.configured_;
  }
  uint64_t desc() const { return desc_; }
  uint64_t avail() const { return avail_; }
  uint64_t used() const { return used_; }
  // vm_interrupt: read InterruptStatus, acknowledge what it says.
  uint32_t take_interrupt() {
    uint32_t s = read(reg::kInterruptStatus);
    write(reg::kInterruptAck, s);
    return s;
  }

 private:
  VirtioBlk& dev_;
  std::span<uint8_t> mem_;
  uint32_t num_ = 1;
  uint64_t desc_ = 0, avail_ = 0, used_ = 0;
  uint32_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
  bool configured_ = false;
};

// ---- The fuzz input interpreter ----

// Bytes consumed front to back; zeros once they run out.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return n_ == 0; }
  uint8_t u8() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (uint32_t{u16()} << 16); }
  uint64_t u64() { return u32() | (uint64_t{u32()} << 32); }

 private:
  const uint8_t* p_;
  size_t n_;
};

// A register offset: mostly a multiple of 4, sometimes any; up to a little past the window.
inline uint64_t pick_offset(FuzzInput& in) {
  uint16_t o = in.u16();
  constexpr uint64_t kSpan = reg::kWindowBytes + 0x40;
  return (o & 0x8000) ? o % kSpan : (o % (kSpan / 4)) * 4;
}

// Interprets one input; returns "" if every check held, else what failed. Deterministic: the device runs on the
// in-memory backend, whose operations complete inline.
inline std::string run_virtio_blk_input(const uint8_t* data, size_t size) {
  constexpr uint64_t kMemBytes = 64 * 1024;
  FuzzInput in(data, size);
  uint8_t setup = in.u8();
  uint64_t disk_bytes = 4096ull * (1 + setup % 16);
  bool read_only = setup & 0x80;

  GuardedMemory memory(kMemBytes);
  if (!memory.ok()) return "";  // no memory for the guard regions: nothing to test
  std::span<uint8_t> mem = memory.span();
  DirtyLog dirty(kMemBytes);
  auto backend_owned = std::make_unique<MemoryBlockBackend>(disk_bytes, read_only, "fuzz.img");
  MemoryBlockBackend* backend = backend_owned.get();
  // Disk bytes unlike zeroed memory, so that every read changes the memory it fills (and must be reported).
  for (size_t i = 0; i < backend->image().size(); ++i) backend->image()[i] = static_cast<uint8_t>(i * 13 + 7);
  uint64_t irqs = 0;
  VirtioBlk dev(GuestRam(mem, dirty.observer()), std::move(backend_owned), [&irqs] { ++irqs; });
  Driver drv(dev, mem);
  std::vector<uint8_t> shadow(mem.begin(), mem.end());

  // What the guest itself wrote is not the device's: the shadow follows it.
  auto guest_wrote = [&] { std::copy(mem.begin(), mem.end(), shadow.begin()); };
  // Every page the device changed since the last check must have been reported.
  auto check = [&]() -> std::string {
    std::set<uint64_t> reported = dirty.take();
    for (uint64_t page = 0; page < kMemBytes / 4096; ++page) {
      if (std::memcmp(mem.data() + page * 4096, shadow.data() + page * 4096, 4096) != 0 && !reported.count(page)) {
        return "page " + std::to_string(page) + " changed by the device but not reported dirty";
      }
    }
    guest_wrote();
    if (dirty.outside() != 0) return "a write report outside guest memory";
    if (backend->out_of_range() != 0) return "a disk operation outside the disk";
    if (dev.mmio_read(reg::kMagicValue, 4) != reg::kMagic) return "the magic value changed";
    return "";
  };

  static constexpr unsigned kWidths[8] = {4, 4, 4, 4, 1, 2, 8, 3};
  for (unsigned step = 0; step < 512 && !in.empty(); ++step) {
    uint8_t op = in.u8();
    switch (op % 10) {
      case 0: {  // a register write, mostly 32-bit, aligned, inside the window, of a small value
        uint64_t offset = pick_offset(in);
        unsigned width = kWidths[in.u8() % 8];
        uint8_t v = in.u8();
        dev.mmio_write(offset, width, (v & 0x80) ? in.u64() : v);
        break;
      }
      case 1: {  // a register read
        uint64_t offset = pick_offset(in);
        (void)dev.mmio_read(offset, kWidths[in.u8() % 8]);
        break;
      }
      case 2: {  // the guest writes memory: ring entries, descriptors, headers
        uint64_t gpa = in.u16() % kMemBytes;
        unsigned len = in.u8() % 64;
        for (unsigned i = 0; i < len && gpa + i < kMemBytes; ++i) mem[gpa + i] = in.u8();
        guest_wrote();
        break;
      }
      case 3: {  // the Linux bring-up, with queue parameters from the input
        uint32_t num = 1u << (in.u8() % 10);  // 512 is refused
        uint8_t where = in.u8();
        uint64_t desc = 0, avail = 4096 * 4, used = 4096 * 5;
        if (where & 1) {  // anywhere, aligned or not, inside memory or not
          desc = in.u32() % (kMemBytes + 8192);
          avail = in.u32() % (kMemBytes + 8192);
          used = in.u32() % (kMemBytes + 8192);
        }
        uint64_t features = (where & 2) ? in.u64() : dev.offered_features();
        std::fill(mem.begin() + 4096 * 4, mem.begin() + 4096 * 6, 0);
        guest_wrote();
        if (drv.probe() && drv.negotiate(features)) (void)drv.setup_queue(num, desc, avail, used);
        drv.driver_ok();
        break;
      }
      case 4: {  // a request: well formed, or (one in eight) damaged as the next byte says
        if (!drv.configured()) break;
        uint8_t shape = in.u8();
        uint8_t damage = (shape & 0x70) == 0 ? in.u8() : 0;
        static constexpr uint32_t kTypes[] = {blk::kTypeIn, blk::kTypeOut, blk::kTypeFlush, blk::kTypeGetId};
        uint32_t type = (damage & 0x80) ? in.u32() : kTypes[shape % 4];
        uint64_t sector = in.u16() % (disk_bytes / 512 + 4);
        unsigned segs = in.u8() % 5;
        // Headers, data and status bytes in pages 8..15, apart from the rings (pages 4 and 5 unless moved).
        uint64_t header = std::min<uint64_t>(8 * 4096 + in.u16() % (8 * 4096), kMemBytes - 16);
        drv.put_header(header, type, sector);
        std::vector<Buf> bufs{{header, 16, bool(damage & 0x10)}};
        bool writes_data = type == blk::kTypeIn || type == blk::kTypeGetId;
        for (unsigned i = 0; i < segs; ++i) {
          uint32_t len = (damage & 0x20) ? in.u16() : 512u * (1 + in.u8() % 8);
          uint64_t gpa = std::min<uint64_t>(8 * 4096 + in.u16() % (8 * 4096), kMemBytes - len);
          if (damage & 0x40) gpa = in.u64();  // anywhere at all
          bufs.push_back({gpa, len, writes_data != bool(damage & 0x08)});
        }
        uint64_t status = 8 * 4096 + in.u16() % (8 * 4096);
        if (!(damage & 0x04)) bufs.push_back({status, 1, true});
        uint16_t head = drv.write_chain(bufs, (damage & 0x02) ? kDescIndirect : 0);
        if (damage & 0x01) {  // the last descriptor continues at the head: a loop
          uint16_t last = static_cast<uint16_t>((head + bufs.size() - 1) % drv.num());
          drv.put_desc(last, bufs.back().gpa, bufs.back().len, kDescNext | kDescWrite, head);
        }
        drv.make_available((damage & 0x06) == 0x06 ? in.u16() : head);
        guest_wrote();
        drv.notify();
        break;
      }
      case 5: {  // the available index set anywhere, then a notify
        if (!drv.configured()) break;
        drv.set_avail_idx(in.u16());
        guest_wrote();
        drv.notify();
        break;
      }
      case 6: {  // a checkpoint's quiesce, and the way back
        if (!dev.pause(std::chrono::milliseconds(0)).is_ok()) return "pause failed with nothing in flight";
        if (in.u8() & 1) {  // a notify while paused must not be served until resume
          uint16_t before = dev.last_avail_idx();
          drv.notify();
          if (dev.last_avail_idx() != before) return "a paused device took a request";
          if (std::string e = check(); !e.empty()) return e;
          if (!dirty.take().empty()) return "a paused device wrote guest memory";
        }
        dev.resume();
        break;
      }
      case 7: {  // state: saved and loaded back, then a damaged copy
        std::vector<uint8_t> blob = dev.save_state();
        Status back = dev.load_state(blob);
        if (!back.is_ok()) return "the device's own state was refused: " + back.to_string();
        if (dev.save_state() != blob) return "save/load/save changed the state";
        std::vector<uint8_t> damaged = blob;
        size_t at = in.u8() % (damaged.size() + 1);
        if (at < damaged.size()) damaged[at] ^= static_cast<uint8_t>(in.u8() | 1);
        else damaged.push_back(in.u8());
        if (dev.load_state(damaged).is_ok() && in.u8() % 2 == 0) break;  // carry on from the damaged state
        if (!dev.load_state(blob).is_ok()) return "the device's own state was refused after a damaged one";
        break;
      }
      case 8: {  // the daemon harvests written blocks
        std::vector<uint64_t> blocks = dev.take_written_blocks();
        for (size_t i = 0; i < blocks.size(); ++i) {
          if (blocks[i] >= disk_bytes / 4096) return "written block " + std::to_string(blocks[i]) + " past the disk";
          if (i > 0 && blocks[i] <= blocks[i - 1]) return "written blocks not ascending and unique";
        }
        if (in.u8() & 1) dev.return_written_blocks(blocks);
        break;
      }
      case 9:  // the disk fails, or recovers
        backend->fail_with((in.u8() & 1) ? 5 /* EIO */ : 0);
        break;
    }
    if (std::string e = check(); !e.empty()) return "step " + std::to_string(step) + ": " + e;
    if (dev.requests_in_flight() != 0) return "a request left in flight by a synchronous backend";
  }
  (void)irqs;
  return "";
}

}  // namespace ckpt::vmm::devices::virtio::blk_test
