// A raw disk image file served through io_uring by a thread of its own, "ckpt-blk<N>". The thread sleeps on an
// eventfd that two things signal: kick() (a vCPU thread, on the guest's QueueNotify) and io_uring itself (the
// eventfd is registered with the ring, so every completion wakes the thread). Awake, it reaps completions, calling
// their callbacks, and then runs the device's service function, which submits new requests.
//
// Reads and writes go through the page cache (no O_DIRECT): a completed write is in the image as every reader
// sees it, and a flush (the guest's VIRTIO_BLK_T_FLUSH) is an fdatasync of the image. Short transfers are
// continued from where they stopped.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "vmm/devices/virtio/block_backend.h"

namespace ckpt::vmm::devices::virtio {

// Opens `path` (read-only, or for reading and writing) and starts its thread, named for `index` (the disk's number,
// vda = 0). The image must be a regular file whose size is a positive multiple of 4096 bytes; the error names the
// file otherwise. At most 256 operations may be in flight (a virtio-blk queue's maximum size: the device never
// has more).
Result<std::unique_ptr<BlockBackend>> open_uring_disk(const std::string& path, bool read_only, unsigned index);

}  // namespace ckpt::vmm::devices::virtio
