// The virtio-blk device over virtio-mmio, driven the way Linux's virtio_mmio and virtio_blk drivers drive it:
// probe, feature negotiation, queue setup, requests; the answers to malformed requests and broken rings; the pages
// the device reports written; written-block tracking; pause with io_uring requests in flight; state save/load; and
// the fuzzer's loop (tests/fuzz/virtio_blk_driver.h) over fixed-seed random inputs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "tests/fuzz/virtio_blk_driver.h"
#include "vmm/devices/virtio/block_set.h"
#include "vmm/devices/virtio/uring_block_backend.h"
#include "vmm/devices/virtio/virtio_blk_state.h"
#include "vmm/guest_memory.h"

namespace ckpt::vmm::devices::virtio {
namespace {

using namespace std::chrono_literals;
using blk_test::Buf;
using blk_test::DirtyLog;
using blk_test::Driver;
using blk_test::GuardedMemory;
namespace reg = mmio;

constexpr uint64_t kMemBytes = 1 << 20;
constexpr uint64_t kRings = 0x10000;  // descriptor table, then the available ring, then the used ring
constexpr uint64_t kUsedPage = kRings / 4096 + 2;
constexpr uint64_t kHeaders = 0x14000, kStatuses = 0x15000;
constexpr uint64_t kData = 0x20000;
constexpr uint64_t kDiskBytes = 256 * 1024;
constexpr uint64_t kVersion1 = reg::kFeatureVersion1;

std::set<uint64_t> pages_of(uint64_t gpa, uint64_t bytes) {
  std::set<uint64_t> pages;
  for (uint64_t p = gpa / 4096; p * 4096 < gpa + bytes; ++p) pages.insert(p);
  return pages;
}
std::set<uint64_t> operator+(std::set<uint64_t> a, const std::set<uint64_t>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

// A guest with one virtio-blk device on an in-memory disk (or the backend a test gives).
struct Guest {
  GuardedMemory memory{kMemBytes};
  std::span<uint8_t> mem = memory.span();
  DirtyLog dirty{kMemBytes};
  std::atomic<int> irqs{0};
  MemoryBlockBackend* disk = nullptr;  // when the in-memory backend is used
  std::unique_ptr<VirtioBlk> dev;
  std::unique_ptr<Driver> drv;
  unsigned slot = 0;  // the next request's header and status slot

  explicit Guest(bool read_only = false, uint64_t disk_bytes = kDiskBytes) {
    auto backend = std::make_unique<MemoryBlockBackend>(disk_bytes, read_only, "/images/disk0.img");
    disk = backend.get();
    attach(std::move(backend));
  }
  explicit Guest(std::unique_ptr<BlockBackend> backend) { attach(std::move(backend)); }
  void attach(std::unique_ptr<BlockBackend> backend) {
    dev = std::make_unique<VirtioBlk>(GuestRam(mem, dirty.observer()), std::move(backend), [this] { ++irqs; });
    drv = std::make_unique<Driver>(*dev, mem);
  }

  bool bring_up(uint32_t num = 128) { return drv->bring_up(num, kRings); }

  struct Req {
    uint16_t head;
    uint64_t status;
  };
  // A request laid out as virtio_blk lays it out: header, data buffers, status byte. The status byte starts at
  // 0xee so that an unwritten one shows.
  Req submit(uint32_t type, uint64_t sector, std::vector<Buf> data, bool notify = true) {
    uint64_t header = kHeaders + 16 * (slot % 256), status = kStatuses + (slot % 4096);
    ++slot;
    drv->put_header(header, type, sector);
    mem[status] = 0xee;
    std::vector<Buf> bufs{{header, 16, false}};
    bufs.insert(bufs.end(), data.begin(), data.end());
    bufs.push_back({status, 1, true});
    uint16_t head = drv->add(bufs);
    if (notify) drv->notify();
    return {head, status};
  }
  void fill(uint64_t gpa, uint64_t bytes, uint8_t seed) {
    for (uint64_t i = 0; i < bytes; ++i) mem[gpa + i] = static_cast<uint8_t>(seed + i * 7);
  }
  bool holds(uint64_t gpa, uint64_t bytes, uint8_t seed) const {
    for (uint64_t i = 0; i < bytes; ++i) {
      if (mem[gpa + i] != static_cast<uint8_t>(seed + i * 7)) return false;
    }
    return true;
  }
};

// ---- Registers and negotiation ----

TEST(VirtioBlk, ProbeRegistersAndConfigSpace) {
  Guest g;
  Driver& d = *g.drv;
  EXPECT_TRUE(d.probe());
  EXPECT_EQ(d.read(reg::kVendorId), reg::kVendor);
  EXPECT_EQ(d.read(reg::kQueueNumMax), 256u);
  EXPECT_EQ(d.device_features(), kVersion1 | VirtioBlk::kFeatureSegMax | VirtioBlk::kFeatureFlush);
  // virtio_cread for a u64 on virtio-mmio v2: two 32-bit reads; the capacity is in 512-byte sectors.
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 0, 4), kDiskBytes / 512);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 4, 4), 0u);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 0, 8), kDiskBytes / 512);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 12, 4), 254u) << "seg_max: the queue's size less header and status";
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 12, 1), 254u);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 8, 4), 0u) << "size_max: not offered";
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 0xfc, 4), 0u);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig + 0xfc, 8), 0u) << "runs past the window";
  EXPECT_EQ(d.read(reg::kShmLenLow), 0xffffffffu) << "no shared memory region";
  EXPECT_EQ(d.read(reg::kShmLenHigh), 0xffffffffu);
  EXPECT_EQ(d.read(reg::kConfigGeneration), 0u);
  // Wrong widths and offsets without a register read 0.
  EXPECT_EQ(g.dev->mmio_read(reg::kMagicValue, 2), 0u);
  EXPECT_EQ(g.dev->mmio_read(reg::kMagicValue, 8), 0u);
  EXPECT_EQ(g.dev->mmio_read(reg::kMagicValue + 1, 4), 0u);
  EXPECT_EQ(g.dev->mmio_read(0x0e0, 4), 0u);
  EXPECT_EQ(g.dev->mmio_read(reg::kWindowBytes, 4), 0u);
  EXPECT_EQ(g.dev->mmio_read(~uint64_t{0} - 1, 8), 0u);
  d.write(reg::kDeviceFeaturesSel, 7);
  EXPECT_EQ(d.read(reg::kDeviceFeatures), 0u);

  Guest ro(true);
  EXPECT_EQ(ro.drv->device_features(),
            kVersion1 | VirtioBlk::kFeatureSegMax | VirtioBlk::kFeatureFlush | VirtioBlk::kFeatureRo);
  EXPECT_TRUE(ro.dev->read_only());
}

