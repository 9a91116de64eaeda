#include "vmm/devices/virtio/virtio_blk.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "vmm/devices/virtio/virtio_blk_state.h"

namespace ckpt::vmm::devices::virtio {
namespace {

constexpr size_t kConfigBytes = 64;  // struct virtio_blk_config up to the fields of the features offered, and more
constexpr size_t kConfigCapacity = 0, kConfigSegMax = 12;

uint64_t features_for(bool read_only) {
  uint64_t f = mmio::kFeatureVersion1 | VirtioBlk::kFeatureSegMax | VirtioBlk::kFeatureFlush;
  if (read_only) f |= VirtioBlk::kFeatureRo;
  return f;
}

DeviceIdentity identity_for(uint64_t features, uint64_t capacity_sectors) {
  DeviceIdentity id;
  id.device_id = VirtioBlk::kDeviceId;
  id.features = features;
  id.queue_max = SplitQueue::kMaxSize;
  id.config.assign(kConfigBytes, 0);
  uint32_t seg_max = VirtioBlk::kSegMax;
  std::memcpy(id.config.data() + kConfigCapacity, &capacity_sectors, sizeof capacity_sectors);
  std::memcpy(id.config.data() + kConfigSegMax, &seg_max, sizeof seg_max);
  return id;
}

// The image's file name, as much of it as fits, NUL-padded (a 20-byte serial is not NUL-terminated).
std::array<uint8_t, blk::kIdBytes> serial_for(const std::string& name) {
  std::array<uint8_t, blk::kIdBytes> serial{};
  size_t slash = name.find_last_of('/');
  std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
  std::memcpy(serial.data(), base.data(), std::min(base.size(), serial.size()));
  return serial;
}

}  // namespace

VirtioBlk::VirtioBlk(GuestRam ram, std::unique_ptr<BlockBackend> backend, std::function<void()> raise_irq,
                     std::string serial)
    : ram_(std::move(ram)),
      capacity_bytes_(backend->size_bytes() / blk::kSectorBytes * blk::kSectorBytes),
      read_only_(backend->read_only()),
      features_(features_for(read_only_)),
      serial_(serial_for(serial.empty() ? backend->name() : serial)),
      name_(backend->name()),
      backend_(std::move(backend)),
      transport_(identity_for(features_, capacity_sectors()),
                 [this](const QueueRegs& regs) { return check_queue(regs); }, std::move(raise_irq)) {
  backend_->attach([this] { service(); });
}

VirtioBlk::~VirtioBlk() {
  // First, while every member still exists: the backend completes what is in flight, calling back into finish().
  backend_.reset();
}

QueueLayout VirtioBlk::layout_of(const QueueRegs& regs) {
  return QueueLayout{regs.num, regs.desc, regs.driver, regs.device};
}

Status VirtioBlk::check_queue(const QueueRegs& regs) {
  Status s = SplitQueue::check_layout(layout_of(regs), ram_);
  if (!s.is_ok()) log_guest_error("queue refused: " + s.message());
  return s;
}

void VirtioBlk::log_guest_error(const std::string& what) {
  if (guest_error_logged_) {
    CKPT_LOG(kDebug) << "virtio-blk " << name_ << ": " << what;
    return;
  }
  guest_error_logged_ = true;
  CKPT_LOG(kWarn) << "virtio-blk " << name_ << ": " << what
                  << " (the guest's further errors are logged at debug level)";
}

uint64_t VirtioBlk::mmio_read(uint64_t offset, unsigned size) {
  std::lock_guard lock(mu_);
  return transport_.read(offset, size);
}

void VirtioBlk::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  bool kick = false;
  {
    std::unique_lock lock(mu_);
    if (transport_.stops_queue(offset, size, value)) wait_idle_locked(lock);
    switch (transport_.write(offset, size, value)) {
      case MmioTransport::Event::kReset:
        queue_.stop();
        break;
      case MmioTransport::Event::kQueueStopped:
        queue_.stop();
        break;
      case MmioTransport::Event::kQueueReady:
        queue_.start(layout_of(transport_.queue()), 0, 0);
        break;
      case MmioTransport::Event::kNotify:
      case MmioTransport::Event::kDriverOk:
        kick = can_take_locked();
        break;
      case MmioTransport::Event::kNone:
        break;
    }
  }
  // Outside the lock: a synchronous backend runs the service function right here.
  if (kick) backend_->kick();
}

void VirtioBlk::wait_idle_locked(std::unique_lock<std::mutex>& lock) {
  ++draining_;
  idle_.wait(lock, [&] { return in_flight_ == 0; });
  --draining_;
}

