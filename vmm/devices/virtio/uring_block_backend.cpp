#include "vmm/devices/virtio/uring_block_backend.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "common/unique_fd.h"

namespace ckpt::vmm::devices::virtio {
namespace {

constexpr unsigned kRingEntries = 256;  // the device keeps at most a queue's worth of requests in flight
constexpr uint64_t kImageAlign = 4096;
constexpr int kMaxRetries = 16;  // -EAGAIN/-EINTR results resubmitted before the operation counts as failed
// While submissions wait for io_uring_submit to succeed again, the thread retries this often.
constexpr int kRetrySubmitMs = 10;

class UringBlockBackend final : public BlockBackend {
 public:
  UringBlockBackend(std::string path, UniqueFd fd, uint64_t size, bool read_only, unsigned index)
      : name_(std::move(path)), fd_(std::move(fd)), size_(size), read_only_(read_only), index_(index) {}

  ~UringBlockBackend() override {
    if (thread_.joinable()) {
      stopping_.store(true);
      kick();
      thread_.join();  // the thread leaves only once nothing is in flight: the kernel may still be using buffers
    }
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  Status init() {
    event_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event_fd_.valid()) return Status::from_errno(errno, "eventfd for disk image " + name_);
    int rc = io_uring_queue_init(kRingEntries, &ring_, 0);
    if (rc < 0) return Status::from_errno(-rc, "io_uring_queue_init for disk image " + name_);
    ring_ready_ = true;
    rc = io_uring_register_eventfd(&ring_, event_fd_.get());
    if (rc < 0) return Status::from_errno(-rc, "io_uring_register_eventfd for disk image " + name_);
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      return Status::from_errno(e.code().value(), "start the I/O thread of disk image " + name_);
    }
    return Status::ok();
  }

  const std::string& name() const override { return name_; }
  uint64_t size_bytes() const override { return size_; }
  bool read_only() const override { return read_only_; }

  void attach(std::function<void()> service) override {
    std::lock_guard lock(service_mutex_);
    service_ = std::move(service);
  }

  void kick() override {
    uint64_t one = 1;
    // EAGAIN means the counter is already huge: the thread is going to wake anyway.
    (void)!::write(event_fd_.get(), &one, sizeof one);
  }

  void read(uint64_t offset, std::vector<iovec> buffers, Completion done) override {
    start(new Op{Op::kRead, offset, std::move(buffers), std::move(done)});
  }
  void write(uint64_t offset, std::vector<iovec> buffers, Completion done) override {
    start(new Op{Op::kWrite, offset, std::move(buffers), std::move(done)});
  }
  void flush(Completion done) override { start(new Op{Op::kFlush, 0, {}, std::move(done)}); }

 private:
  struct Op {
    enum Kind { kRead, kWrite, kFlush } kind;
    uint64_t offset;          // of the next byte to transfer
    std::vector<iovec> iov;   // what is left to transfer starts at iov[first]
    Completion done;
    size_t first = 0;
    uint64_t transferred = 0;
    int retries = 0;
  };

  // The thread.
  void run() {
    name_this_thread("ckpt-blk" + std::to_string(index_));
    for (;;) {
      wait();
      if (unsubmitted_) submit_queued();
      reap();
      if (stopping_.load()) {
        if (in_flight_ == 0) return;
        continue;
      }
      std::lock_guard lock(service_mutex_);
      if (service_) service_();
    }
  }

  void wait() {
    pollfd p{event_fd_.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, unsubmitted_ ? kRetrySubmitMs : -1);
    if (rc < 0 && errno != EINTR) {
      CKPT_LOG(kError) << "poll on the eventfd of disk image " << name_ << ": " << std::strerror(errno);
      std::this_thread::sleep_for(std::chrono::milliseconds(kRetrySubmitMs));  // no busy loop, whatever it was
    }
    uint64_t count;
    (void)!::read(event_fd_.get(), &count, sizeof count);  // resets the counter; EAGAIN when it was 0
  }