TEST(VirtioBlk, FeatureNegotiationAcceptsOnlyOfferedBits) {
  Guest g;
  Driver& d = *g.drv;
  uint64_t offered = d.device_features();
  constexpr uint64_t kEventIdx = 1ull << 29, kIndirect = 1ull << 28, kDiscard = 1ull << 13;
  EXPECT_FALSE(d.negotiate(offered | kEventIdx)) << "EVENT_IDX is not offered";
  EXPECT_FALSE(d.negotiate(offered | kIndirect)) << "INDIRECT_DESC is not offered";
  EXPECT_FALSE(d.negotiate(offered | kDiscard));
  EXPECT_FALSE(d.negotiate(offered | VirtioBlk::kFeatureRo)) << "RO is offered only for a read-only disk";
  EXPECT_FALSE(d.negotiate(offered & ~kVersion1)) << "a legacy driver is refused";
  EXPECT_TRUE(d.negotiate(kVersion1)) << "accepting less than offered is fine";
  EXPECT_TRUE(d.negotiate(offered));
  // Features are frozen once FEATURES_OK is set.
  d.write(reg::kDriverFeaturesSel, 0);
  d.write(reg::kDriverFeatures, 0xffffffff);
  std::vector<uint8_t> state = g.dev->save_state();
  auto decoded = decode_virtio_blk_state(state);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(decoded->transport.driver_features, offered);
  // A bit above 63 (selector 2) is a feature no device offers.
  d.write(reg::kStatus, 0);
  d.write(reg::kStatus, blk_test::kAck | blk_test::kDrv);
  d.write(reg::kDriverFeaturesSel, 2);
  d.write(reg::kDriverFeatures, 1);
  d.write(reg::kDriverFeaturesSel, 1);
  d.write(reg::kDriverFeatures, 1);
  d.write(reg::kStatus, blk_test::kAck | blk_test::kDrv | blk_test::kFeaturesOk);
  EXPECT_EQ(d.read(reg::kStatus) & blk_test::kFeaturesOk, 0u);
  // A refused negotiation leaves the device unusable until a reset: requests are not served.
  ASSERT_TRUE(d.setup_queue(16, kRings, kRings + 4096, kRings + 8192));
  d.driver_ok();
  g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(d.used_idx(), 0);
  EXPECT_EQ(g.dev->last_avail_idx(), 0);
}

TEST(VirtioBlk, IgnoresWrongWidthsUnknownOffsetsAndConfigWrites) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  std::vector<uint8_t> before = g.dev->save_state();
  g.dev->mmio_write(reg::kStatus, 1, 0);  // a byte-wide reset: ignored
  g.dev->mmio_write(reg::kStatus, 8, 0);
  g.dev->mmio_write(reg::kStatus + 2, 4, 0);
  g.dev->mmio_write(reg::kQueueSel, 2, 5);
  g.dev->mmio_write(0x0e0, 4, 0xffffffff);
  g.dev->mmio_write(reg::kWindowBytes + 0x70, 4, 0);
  g.dev->mmio_write(~uint64_t{0}, 8, ~uint64_t{0});
  g.dev->mmio_write(reg::kConfig, 8, 1);  // capacity is read-only
  g.dev->mmio_write(reg::kMagicValue, 4, 0);
  g.dev->mmio_write(reg::kQueueNotify, 4, 1);  // a queue that does not exist
  EXPECT_EQ(g.dev->save_state(), before);
  EXPECT_EQ(g.dev->mmio_read(reg::kConfig, 8), kDiskBytes / 512);
  EXPECT_EQ(g.irqs, 0);
  // Queue registers do not change while the queue is ready.
  g.drv->write(reg::kQueueNum, 8);
  g.drv->write(reg::kQueueDescLow, 0x5000);
  EXPECT_EQ(g.dev->save_state(), before);
}

TEST(VirtioBlk, QueueLayoutIsChecked) {
  struct Case {
    const char* what;
    uint32_t num;
    uint64_t desc, avail, used;
  } cases[] = {
      {"size not a power of two", 3, kRings, kRings + 4096, kRings + 8192},
      {"size over QueueNumMax", 512, kRings, kRings + 8192, kRings + 16384},
      {"size 0", 0, kRings, kRings + 4096, kRings + 8192},
      {"descriptor table not 16-aligned", 16, kRings + 8, kRings + 4096, kRings + 8192},
      {"available ring not 2-aligned", 16, kRings, kRings + 4097, kRings + 8192},
      {"used ring not 4-aligned", 16, kRings, kRings + 4096, kRings + 8194},
      {"descriptor table past the end", 256, kMemBytes - 2048, kRings + 4096, kRings + 8192},
      {"used ring past the end", 16, kRings, kRings + 4096, kMemBytes - 64},
      {"available ring far outside", 16, kRings, 0xfffffffffffff000, kRings + 8192},
      {"used ring wrapping around", 16, kRings, kRings + 4096, ~uint64_t{0} - 3},
  };
  for (const Case& c : cases) {
    Guest g;
    ASSERT_TRUE(g.drv->probe() && g.drv->negotiate(g.drv->device_features()));
    EXPECT_FALSE(g.drv->setup_queue(c.num, c.desc, c.avail, c.used)) << c.what;
  }
  Guest g;
  ASSERT_TRUE(g.drv->probe() && g.drv->negotiate(g.drv->device_features()));
  EXPECT_TRUE(g.drv->setup_queue(256, kMemBytes - 4096 - 8192, kMemBytes - 4096 - 8192 + 4096, kMemBytes - 4096))
      << "rings ending at the last byte of memory";
  g.drv->write(reg::kQueueSel, 1);
  EXPECT_EQ(g.drv->read(reg::kQueueNumMax), 0u) << "only queue 0 exists";
  EXPECT_EQ(g.drv->read(reg::kQueueReady), 0u);
}

// ---- Requests as Linux makes them ----

