// A virtio-blk request (virtio 1.x, "Block Device", 5.2.6) read out of a descriptor chain, checked, and turned into
// what the device must do: an I/O on the disk, an answer it can give at once, or no answer at all.
//
// The device may not assume how the driver splits a request into buffers (VIRTIO_F_VERSION_1 implies any layout):
// the 16-byte header is the first 16 device-readable bytes, the status byte the last device-writable byte, and the
// data is what lies between. Malformed requests are answered VIRTIO_BLK_S_IOERR (UNSUPP for an unknown type) when
// the chain has a status byte to answer in, and otherwise returned unanswered (used length 0):
//  * fewer than 16 device-readable bytes (no header, or a header the device may not read);
//  * no device-writable byte for the status;
//  * readable or writable bytes the type has no use for (T_IN reads only the header, T_OUT writes only the status,
//    T_FLUSH neither);
//  * data not a whole number of 512-byte sectors, or sectors past the capacity (overflow included);
//  * T_OUT to a read-only disk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/devices/virtio/split_queue.h"

namespace ckpt::vmm::devices::virtio {

namespace blk {
constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupp = 2;
constexpr uint64_t kSectorBytes = 512;
constexpr uint64_t kHeaderBytes = 16;
constexpr uint64_t kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
}  // namespace blk

struct BlkRequest {
  enum class Kind {
    kRead,      // disk -> data buffers
    kWrite,     // data buffers -> disk
    kFlush,     // the disk's writes made durable
    kGetId,     // the serial -> data buffers
    kAnswer,    // answered at once with `status` (malformed or unsupported)
    kNoAnswer,  // no status byte: returned with used length 0, nothing written
  };
  Kind kind = Kind::kNoAnswer;
  uint8_t status = blk::kStatusOk;  // kAnswer
  uint64_t offset = 0;              // kRead, kWrite: bytes into the disk
  std::vector<Segment> data;        // kRead, kWrite, kGetId: in order
  uint64_t data_bytes = 0;
  uint64_t status_gpa = 0;          // every kind but kNoAnswer
  std::string error;                // why a request is answered with an error, for the log
};

// `chain` came from SplitQueue::pop (every segment inside guest memory, readable ones first).
BlkRequest parse_blk_request(const Chain& chain, const GuestRam& ram, uint64_t capacity_bytes, bool read_only);

}  // namespace ckpt::vmm::devices::virtio
