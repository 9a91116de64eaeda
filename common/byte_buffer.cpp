#include "common/byte_buffer.h"

#include <cstring>

namespace ckpt {

ByteBuffer& ByteBuffer::operator=(ByteBuffer&& other) noexcept {
  if (this != &other) {
    this->~ByteBuffer();
    storage_ = std::move(other.storage_);
    capacity_ = other.capacity_;
    size_ = other.size_;
    home_ = std::move(other.home_);
    other.capacity_ = 0;
    other.size_ = 0;
  }
  return *this;
}

ByteBuffer::~ByteBuffer() {
  if (home_ && storage_) home_->give_back(std::move(storage_));
  storage_.reset();
  home_.reset();
}

ByteBuffer BufferPool::take() {
  ByteBuffer buffer;
  {
    std::lock_guard lock(mutex_);
    if (!free_.empty()) {
      buffer.storage_ = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!buffer.storage_) {
    buffer.storage_.reset(new uint8_t[capacity_]);
    // Fault the pages in now, once, instead of on every first write to a recycled buffer.
    std::memset(buffer.storage_.get(), 0, capacity_);
  }
  buffer.capacity_ = capacity_;
  buffer.home_ = shared_from_this();
  return buffer;
}

void BufferPool::give_back(std::unique_ptr<uint8_t[]> storage) {
  std::lock_guard lock(mutex_);
  free_.push_back(std::move(storage));
}

}  // namespace ckpt