TEST(VirtioBlk, WriteReadFlushGetIdLikeLinux) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.dirty.take();

  // T_OUT: two sectors from two pages of guest memory (sg entries of 512 bytes each).
  g.fill(kData, 512, 1);
  g.fill(kData + 4096, 512, 2);
  auto w = g.submit(blk::kTypeOut, 3, {{kData, 512, false}, {kData + 4096, 512, false}});
  ASSERT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.drv->used_elem(0).id, w.head);
  EXPECT_EQ(g.drv->used_elem(0).len, 1u) << "only the status byte was written";
  EXPECT_EQ(g.mem[w.status], blk::kStatusOk);
  EXPECT_EQ(g.irqs, 1);
  EXPECT_EQ(g.drv->take_interrupt(), reg::kInterruptUsedBuffer);
  EXPECT_EQ(g.drv->read(reg::kInterruptStatus), 0u) << "acknowledged";
  EXPECT_TRUE(std::equal(g.mem.begin() + kData, g.mem.begin() + kData + 512, g.disk->image().begin() + 3 * 512));
  EXPECT_TRUE(
      std::equal(g.mem.begin() + kData + 4096, g.mem.begin() + kData + 4096 + 512, g.disk->image().begin() + 4 * 512));
  EXPECT_EQ(g.dirty.take(), pages_of(w.status, 1) + std::set<uint64_t>{kUsedPage});

  // T_IN of the same sectors into other pages, one buffer spanning a page boundary.
  uint64_t into = kData + 0x10000 - 256;
  auto r = g.submit(blk::kTypeIn, 3, {{into, 1024, true}});
  ASSERT_EQ(g.drv->used_idx(), 2);
  EXPECT_EQ(g.drv->used_elem(1).id, r.head);
  EXPECT_EQ(g.drv->used_elem(1).len, 1025u) << "data and status";
  EXPECT_EQ(g.mem[r.status], blk::kStatusOk);
  EXPECT_TRUE(g.holds(into, 512, 1));
  EXPECT_TRUE(g.holds(into + 512, 512, 2));
  EXPECT_EQ(g.dirty.take(), pages_of(into, 1024) + pages_of(r.status, 1) + std::set<uint64_t>{kUsedPage});

  // T_FLUSH: header and status only.
  auto f = g.submit(blk::kTypeFlush, 0, {});
  ASSERT_EQ(g.drv->used_idx(), 3);
  EXPECT_EQ(g.mem[f.status], blk::kStatusOk);
  EXPECT_EQ(g.disk->flushes(), 1u);
  EXPECT_EQ(g.dirty.take(), pages_of(f.status, 1) + std::set<uint64_t>{kUsedPage});

  // T_GET_ID into a 20-byte buffer: the image's file name, NUL-padded.
  uint64_t id = kData + 0x30000;
  std::fill(g.mem.begin() + id, g.mem.begin() + id + 20, 0x55);
  auto i = g.submit(blk::kTypeGetId, 0, {{id, 20, true}});
  ASSERT_EQ(g.drv->used_idx(), 4);
  EXPECT_EQ(g.mem[i.status], blk::kStatusOk);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&g.mem[id]), 20),
            std::string("disk0.img") + std::string(11, '\0'));
  EXPECT_EQ(g.drv->used_elem(3).len, 21u);
  EXPECT_EQ(g.dirty.take(), pages_of(id, 20) + pages_of(i.status, 1) + std::set<uint64_t>{kUsedPage});
  EXPECT_EQ(g.irqs, 4);
  EXPECT_EQ(g.dev->requests_in_flight(), 0u);
}

TEST(VirtioBlk, AnyDescriptorLayout) {
  // VIRTIO_F_VERSION_1 implies any layout: the header may share a buffer with the data, the status with the data.
  Guest g;
  ASSERT_TRUE(g.bring_up());
  uint64_t buf = kData;
  g.drv->put_header(buf, blk::kTypeOut, 10);
  g.fill(buf + 16, 1024, 9);
  uint64_t st = kStatuses;
  g.drv->add({{buf, 16 + 1024, false}, {st, 1, true}});
  g.drv->notify();
  ASSERT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.mem[st], blk::kStatusOk);
  EXPECT_TRUE(std::equal(g.mem.begin() + buf + 16, g.mem.begin() + buf + 16 + 1024, g.disk->image().begin() + 5120));

  // T_IN with the header split in two and the data and status in one buffer.
  uint64_t h = kHeaders;
  g.drv->put_header(h, blk::kTypeIn, 10);
  uint64_t in = kData + 0x8000;
  g.drv->add({{h, 8, false}, {h + 8, 8, false}, {in, 1024 + 1, true}});
  g.drv->notify();
  ASSERT_EQ(g.drv->used_idx(), 2);
  EXPECT_EQ(g.mem[in + 1024], blk::kStatusOk);
  EXPECT_TRUE(g.holds(in, 1024, 9));
}

TEST(VirtioBlk, NoInterruptFlagSuppressesTheInterrupt) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.drv->set_avail_flags(1);  // VRING_AVAIL_F_NO_INTERRUPT: virtqueue_disable_cb
  g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.irqs, 0);
  EXPECT_EQ(g.drv->read(reg::kInterruptStatus), 0u);
  g.drv->set_avail_flags(0);
  g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(g.irqs, 1);
}

// ---- Malformed requests: an error answer, and the device carries on ----

TEST(VirtioBlk, MalformedRequestsAreAnsweredWithAnError) {
  struct Case {
    const char* what;
    bool read_only;
    std::function<std::vector<Buf>(Guest&, uint64_t status)> chain;
    uint8_t expect;  // the status byte
  };
  // Header, one data buffer, status byte: the usual shape with one thing wrong.
  auto with_data = [](uint32_t type, uint64_t sector, Buf data) {
    return [=](Guest& g, uint64_t st) {
      g.drv->put_header(kHeaders, type, sector);
      return std::vector<Buf>{{kHeaders, 16, false}, data, {st, 1, true}};
    };
  };
  constexpr uint64_t kSectors = kDiskBytes / 512;
  constexpr uint8_t kIoErr = blk::kStatusIoErr, kUnsupp = blk::kStatusUnsupp;
  Case cases[] = {
      {"header of 8 bytes", false,
       [](Guest&, uint64_t st) { return std::vector<Buf>{{kHeaders, 8, false}, {st, 1, true}}; }, kIoErr},
      {"device-writable header", false,
       [](Guest& g, uint64_t st) {
         g.drv->put_header(kHeaders, blk::kTypeIn, 0);
         return std::vector<Buf>{{kHeaders, 16, true}, {kData, 512, true}, {st, 1, true}};
       },
       kIoErr},
      {"T_IN of 100 bytes", false, with_data(blk::kTypeIn, 0, {kData, 100, true}), kIoErr},
      {"T_OUT of 513 bytes", false, with_data(blk::kTypeOut, 0, {kData, 513, false}), kIoErr},
      {"T_IN past the capacity", false, with_data(blk::kTypeIn, kSectors, {kData, 512, true}), kIoErr},
      {"T_OUT straddling the end", false, with_data(blk::kTypeOut, kSectors - 1, {kData, 1024, false}), kIoErr},
      {"sector overflowing", false, with_data(blk::kTypeOut, ~uint64_t{0} / 512 + 1, {kData, 512, false}), kIoErr},
      {"sector near 2^64", false, with_data(blk::kTypeIn, ~uint64_t{0}, {kData, 512, true}), kIoErr},
      {"T_OUT to a read-only disk", true, with_data(blk::kTypeOut, 0, {kData, 512, false}), kIoErr},
      {"T_IN with device-readable data", false, with_data(blk::kTypeIn, 0, {kData, 512, false}), kIoErr},
      {"T_OUT with device-writable data", false, with_data(blk::kTypeOut, 0, {kData, 512, true}), kIoErr},
      {"T_FLUSH with data", false, with_data(blk::kTypeFlush, 0, {kData, 512, true}), kIoErr},
      {"T_DISCARD (not offered)", false, with_data(11, 0, {kData, 16, false}), kUnsupp},
      {"T_WRITE_ZEROES (not offered)", false, with_data(13, 0, {kData, 16, false}), kUnsupp},
      {"type 0xffffffff", false,
       [](Guest& g, uint64_t st) {
         g.drv->put_header(kHeaders, 0xffffffff, 0);
         return std::vector<Buf>{{kHeaders, 16, false}, {st, 1, true}};
       },
       kUnsupp},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Guest g(c.read_only);
    ASSERT_TRUE(g.bring_up());
    std::vector<uint8_t> disk_before(g.disk->image().begin(), g.disk->image().end());
    uint64_t st = kStatuses;
    g.mem[st] = 0xee;
    g.fill(kData, 1024, 3);
    uint16_t head = g.drv->add(c.chain(g, st));
    g.drv->notify();
    ASSERT_EQ(g.drv->used_idx(), 1);
    EXPECT_EQ(g.drv->used_elem(0).id, head);
    EXPECT_EQ(g.drv->used_elem(0).len, 1u);
    EXPECT_EQ(g.mem[st], c.expect);
    EXPECT_TRUE(std::equal(disk_before.begin(), disk_before.end(), g.disk->image().begin())) << "the disk changed";
    EXPECT_TRUE(g.dev->take_written_blocks().empty());
    EXPECT_EQ(g.disk->out_of_range(), 0u) << "refused by the device, not by the disk";
    EXPECT_FALSE(g.dev->needs_reset());
    // The device carries on.
    auto f = g.submit(blk::kTypeIn, 0, {{kData, 512, true}});
    ASSERT_EQ(g.drv->used_idx(), 2);
    EXPECT_EQ(g.mem[f.status], blk::kStatusOk);
  }
}