bool VirtioBlk::can_take_locked() const {
  return !paused_ && draining_ == 0 && transport_.live() && queue_.running() &&
         in_flight_ < queue_.layout().size;
}

void VirtioBlk::service() {
  for (;;) {
    std::vector<Taken> io;
    {
      std::lock_guard lock(mu_);
      bool used_pushed = false;
      take_locked(io, used_pushed);
      if (used_pushed) interrupt_if_wanted_locked();
    }
    if (io.empty()) return;
    for (Taken& t : io) submit(std::move(t));
  }
}

// Takes what the available ring holds: requests needing the disk go to `io` (and count as in flight); the rest are
// answered here.
void VirtioBlk::take_locked(std::vector<Taken>& io, bool& used_pushed) {
  while (can_take_locked()) {
    SplitQueue::Popped popped = queue_.pop(ram_);
    switch (popped.outcome) {
      case SplitQueue::PopOutcome::kEmpty:
        return;
      case SplitQueue::PopOutcome::kBroken:
        log_guest_error(popped.error + "; the device needs a reset");
        transport_.set_needs_reset();
        return;
      case SplitQueue::PopOutcome::kBadChain:
        log_guest_error(popped.error);
        answer_locked(popped.chain.head, BlkRequest{}, 0, 0);  // no status byte to trust: used length 0
        used_pushed = true;
        continue;
      case SplitQueue::PopOutcome::kChain:
        break;
    }
    BlkRequest r = parse_blk_request(popped.chain, ram_, capacity_bytes_, read_only_);
    switch (r.kind) {
      case BlkRequest::Kind::kNoAnswer:
      case BlkRequest::Kind::kAnswer:
        log_guest_error("request " + std::to_string(popped.chain.head) + ": " + r.error);
        answer_locked(popped.chain.head, r, r.status, 0);
        used_pushed = true;
        continue;
      case BlkRequest::Kind::kGetId: {
        uint64_t n = 0;
        for (const Segment& s : r.data) {
          if (n == serial_.size()) break;
          uint64_t part = std::min<uint64_t>(s.len, serial_.size() - n);
          (void)ram_.write(s.gpa, serial_.data() + n, part);
          n += part;
        }
        answer_locked(popped.chain.head, r, blk::kStatusOk, n);
        used_pushed = true;
        continue;
      }
      case BlkRequest::Kind::kWrite:
        if (r.data_bytes > 0) {
          // Recorded before the data can reach the image, so no harvest can miss a block the image holds.
          uint64_t first = r.offset / kBlockBytes, last = (r.offset + r.data_bytes - 1) / kBlockBytes;
          written_.add_range(first, last - first + 1);
        }
        break;
      case BlkRequest::Kind::kRead:
      case BlkRequest::Kind::kFlush:
        break;
    }
    ++in_flight_;
    io.push_back(Taken{popped.chain.head, std::move(r)});
  }
}

void VirtioBlk::submit(Taken t) {
  const BlkRequest& r = t.request;
  if (r.kind == BlkRequest::Kind::kFlush) {
    backend_->flush([this, t](int64_t result) { finish(t, result); });
    return;
  }
  if (r.data_bytes == 0) return finish(t, 0);
  std::vector<iovec> buffers;
  buffers.reserve(r.data.size());
  for (const Segment& s : r.data) {
    uint8_t* host = ram_.host(s.gpa, s.len);
    if (host == nullptr) return finish(t, -EFAULT);  // the queue checked every buffer: never
    buffers.push_back(iovec{host, s.len});
  }
  auto done = [this, t](int64_t result) { finish(t, result); };
  if (r.kind == BlkRequest::Kind::kRead) {
    backend_->read(r.offset, std::move(buffers), std::move(done));
  } else {
    backend_->write(r.offset, std::move(buffers), std::move(done));
  }
}

void VirtioBlk::finish(const Taken& t, int64_t result) {
  const BlkRequest& r = t.request;
  bool ok = result >= 0 && static_cast<uint64_t>(result) == (r.kind == BlkRequest::Kind::kFlush ? 0 : r.data_bytes);
  std::lock_guard lock(mu_);
  if (r.kind == BlkRequest::Kind::kRead) {
    // Whatever the outcome: a failed read may have filled part of the buffers.
    for (const Segment& s : r.data) ram_.mark_written(s.gpa, s.len);
  }
  if (!ok) {
    log_guest_error("disk " + std::string(r.kind == BlkRequest::Kind::kRead    ? "read"
                                          : r.kind == BlkRequest::Kind::kWrite ? "write"
                                                                               : "flush") +
                    " at offset " + std::to_string(r.offset) + " failed: " +
                    (result < 0 ? std::strerror(static_cast<int>(-result)) : "short transfer"));
  }
  // The used length counts what the device wrote into the chain: a read's data, and the status byte.
  uint64_t written = ok && r.kind == BlkRequest::Kind::kRead ? r.data_bytes : 0;
  answer_locked(t.head, r, ok ? blk::kStatusOk : blk::kStatusIoErr, written);
  interrupt_if_wanted_locked();
  if (--in_flight_ == 0) idle_.notify_all();
}

