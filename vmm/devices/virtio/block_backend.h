// Where a virtio-blk device's disk lives, and the execution context its requests run in.
//
// The backend owns that context. The device attaches a service function (take new requests from the queue and
// submit them) that the backend runs whenever kick() is called and after completions arrive; read, write and
// flush are called only from within that service function, and their completions are called in the same context
// (possibly before read/write/flush returns, for a synchronous backend). So the device's queue work never runs on
// two threads at once for one backend, and a vCPU thread that notifies the device only signals the backend.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ckpt::vmm::devices::virtio {

class BlockBackend {
 public:
  // The result of an operation: the bytes transferred (all of them: the backend continues short transfers
  // itself; 0 for a flush), or -errno.
  using Completion = std::function<void(int64_t result)>;

  virtual ~BlockBackend() = default;  // waits for every submitted operation to complete first

  // The image's name (its path, for a file), for messages and the device's serial number.
  virtual const std::string& name() const = 0;
  virtual uint64_t size_bytes() const = 0;
  virtual bool read_only() const = 0;

  // Sets the service function; once, before the first kick().
  virtual void attach(std::function<void()> service) = 0;
  // Asks for the service function to run (soon, or at once for a synchronous backend). Any thread.
  virtual void kick() = 0;

  // From the service function or a completion only. The buffers stay valid until `done` is called.
  virtual void read(uint64_t offset, std::vector<iovec> buffers, Completion done) = 0;
  virtual void write(uint64_t offset, std::vector<iovec> buffers, Completion done) = 0;
  // Makes every write that completed before it durable (fdatasync of an image file).
  virtual void flush(Completion done) = 0;
};

}  // namespace ckpt::vmm::devices::virtio