TEST(VirtioBlk, RequestWithoutStatusByteIsReturnedUnanswered) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.dirty.take();
  g.drv->put_header(kHeaders, blk::kTypeIn, 0);
  // Everything device-readable: there is no byte the device may write the status into.
  uint16_t head = g.drv->add({{kHeaders, 16, false}, {kData, 512, false}, {kStatuses, 1, false}});
  g.mem[kStatuses] = 0xee;
  g.drv->notify();
  ASSERT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.drv->used_elem(0).id, head);
  EXPECT_EQ(g.drv->used_elem(0).len, 0u);
  EXPECT_EQ(g.mem[kStatuses], 0xee);
  EXPECT_EQ(g.dirty.take(), std::set<uint64_t>{kUsedPage}) << "only the used ring was written";
  auto ok = g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(g.mem[ok.status], blk::kStatusOk);
}

TEST(VirtioBlk, FailingDiskAnswersIoErr) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.disk->fail_with(EIO);
  auto r = g.submit(blk::kTypeIn, 0, {{kData, 512, true}});
  auto w = g.submit(blk::kTypeOut, 0, {{kData, 512, false}});
  auto f = g.submit(blk::kTypeFlush, 0, {});
  ASSERT_EQ(g.drv->used_idx(), 3);
  EXPECT_EQ(g.mem[r.status], blk::kStatusIoErr);
  EXPECT_EQ(g.mem[w.status], blk::kStatusIoErr);
  EXPECT_EQ(g.mem[f.status], blk::kStatusIoErr);
  EXPECT_EQ(g.drv->used_elem(0).len, 1u);
  g.disk->fail_with(0);
  auto again = g.submit(blk::kTypeIn, 0, {{kData, 512, true}});
  EXPECT_EQ(g.mem[again.status], blk::kStatusOk);
}

// ---- Malformed chains and broken rings ----

TEST(VirtioBlk, MalformedChainsAreReturnedWithLengthZero) {
  struct Case {
    const char* what;
    std::function<uint16_t(Guest&)> make;  // writes the chain, returns its head
  };
  Case cases[] = {
      {"a descriptor loop",
       [](Guest& g) {
         g.drv->put_header(kHeaders, blk::kTypeIn, 0);
         uint16_t head = g.drv->write_chain({{kHeaders, 16, false}, {kData, 512, true}, {kStatuses, 1, true}});
         g.drv->put_desc(head + 2, kStatuses, 1, blk_test::kDescNext | blk_test::kDescWrite, head + 1);
         return head;
       }},
      {"a descriptor pointing at itself",
       [](Guest& g) {
         uint16_t head = g.drv->write_chain({{kHeaders, 16, false}});
         g.drv->put_desc(head, kHeaders, 16, blk_test::kDescNext, head);
         return head;
       }},
      {"next index past the table",
       [](Guest& g) {
         uint16_t head = g.drv->write_chain({{kHeaders, 16, false}});
         g.drv->put_desc(head, kHeaders, 16, blk_test::kDescNext, 128);
         return head;
       }},
      {"buffer past the end of memory",
       [](Guest& g) {
         return g.drv->write_chain({{kHeaders, 16, false}, {kMemBytes - 256, 512, true}, {kStatuses, 1, true}});
       }},
      {"buffer far outside memory",
       [](Guest& g) {
         return g.drv->write_chain({{kHeaders, 16, false}, {1ull << 40, 512, true}, {kStatuses, 1, true}});
       }},
      {"buffer address + length overflowing",
       [](Guest& g) {
         return g.drv->write_chain({{kHeaders, 16, false}, {~uint64_t{0} - 10, 512, true}, {kStatuses, 1, true}});
       }},
      {"readable after writable",
       [](Guest& g) {
         return g.drv->write_chain({{kHeaders, 16, false}, {kStatuses, 1, true}, {kData, 512, false}});
       }},
      {"an indirect descriptor",
       [](Guest& g) { return g.drv->write_chain({{kData, 64, false}}, blk_test::kDescIndirect); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Guest g;
    ASSERT_TRUE(g.bring_up(128));
    g.drv->put_header(kHeaders, blk::kTypeIn, 0);
    g.mem[kStatuses] = 0xee;
    g.dirty.take();
    uint16_t head = c.make(g);
    g.drv->make_available(head);
    g.drv->notify();
    ASSERT_EQ(g.drv->used_idx(), 1);
    EXPECT_EQ(g.drv->used_elem(0).id, head);
    EXPECT_EQ(g.drv->used_elem(0).len, 0u);
    EXPECT_EQ(g.mem[kStatuses], 0xee) << "nothing of a malformed chain is written";
    EXPECT_EQ(g.dirty.take(), std::set<uint64_t>{kUsedPage});
    EXPECT_EQ(g.irqs, 1);
    EXPECT_FALSE(g.dev->needs_reset());
    auto ok = g.submit(blk::kTypeIn, 0, {{kData, 512, true}});
    ASSERT_EQ(g.drv->used_idx(), 2);
    EXPECT_EQ(g.mem[ok.status], blk::kStatusOk);
  }
}

TEST(VirtioBlk, BrokenRingSetsNeedsResetUntilTheDriverResets) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "head index past the table" : "available index runs ahead");
    Guest g;
    ASSERT_TRUE(g.bring_up(16));
    if (variant == 0) {
      g.drv->make_available(16);
    } else {
      g.drv->set_avail_idx(17);
    }
    g.dirty.take();
    g.drv->notify();
    EXPECT_TRUE(g.dev->needs_reset());
    EXPECT_EQ(g.dev->last_avail_idx(), 0) << "nothing was taken";
    EXPECT_EQ(g.drv->used_idx(), 0);
    EXPECT_TRUE(g.dirty.take().empty());
    EXPECT_EQ(g.drv->read(reg::kStatus) & reg::kStatusNeedsReset, reg::kStatusNeedsReset);
    EXPECT_EQ(g.irqs, 1);
    EXPECT_EQ(g.drv->take_interrupt(), reg::kInterruptConfigChange);
    // Further notifies do nothing, a reset and a new setup make the device usable again.
    g.drv->notify();
    EXPECT_EQ(g.drv->used_idx(), 0);
    std::fill(g.mem.begin() + kRings, g.mem.begin() + kRings + 3 * 4096, 0);
    ASSERT_TRUE(g.bring_up(16));
    EXPECT_FALSE(g.dev->needs_reset());
    auto ok = g.submit(blk::kTypeFlush, 0, {});
    ASSERT_EQ(g.drv->used_idx(), 1);
    EXPECT_EQ(g.mem[ok.status], blk::kStatusOk);
  }
}