  void start(Op* op) {
    if (op->kind != Op::kFlush) {
      uint64_t total = 0;
      for (const iovec& v : op->iov) total += v.iov_len;
      if (total == 0) return finish(op, 0);
    }
    submit(op);
  }

  void submit(Op* op) {
    while (op->first < op->iov.size() && op->iov[op->first].iov_len == 0) ++op->first;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      submit_queued();
      sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe == nullptr) return finish(op, -EBUSY);  // the ring is full of entries the kernel refuses to take
    auto count = static_cast<unsigned>(op->iov.size() - op->first);
    switch (op->kind) {
      case Op::kRead:
        io_uring_prep_readv(sqe, fd_.get(), op->iov.data() + op->first, count, op->offset);
        break;
      case Op::kWrite:
        io_uring_prep_writev(sqe, fd_.get(), op->iov.data() + op->first, count, op->offset);
        break;
      case Op::kFlush:
        io_uring_prep_fsync(sqe, fd_.get(), IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    ++in_flight_;
    submit_queued();
  }

  // An entry the kernel did not take stays queued in the ring (it cannot be withdrawn): it is submitted again
  // later, never completed here, so its operation finishes exactly once.
  void submit_queued() {
    int rc = io_uring_submit(&ring_);
    bool left = rc < 0 || io_uring_sq_ready(&ring_) > 0;
    if (left && !unsubmitted_) {
      CKPT_LOG(kWarn) << "io_uring_submit for disk image " << name_ << ": "
                      << (rc < 0 ? std::strerror(-rc) : "entries left") << "; retrying";
    }
    unsubmitted_ = left;
  }

  void reap() {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
      int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight_;
      progress(op, res);
    }
  }

  void progress(Op* op, int res) {
    if ((res == -EAGAIN || res == -EINTR) && op->retries++ < kMaxRetries) return submit(op);
    if (op->kind == Op::kFlush) return finish(op, res < 0 ? res : 0);
    if (res < 0) return finish(op, res);
    if (res == 0) return finish(op, -EIO);  // end of file inside the image: it shrank under the device
    auto n = static_cast<uint64_t>(res);
    op->transferred += n;
    op->offset += n;
    while (n > 0 && op->first < op->iov.size()) {
      iovec& v = op->iov[op->first];
      if (n >= v.iov_len) {
        n -= v.iov_len;
        ++op->first;
      } else {
        v.iov_base = static_cast<uint8_t*>(v.iov_base) + n;
        v.iov_len -= n;
        n = 0;
      }
    }
    while (op->first < op->iov.size() && op->iov[op->first].iov_len == 0) ++op->first;
    if (op->first < op->iov.size()) return submit(op);  // a short transfer: the rest
    finish(op, static_cast<int64_t>(op->transferred));
  }

  void finish(Op* op, int64_t result) {
    std::unique_ptr<Op> owned(op);
    owned->done(result);
  }

  std::string name_;
  UniqueFd fd_;
  uint64_t size_;
  bool read_only_;
  unsigned index_;
  UniqueFd event_fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex service_mutex_;
  std::function<void()> service_;
  // The thread's own.
  unsigned in_flight_ = 0;
  bool unsubmitted_ = false;
};

}  // namespace

Result<std::unique_ptr<BlockBackend>> open_uring_disk(const std::string& path, bool read_only, unsigned index) {
  UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) {
    return Status::from_errno(errno, std::string("open disk image ") + path + (read_only ? " read-only" : ""));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "fstat disk image " + path);
  if (!S_ISREG(st.st_mode)) return invalid_argument("disk image " + path + " is not a regular file");
  auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0 || size % kImageAlign != 0) {
    return invalid_argument("disk image " + path + " is " + std::to_string(size) +
                            " bytes, not a positive multiple of 4096");
  }
  auto backend = std::make_unique<UringBlockBackend>(path, std::move(fd), size, read_only, index);
  CKPT_RETURN_IF_ERROR(backend->init());
  return std::unique_ptr<BlockBackend>(std::move(backend));
}

}  // namespace ckpt::vmm::devices::virtio
