// Writable file on io_uring. At most `queue_depth` writes are in flight; write() waits for a completion when the
// queue is full. A short write is requeued for the rest of its buffer. sync() and close() drain everything first,
// so fdatasync never races an unfinished write.
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "snapshot/io/early_writeback.h"
#include "snapshot/io/posix_files.h"

namespace ckpt::snap {

class UringPool {
 public:
  explicit UringPool(unsigned depth) : depth_(depth) {}
  ~UringPool() {
    for (io_uring* ring : idle_) destroy(ring);
  }
  unsigned depth() const { return depth_; }

  // An idle ring, or a new one.
  Result<io_uring*> take(const std::string& for_path) {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        io_uring* ring = idle_.back();
        idle_.pop_back();
        return ring;
      }
    }
    auto* ring = new io_uring{};
    int rc = io_uring_queue_init(depth_, ring, 0);
    if (rc < 0) {
      delete ring;
      return Status::from_errno(-rc, "io_uring_queue_init for " + for_path);
    }
    return ring;
  }

  // `ring` has nothing in flight. A few are kept: one writer at a time is the store's rule.
  void give_back(io_uring* ring) {
    {
      std::lock_guard lock(mu_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(ring);
        return;
      }
    }
    destroy(ring);
  }

  static void destroy(io_uring* ring) {
    io_uring_queue_exit(ring);
    delete ring;
  }

 private:
  static constexpr size_t kMaxIdle = 2;
  const unsigned depth_;
  std::mutex mu_;
  std::vector<io_uring*> idle_;
};

namespace {

class UringFile final : public WritableFile {
 public:
  UringFile(UniqueFd fd, std::string path, std::shared_ptr<UringPool> pool)
      : fd_(std::move(fd)), path_(std::move(path)), pool_(std::move(pool)), slots_(pool_->depth()) {
    for (unsigned i = 0; i < slots_.size(); ++i) free_.push_back(static_cast<unsigned>(slots_.size()) - 1 - i);
  }
  ~UringFile() override {
    (void)drain();
    if (ring_ == nullptr) return;
    // Any failure may leave the ring with a prepared or unreaped entry: only a ring that saw none is reused.
    if (error_.is_ok() && in_flight_ == 0 && !ring_broken_) {
      pool_->give_back(ring_);
    } else {
      UringPool::destroy(ring_);
    }
  }

  Status init() {
    CKPT_ASSIGN_OR_RETURN(ring_, pool_->take(path_));
    return Status::ok();
  }

  Status write(uint64_t offset, ByteBuffer buffer) override {
    if (!error_.is_ok()) return error_;
    if (buffer.size() == 0) return Status::ok();
    while (free_.empty()) CKPT_RETURN_IF_ERROR(reap_one());
    unsigned index = free_.back();
    free_.pop_back();
    slots_[index] = Slot{std::move(buffer), offset, 0};
    CKPT_RETURN_IF_ERROR(submit(index));
    return error_;
  }

  Status sync() override {
    CKPT_RETURN_IF_ERROR(drain());
    if (::fdatasync(fd_.get()) != 0) return Status::from_errno(errno, "fdatasync " + path_);
    return Status::ok();
  }

  Status close() override {
    Status drained = drain();
    if (fd_.valid() && ::close(fd_.release()) != 0 && drained.is_ok()) {
      return Status::from_errno(errno, "close " + path_);
    }
    return drained;
  }

  const std::string& path() const override { return path_; }

 private:
  struct Slot {
    ByteBuffer buffer;
    uint64_t offset = 0;
    size_t done = 0;  // bytes already written by earlier (short) completions
  };

  Status submit(unsigned index) {
    Slot& slot = slots_[index];
    io_uring_sqe* sqe = io_uring_get_sqe(ring_);
    if (sqe == nullptr) return fail(Status::from_errno(EBUSY, "io_uring_get_sqe for " + path_));
    io_uring_prep_write(sqe, fd_.get(), slot.buffer.data() + slot.done,
                        static_cast<unsigned>(slot.buffer.size() - slot.done), slot.offset + slot.done);
    io_uring_sqe_set_data64(sqe, index);
    int rc = io_uring_submit(ring_);
    if (rc < 0) return fail(Status::from_errno(-rc, "io_uring_submit for " + path_));
    ++in_flight_;
    return Status::ok();
  }

  Status reap_one() {
    io_uring_cqe* cqe = nullptr;
    int rc;
    do {
      rc = io_uring_wait_cqe(ring_, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) {
      ring_broken_ = true;  // nothing more can be reaped; drain() must not spin
      return fail(Status::from_errno(-rc, "io_uring_wait_cqe for " + path_));
    }
    auto index = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(ring_, cqe);
    --in_flight_;
    Slot& slot = slots_[index];
    uint64_t at = slot.offset + slot.done;
    if (res < 0 || res == 0) {
      int err = res < 0 ? -res : EIO;
      release(index);
      return fail(Status::from_errno(err, "io_uring write " + path_ + " offset " + std::to_string(at)));
    }
    slot.done += static_cast<size_t>(res);
    writeback_.wrote(fd_.get(), static_cast<uint64_t>(res));
    if (slot.done < slot.buffer.size()) return submit(index);  // short write: requeue the remainder
    release(index);
    return Status::ok();
  }

  Status drain() {
    while (in_flight_ > 0 && !ring_broken_) (void)reap_one();  // failures are kept in error_
    return error_;
  }

  void release(unsigned index) {
    slots_[index] = Slot{};  // returns the buffer to its pool
    free_.push_back(index);
  }

  Status fail(Status s) {
    if (error_.is_ok()) error_ = s;
    return s;
  }

  UniqueFd fd_;
  std::string path_;
  std::shared_ptr<UringPool> pool_;
  io_uring* ring_ = nullptr;
  bool ring_broken_ = false;
  std::vector<Slot> slots_;
  std::vector<unsigned> free_;
  unsigned in_flight_ = 0;
  EarlyWriteback writeback_;
  Status error_;  // the first failure; every later call reports it
};

}  // namespace

std::shared_ptr<UringPool> make_uring_pool(unsigned queue_depth) { return std::make_shared<UringPool>(queue_depth); }

Result<std::unique_ptr<WritableFile>> make_uring_file(UniqueFd fd, std::string path, std::shared_ptr<UringPool> pool) {
  auto file = std::make_unique<UringFile>(std::move(fd), std::move(path), std::move(pool));
  CKPT_RETURN_IF_ERROR(file->init());
  return std::unique_ptr<WritableFile>(std::move(file));
}

bool io_uring_available(std::string* why) {
  io_uring ring{};
  int rc = io_uring_queue_init(2, &ring, 0);
  if (rc < 0) {
    if (why) *why = std::string("io_uring_queue_init: ") + strerror(-rc);
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  bool ok = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_WRITE);
  if (!ok && why) *why = "the kernel's io_uring lacks IORING_OP_WRITE";
  if (probe) io_uring_free_probe(probe);
  io_uring_queue_exit(&ring);
  return ok;
}

}  // namespace ckpt::snap