TEST(VirtioBlk, ResetDropsEverything) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.submit(blk::kTypeFlush, 0, {});
  ASSERT_EQ(g.drv->read(reg::kInterruptStatus), reg::kInterruptUsedBuffer);
  g.drv->write(reg::kStatus, 0);
  EXPECT_EQ(g.drv->read(reg::kStatus), 0u);
  EXPECT_EQ(g.drv->read(reg::kQueueReady), 0u);
  EXPECT_EQ(g.drv->read(reg::kInterruptStatus), 0u);
  VirtioBlkState s = decode_virtio_blk_state(g.dev->save_state()).value();
  EXPECT_EQ(s.transport.driver_features, 0u);
  EXPECT_EQ(s.transport.queue.num, 0u);
  EXPECT_EQ(s.last_avail_idx, 0);
  EXPECT_EQ(s.used_idx, 0);
  // The old ring is no longer the device's: a notify does nothing.
  g.drv->add({{kHeaders, 16, false}, {kStatuses, 1, true}});
  g.drv->notify();
  EXPECT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.dev->last_avail_idx(), 0);
}

TEST(VirtioBlk, QueueReadyZeroStopsTheQueue) {
  Guest g;
  ASSERT_TRUE(g.bring_up(16));
  g.submit(blk::kTypeFlush, 0, {});
  ASSERT_EQ(g.drv->used_idx(), 1);
  g.drv->write(reg::kQueueReady, 0);  // vm_del_vq
  EXPECT_EQ(g.drv->read(reg::kQueueReady), 0u);
  g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(g.drv->used_idx(), 1) << "a stopped queue is not served";
  EXPECT_EQ(g.dev->last_avail_idx(), 0);
  // Set up again (the driver's rings zeroed), it serves from the start of the new rings.
  std::fill(g.mem.begin() + kRings, g.mem.begin() + kRings + 3 * 4096, 0);
  ASSERT_TRUE(g.drv->setup_queue(16, kRings, kRings + 4096, kRings + 8192));
  auto ok = g.submit(blk::kTypeFlush, 0, {});
  ASSERT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.mem[ok.status], blk::kStatusOk);
}

// The integration's path: the device's write reports into GuestMemory's own dirty bitmap, which every harvest
// merges (KVM's dirty log does not see these writes).
TEST(VirtioBlk, WritesReachGuestMemoryVmmDirtyPages) {
  auto created = GuestMemory::create(2 << 20);
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  GuestMemory& gm = *created.value();
  gm.mark_dirty(4095, 2);                 // pages 0 and 1
  gm.mark_dirty(gm.bytes() - 1, 100);     // the last page; the rest is outside
  gm.mark_dirty(gm.bytes(), 4096);        // outside: ignored
  gm.mark_dirty(~uint64_t{0} - 5, 10);    // wrapping: ignored
  gm.mark_dirty(3 * 4096, 0);             // nothing
  DirtyBitmap harvested(gm.pages());
  gm.take_vmm_dirty(harvested);
  EXPECT_EQ(harvested.to_gfns(), (std::vector<uint64_t>{0, 1, gm.pages() - 1}));

  std::span<uint8_t> mem(gm.host(), gm.bytes());
  VirtioBlk dev(GuestRam(mem, [&gm](uint64_t gpa, uint64_t bytes) { gm.mark_dirty(gpa, bytes); }),
                std::make_unique<MemoryBlockBackend>(kDiskBytes, false, "vda.img"), [] {});
  Driver drv(dev, mem);
  ASSERT_TRUE(drv.bring_up(64, kRings));
  drv.put_header(kHeaders, blk::kTypeIn, 0);
  drv.add({{kHeaders, 16, false}, {kData, 8192, true}, {kStatuses, 1, true}});
  drv.notify();
  ASSERT_EQ(drv.used_idx(), 1);
  DirtyBitmap after(gm.pages());
  gm.take_vmm_dirty(after);
  EXPECT_EQ(after.to_gfns(), (std::vector<uint64_t>{kUsedPage, kStatuses / 4096, kData / 4096, kData / 4096 + 1}));
}

// ---- Written blocks ----