void VirtioBlk::answer_locked(uint16_t head, const BlkRequest& r, uint8_t status, uint64_t data_written) {
  uint64_t len = 0;
  if (r.kind != BlkRequest::Kind::kNoAnswer) {
    (void)ram_.write(r.status_gpa, &status, 1);
    len = data_written + 1;
  }
  queue_.push(ram_, head, static_cast<uint32_t>(std::min<uint64_t>(len, UINT32_MAX)));
}

void VirtioBlk::interrupt_if_wanted_locked() {
  if (queue_.running() && queue_.interrupt_wanted(ram_)) transport_.interrupt(mmio::kInterruptUsedBuffer);
}

// The invariant a checkpoint rests on: in-flight requests are completed before the capture. Once pause() returns,
// every request the device took from the available ring is complete in the image and in the used ring, and no new
// one is taken, so guest memory, this device's state and the image describe one instant. Requests not yet taken
// stay in the available ring (guest memory) and are taken from last_avail_idx after a restore.
Status VirtioBlk::pause(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  paused_ = true;
  if (!idle_.wait_for(lock, timeout, [&] { return in_flight_ == 0; })) {
    return Status(StatusCode::kAborted, "virtio-blk " + backend_->name() + ": " + std::to_string(in_flight_) +
                                            " requests still in flight after " + std::to_string(timeout.count()) +
                                            " ms");
  }
  return Status::ok();
}

void VirtioBlk::resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  backend_->kick();  // whatever the guest notified while the device was paused
}

std::vector<uint64_t> VirtioBlk::take_written_blocks() {
  std::lock_guard lock(mu_);
  return written_.take();
}

void VirtioBlk::return_written_blocks(std::span<const uint64_t> blocks) {
  std::lock_guard lock(mu_);
  for (uint64_t b : blocks) written_.add(b);
}

std::vector<uint8_t> VirtioBlk::save_state() const {
  std::lock_guard lock(mu_);
  VirtioBlkState s;
  s.transport = transport_.state();
  s.last_avail_idx = queue_.last_avail_idx();
  s.used_idx = queue_.used_idx();
  return encode_virtio_blk_state(s);
}

Status VirtioBlk::load_state(std::span<const uint8_t> blob) {
  CKPT_ASSIGN_OR_RETURN(VirtioBlkState s, decode_virtio_blk_state(blob));
  std::lock_guard lock(mu_);
  if (in_flight_ != 0) {
    return invalid_argument("virtio-blk " + backend_->name() + ": load_state with " + std::to_string(in_flight_) +
                            " requests in flight");
  }
  CKPT_RETURN_IF_ERROR(transport_.check_state(s.transport).with_context("virtio-blk " + backend_->name()));
  if (s.transport.queue.ready && s.last_avail_idx != s.used_idx) {
    return corruption("virtio-blk state: the device had taken " +
                      std::to_string(static_cast<uint16_t>(s.last_avail_idx - s.used_idx)) +
                      " requests it had not completed (last_avail_idx " + std::to_string(s.last_avail_idx) +
                      ", used_idx " + std::to_string(s.used_idx) + "): not a quiesced device's state");
  }
  if (!s.transport.queue.ready && (s.last_avail_idx != 0 || s.used_idx != 0)) {
    return corruption("virtio-blk state: ring positions " + std::to_string(s.last_avail_idx) + "/" +
                      std::to_string(s.used_idx) + " for a queue that is not ready");
  }
  transport_.set_state(s.transport);
  if (s.transport.queue.ready) {
    queue_.start(layout_of(s.transport.queue), s.last_avail_idx, s.used_idx);
  } else {
    queue_.stop();
  }
  return Status::ok();
}

size_t VirtioBlk::requests_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

bool VirtioBlk::needs_reset() const {
  std::lock_guard lock(mu_);
  return transport_.state().status & mmio::kStatusNeedsReset;
}

uint16_t VirtioBlk::last_avail_idx() const {
  std::lock_guard lock(mu_);
  return queue_.last_avail_idx();
}

}  // namespace ckpt::vmm::devices::virtio
