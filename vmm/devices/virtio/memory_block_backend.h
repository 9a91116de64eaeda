// A disk in host memory, served synchronously: kick() runs the service function on the calling thread and every
// operation completes before it returns. For tests and fuzzing, where the device's behaviour must be deterministic
// and a run must not depend on a file system.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vmm/devices/virtio/block_backend.h"

namespace ckpt::vmm::devices::virtio {

class MemoryBlockBackend final : public BlockBackend {
 public:
  MemoryBlockBackend(uint64_t size_bytes, bool read_only, std::string name);

  const std::string& name() const override { return name_; }
  uint64_t size_bytes() const override { return image_.size(); }
  bool read_only() const override { return read_only_; }
  void attach(std::function<void()> service) override;
  void kick() override;
  void read(uint64_t offset, std::vector<iovec> buffers, Completion done) override;
  void write(uint64_t offset, std::vector<iovec> buffers, Completion done) override;
  void flush(Completion done) override;

  // The disk's bytes, for a test to fill and check (not while the device works on it).
  std::span<uint8_t> image() { return image_; }
  // Every later operation fails with -err (0: they succeed again), as a failing disk would.
  void fail_with(int err);
  uint64_t flushes() const;
  // Operations the device sent outside the disk: the device checks ranges first, so this stays 0.
  uint64_t out_of_range() const;

 private:
  int64_t transfer(uint64_t offset, const std::vector<iovec>& buffers, bool to_disk);

  std::string name_;
  bool read_only_;
  std::vector<uint8_t> image_;
  std::function<void()> service_;
  std::mutex service_mutex_;  // one service run at a time, as with a backend thread
  mutable std::mutex mu_;
  int fail_errno_ = 0;
  uint64_t flushes_ = 0;
  uint64_t out_of_range_ = 0;
};

}  // namespace ckpt::vmm::devices::virtio