TEST(VirtioBlk, WrittenBlocksAreExact) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.submit(blk::kTypeOut, 0, {{kData, 512, false}});                          // block 0
  g.submit(blk::kTypeOut, 7, {{kData, 1024, false}});                         // bytes 3584..4607: blocks 0 and 1
  g.submit(blk::kTypeOut, 80, {{kData, 4096, false}, {kData, 4096, false}});  // bytes 40960..49151: blocks 10, 11
  g.submit(blk::kTypeOut, 511, {{kData, 512, false}});                        // byte 261632: block 63
  g.submit(blk::kTypeIn, 200, {{kData, 4096, true}});                         // a read: nothing
  g.submit(blk::kTypeOut, kDiskBytes / 512, {{kData, 512, false}});           // refused: nothing
  g.submit(blk::kTypeOut, 24, {});                                            // no data: nothing
  ASSERT_EQ(g.drv->used_idx(), 7);
  EXPECT_EQ(g.dev->take_written_blocks(), (std::vector<uint64_t>{0, 1, 10, 11, 63}));
  EXPECT_TRUE(g.dev->take_written_blocks().empty()) << "taking is destructive";
  // A failed epoch gives its blocks back; they come out with the next writes, merged.
  g.dev->return_written_blocks(std::vector<uint64_t>{11, 5});
  g.submit(blk::kTypeOut, 40, {{kData, 512, false}});  // block 5
  g.submit(blk::kTypeOut, 48, {{kData, 512, false}});  // block 6
  EXPECT_EQ(g.dev->take_written_blocks(), (std::vector<uint64_t>{5, 6, 11}));
}

TEST(VirtioBlk, BlockSetIsSparseSortedAndUnique) {
  BlockSet s;
  s.add_range(1000, 1100);  // spans three chunks, one of them whole
  s.add(5);
  s.add(1500);
  s.add(~uint64_t{0});
  std::vector<uint64_t> blocks = s.take();
  ASSERT_EQ(blocks.size(), 1100u + 2);
  EXPECT_EQ(blocks.front(), 5u);
  EXPECT_EQ(blocks[1], 1000u);
  EXPECT_EQ(blocks[1100], 2099u);
  EXPECT_EQ(blocks.back(), ~uint64_t{0});
  EXPECT_TRUE(std::is_sorted(blocks.begin(), blocks.end()));
  EXPECT_TRUE(s.empty());
}

// ---- Pause ----

TEST(VirtioBlk, PausedDeviceLeavesTheRingsAlone) {
  Guest g;
  ASSERT_TRUE(g.bring_up());
  g.submit(blk::kTypeOut, 0, {{kData, 512, false}});
  ASSERT_TRUE(g.dev->pause(1s).is_ok());
  ASSERT_TRUE(g.dev->pause(1s).is_ok()) << "idempotent";
  g.dirty.take();
  int irqs = g.irqs;
  auto r = g.submit(blk::kTypeOut, 8, {{kData, 512, false}});
  EXPECT_EQ(g.dev->last_avail_idx(), 1);
  EXPECT_EQ(g.drv->used_idx(), 1);
  EXPECT_EQ(g.mem[r.status], 0xee);
  EXPECT_TRUE(g.dirty.take().empty());
  EXPECT_EQ(g.irqs, irqs);
  EXPECT_EQ(g.dev->take_written_blocks(), std::vector<uint64_t>{0});
  g.dev->resume();  // serves what was notified meanwhile
  EXPECT_EQ(g.drv->used_idx(), 2);
  EXPECT_EQ(g.mem[r.status], blk::kStatusOk);
  EXPECT_EQ(g.dev->take_written_blocks(), std::vector<uint64_t>{1});
}

// Holds the device's disk operations until open() (as a slow disk would), then passes them to the real backend
// on its own thread.
class GatedBackend final : public BlockBackend {
 public:
  explicit GatedBackend(std::unique_ptr<BlockBackend> inner) : inner_(std::move(inner)) {}
  ~GatedBackend() override { inner_.reset(); }  // its thread first: it runs release(), which uses the members
  const std::string& name() const override { return inner_->name(); }
  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  bool read_only() const override { return inner_->read_only(); }
  void attach(std::function<void()> service) override {
    inner_->attach([this, service] {
      release();
      service();
    });
  }
  void kick() override { inner_->kick(); }
  void read(uint64_t offset, std::vector<iovec> buffers, Completion done) override {
    hold([=, this] { inner_->read(offset, buffers, done); });
  }
  void write(uint64_t offset, std::vector<iovec> buffers, Completion done) override {
    hold([=, this] { inner_->write(offset, buffers, done); });
  }
  void flush(Completion done) override {
    hold([=, this] { inner_->flush(done); });
  }
  void open() {
    open_ = true;
    inner_->kick();
  }

 private:
  void hold(std::function<void()> op) {
    if (open_) return op();
    std::lock_guard lock(mu_);
    held_.push_back(std::move(op));
  }
  void release() {
    if (!open_) return;
    std::vector<std::function<void()>> ops;
    {
      std::lock_guard lock(mu_);
      ops.swap(held_);
    }
    for (auto& op : ops) op();
  }
  std::unique_ptr<BlockBackend> inner_;
  std::atomic<bool> open_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> held_;
};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "virtio-blk-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name, uint64_t bytes) const {
    std::string p = path_ + "/" + name;
    int fd = ::open(p.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
      (void)!::ftruncate(fd, static_cast<off_t>(bytes));
      ::close(fd);
    }
    return p;
  }

 private:
  std::string path_;
};

std::vector<uint8_t> file_bytes(const std::string& path, uint64_t offset, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::pread(fd, out.data(), bytes, static_cast<off_t>(offset)) != static_cast<ssize_t>(bytes)) out.clear();
  if (fd >= 0) ::close(fd);
  return out;
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!f()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(VirtioBlk, PauseWaitsForInFlightUringRequests) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string image = dir.file("disk.img", 1 << 20);
  auto opened = open_uring_disk(image, false, 3);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto gated = std::make_unique<GatedBackend>(std::move(opened).value());
  GatedBackend* gate = gated.get();
  Guest g(std::move(gated));
  ASSERT_TRUE(g.bring_up());

  constexpr int kWrites = 8;
  constexpr uint64_t kBytes = 16384;
  std::vector<Guest::Req> reqs;
  for (int i = 0; i < kWrites; ++i) {
    g.fill(kData + i * kBytes, kBytes, static_cast<uint8_t>(i + 1));
    reqs.push_back(g.submit(blk::kTypeOut, i * kBytes / 512, {{kData + i * kBytes, kBytes, false}}));
  }
  ASSERT_TRUE(eventually([&] { return g.dev->requests_in_flight() == kWrites; })) << g.dev->requests_in_flight();

  Status early = g.dev->pause(50ms);
  EXPECT_EQ(early.code(), StatusCode::kAborted) << early.to_string();
  EXPECT_NE(early.message().find("8 requests still in flight"), std::string::npos) << early.message();
  EXPECT_EQ(g.drv->used_idx(), 0);

  auto paused = std::async(std::launch::async, [&] { return g.dev->pause(20s); });
  EXPECT_EQ(paused.wait_for(200ms), std::future_status::timeout) << "pause returned with requests in flight";
  gate->open();
  Status done = paused.get();
  ASSERT_TRUE(done.is_ok()) << done.to_string();
  // Everything the device took is complete when pause returns: used ring, status bytes, interrupt, image.
  EXPECT_EQ(g.drv->used_idx(), kWrites);
  EXPECT_EQ(g.dev->requests_in_flight(), 0u);
  for (const auto& r : reqs) EXPECT_EQ(g.mem[r.status], blk::kStatusOk);
  EXPECT_GE(g.irqs, 1);
  for (int i = 0; i < kWrites; ++i) {
    std::vector<uint8_t> on_disk = file_bytes(image, i * kBytes, kBytes);
    EXPECT_TRUE(std::equal(on_disk.begin(), on_disk.end(), g.mem.begin() + kData + i * kBytes)) << "write " << i;
  }

  // Paused: a new request stays in the available ring, untouched.
  auto later = g.submit(blk::kTypeIn, 0, {{kData + 0x40000, 512, true}});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(g.dev->last_avail_idx(), kWrites);
  EXPECT_EQ(g.mem[later.status], 0xee);
  g.dev->resume();
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == kWrites + 1; }));
  EXPECT_EQ(g.mem[later.status], blk::kStatusOk);
  EXPECT_TRUE(g.holds(kData + 0x40000, 512, 1));
}

// ---- The io_uring disk ----

std::string thread_names() {
  std::string names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names += name + ",";
  }
  return names;
}

TEST(VirtioBlk, UringDiskServesRequestsOnItsThread) {
  TempDir dir;
  std::string image = dir.file("vda.img", 64 * 4096);
  auto backend = open_uring_disk(image, false, 7);
  ASSERT_TRUE(backend.is_ok()) << backend.status().to_string();
  EXPECT_EQ(backend.value()->size_bytes(), 64u * 4096);
  Guest g(std::move(backend).value());
  EXPECT_TRUE(eventually([] { return thread_names().find("ckpt-blk7,") != std::string::npos; }))
      << thread_names();
  ASSERT_TRUE(g.bring_up());
  EXPECT_EQ(g.dev->capacity_sectors(), 64u * 8);

  // Many segments in one request (writev), then read back in other pieces (readv).
  std::vector<Buf> segs;
  for (int i = 0; i < 16; ++i) {
    g.fill(kData + i * 8192, 4096, static_cast<uint8_t>(40 + i));
    segs.push_back({kData + i * 8192, 4096, false});
  }
  auto w = g.submit(blk::kTypeOut, 16, segs);
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == 1; }));
  EXPECT_EQ(g.mem[w.status], blk::kStatusOk);
  auto f = g.submit(blk::kTypeFlush, 0, {});
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == 2; }));
  EXPECT_EQ(g.mem[f.status], blk::kStatusOk);
  for (int i = 0; i < 16; ++i) {
    std::vector<uint8_t> on_disk = file_bytes(image, 8192 + i * 4096, 4096);
    ASSERT_EQ(on_disk.size(), 4096u);
    EXPECT_TRUE(std::equal(on_disk.begin(), on_disk.end(), g.mem.begin() + kData + i * 8192)) << i;
  }
  g.dirty.take();
  uint64_t into = 0x80000;
  auto r = g.submit(blk::kTypeIn, 16, {{into, 3 * 4096, true}, {into + 0x10000, 13 * 4096, true}});
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == 3; }));
  EXPECT_EQ(g.mem[r.status], blk::kStatusOk);
  for (int i = 0; i < 16; ++i) {
    uint64_t at = i < 3 ? into + i * 4096 : into + 0x10000 + (i - 3) * 4096;
    EXPECT_TRUE(g.holds(at, 4096, static_cast<uint8_t>(40 + i))) << i;
  }
  EXPECT_EQ(g.dirty.take(), pages_of(into, 3 * 4096) + pages_of(into + 0x10000, 13 * 4096) +
                                pages_of(r.status, 1) + std::set<uint64_t>{kUsedPage});
  EXPECT_EQ(g.dev->take_written_blocks(),
            (std::vector<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}));
}

TEST(VirtioBlk, UringDiskReadOnly) {
  TempDir dir;
  std::string image = dir.file("ro.img", 8 * 4096);
  ::chmod(image.c_str(), 0400);
  auto backend = open_uring_disk(image, true, 0);
  ASSERT_TRUE(backend.is_ok()) << backend.status().to_string();
  Guest g(std::move(backend).value());
  EXPECT_TRUE(g.dev->read_only());
  ASSERT_TRUE(g.bring_up());
  auto w = g.submit(blk::kTypeOut, 0, {{kData, 512, false}});
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == 1; }));
  EXPECT_EQ(g.mem[w.status], blk::kStatusIoErr);
  auto r = g.submit(blk::kTypeIn, 0, {{kData, 512, true}});
  ASSERT_TRUE(eventually([&] { return g.drv->used_idx() == 2; }));
  EXPECT_EQ(g.mem[r.status], blk::kStatusOk);
}

TEST(VirtioBlk, UringDiskRefusesBadImages) {
  TempDir dir;
  struct Case {
    std::string path;
    bool read_only;
    const char* expect;
  } cases[] = {
      {dir.file("odd.img", 4096 + 512), false, "not a positive multiple of 4096"},
      {dir.file("empty.img", 0), true, "not a positive multiple of 4096"},
      {dir.path() + "/missing.img", false, "open disk image"},
      {dir.path(), true, "not a regular file"},
  };
  for (const Case& c : cases) {
    auto r = open_uring_disk(c.path, c.read_only, 0);
    ASSERT_FALSE(r.is_ok()) << c.path;
    EXPECT_NE(r.status().message().find(c.path), std::string::npos) << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().to_string();
  }
}

// ---- State ----

TEST(VirtioBlk, SaveLoadContinuesAHalfConsumedQueue) {
  Guest a;
  ASSERT_TRUE(a.bring_up(8));
  for (int i = 0; i < 2; ++i) {
    a.fill(kData + i * 4096, 512, static_cast<uint8_t>(10 + i));
    a.submit(blk::kTypeOut, i, {{kData + i * 4096, 512, false}});
  }
  ASSERT_EQ(a.drv->used_idx(), 2);
  ASSERT_TRUE(a.dev->pause(1s).is_ok());
  // Two more requests arrive while the device is paused for the checkpoint: they stay in the available ring.
  Guest::Req pending[2];
  for (int i = 2; i < 4; ++i) {
    a.fill(kData + i * 4096, 512, static_cast<uint8_t>(10 + i));
    pending[i - 2] = a.submit(blk::kTypeOut, i, {{kData + i * 4096, 512, false}});
  }
  ASSERT_EQ(a.dev->last_avail_idx(), 2);
  std::vector<uint8_t> state = a.dev->save_state();

  // The restored machine: the same memory and image, a fresh device.
  Guest b;
  std::copy(a.mem.begin(), a.mem.end(), b.mem.begin());
  std::copy(a.disk->image().begin(), a.disk->image().end(), b.disk->image().begin());
  b.drv->continue_from(*a.drv);
  Status loaded = b.dev->load_state(state);
  ASSERT_TRUE(loaded.is_ok()) << loaded.to_string();
  EXPECT_EQ(b.dev->save_state(), state);
  EXPECT_EQ(b.drv->read(reg::kQueueReady), 1u);
  EXPECT_EQ(b.drv->read(reg::kStatus), blk_test::kAck | blk_test::kDrv | blk_test::kFeaturesOk | blk_test::kDriverOk);
  EXPECT_EQ(b.drv->read(reg::kInterruptStatus), reg::kInterruptUsedBuffer) << "not acknowledged at the capture";
  b.dev->resume();  // picks up the two waiting requests from last_avail_idx
  ASSERT_EQ(b.drv->used_idx(), 4);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b.drv->used_elem(static_cast<uint16_t>(2 + i)).id, pending[i].head);
    EXPECT_EQ(b.mem[pending[i].status], blk::kStatusOk);
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::equal(b.disk->image().begin() + i * 512, b.disk->image().begin() + (i + 1) * 512,
                           a.mem.begin() + kData + i * 4096))
        << "sector " << i;
  }
  // And it keeps going, the ring wrapping around its 8 entries.
  for (int i = 0; i < 10; ++i) b.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(b.drv->used_idx(), 14);
}

TEST(VirtioBlk, CorruptStateIsRefused) {
  Guest g;
  ASSERT_TRUE(g.bring_up(16));
  g.submit(blk::kTypeFlush, 0, {});
  const std::vector<uint8_t> good = g.dev->save_state();
  ASSERT_EQ(good.size(), VirtioBlkState::kBytes);
  VirtioBlkState base = decode_virtio_blk_state(good).value();

  auto with = [&](auto change) {
    VirtioBlkState s = base;
    change(s);
    return encode_virtio_blk_state(s);
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> blob;
    StatusCode code;
  };
  std::vector<Case> cases = {
      {"empty", {}, StatusCode::kCorruption},
      {"wrong magic", [&] { auto b = good; b[0] = 'X'; return b; }(), StatusCode::kCorruption},
      {"version 2", [&] { auto b = good; b[4] = 2; return b; }(), StatusCode::kUnsupported},
      {"truncated", std::vector<uint8_t>(good.begin(), good.end() - 1), StatusCode::kCorruption},
      {"a byte too many", [&] { auto b = good; b.push_back(0); return b; }(), StatusCode::kCorruption},
      {"unknown flags", [&] { auto b = good; b[7] |= 0x80; return b; }(), StatusCode::kCorruption},
      {"unknown status bit", with([](VirtioBlkState& s) { s.transport.status |= 0x20; }), StatusCode::kCorruption},
      {"FEATURES_OK with EVENT_IDX",
       with([](VirtioBlkState& s) { s.transport.driver_features |= 1ull << 29; }), StatusCode::kCorruption},
      {"FEATURES_OK without VERSION_1",
       with([](VirtioBlkState& s) { s.transport.driver_features &= ~kVersion1; }), StatusCode::kCorruption},
      {"FEATURES_OK with RO on a writable disk",
       with([](VirtioBlkState& s) { s.transport.driver_features |= VirtioBlk::kFeatureRo; }), StatusCode::kCorruption},
      {"interrupt status bit 2", with([](VirtioBlkState& s) { s.transport.interrupt_status = 4; }),
       StatusCode::kCorruption},
      {"ready queue of size 24", with([](VirtioBlkState& s) { s.transport.queue.num = 24; }), StatusCode::kCorruption},
      {"ready queue of size 512", with([](VirtioBlkState& s) { s.transport.queue.num = 512; }),
       StatusCode::kCorruption},
      {"ready queue outside memory", with([](VirtioBlkState& s) { s.transport.queue.device = kMemBytes; }),
       StatusCode::kCorruption},
      {"ready queue misaligned", with([](VirtioBlkState& s) { s.transport.queue.desc += 8; }),
       StatusCode::kCorruption},
      {"a request in flight", with([](VirtioBlkState& s) { s.last_avail_idx += 1; }), StatusCode::kCorruption},
      {"ring positions without a queue",
       with([](VirtioBlkState& s) { s.transport.queue.ready = false; }), StatusCode::kCorruption},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Status s = g.dev->load_state(c.blob);
    EXPECT_FALSE(s.is_ok());
    EXPECT_EQ(s.code(), c.code) << s.to_string();
    EXPECT_NE(s.message().find("virtio"), std::string::npos) << s.to_string();
    EXPECT_EQ(g.dev->save_state(), good) << "a refused blob changed the device";
  }
  // Values the guest may set freely are accepted as they are.
  std::vector<uint8_t> odd = with([](VirtioBlkState& s) {
    s.transport.queue_sel = 77;
    s.transport.device_features_sel = 0xffffffff;
    s.transport.config_generation = 3;
    s.last_avail_idx = s.used_idx = 65535;
  });
  ASSERT_TRUE(g.dev->load_state(odd).is_ok());
  EXPECT_EQ(g.dev->save_state(), odd);
  ASSERT_TRUE(g.dev->load_state(good).is_ok());
  auto ok = g.submit(blk::kTypeFlush, 0, {});
  EXPECT_EQ(g.mem[ok.status], blk::kStatusOk);
}

// ---- The fuzzer's loop, deterministically ----

TEST(VirtioBlk, RandomGuestInputsBreakNothing) {
  // Inputs of random bytes, run through the fuzz target's interpreter with every check it makes: no access outside
  // guest memory (guard regions), every page the device changed reported, no disk access outside the disk, state
  // round trips. Fixed seeds: the same inputs every run.
  struct Quiet {  // the guest errors the inputs make are logged as warnings
    LogLevel was = log_level();
    Quiet() { set_log_level(LogLevel::kError); }
    ~Quiet() { set_log_level(was); }
  } quiet;
  auto start = std::chrono::steady_clock::now();
  int inputs = 0;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr uint64_t kInputs = 500;  // each step compares all of guest memory: 5 to 50 times slower instrumented
#else
  constexpr uint64_t kInputs = 3000;
#endif
  for (uint64_t seed = 1; seed <= kInputs; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> input(16 + rng() % 1024);
    for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    std::string failure = blk_test::run_virtio_blk_input(input.data(), input.size());
    ASSERT_EQ(failure, "") << "seed " << seed;
    ++inputs;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d inputs in %lld ms\n", inputs, static_cast<long long>(ms));
}

}  // namespace
}  // namespace ckpt::vmm::devices::virtio
