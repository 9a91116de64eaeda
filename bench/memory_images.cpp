#include "bench/memory_images.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "bench/bench_util.h"
#include "common/unique_fd.h"

namespace ckpt::bench {

Result<std::vector<std::string>> list_memory_images(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".img") files.push_back(entry.path().string());
  }
  if (ec) return Status::from_errno(ec.value(), "list " + dir);
  std::sort(files.begin(), files.end());
  if (files.empty()) return not_found("--images " + dir + " holds no *.img file (bench/linux_guest_images.sh makes them)");
  CKPT_ASSIGN_OR_RETURN(uint64_t size, file_size(files.front()));
  if (size == 0 || size % vmm::guest::kPageSize != 0) {
    return invalid_argument(files.front() + " is " + std::to_string(size) + " bytes, not a whole number of pages");
  }
  for (const std::string& f : files) {
    CKPT_ASSIGN_OR_RETURN(uint64_t other, file_size(f));
    if (other != size) {
      return invalid_argument(f + " is " + std::to_string(other) + " bytes, " + files.front() + " " +
                              std::to_string(size));
    }
  }
  return files;
}

Result<std::unique_ptr<ImageSequence>> ImageSequence::open(const std::string& dir) {
  std::unique_ptr<ImageSequence> seq(new ImageSequence());
  CKPT_ASSIGN_OR_RETURN(seq->files_, list_memory_images(dir));
  CKPT_ASSIGN_OR_RETURN(seq->bytes_, file_size(seq->files_.front()));
  for (const std::string& file : seq->files_) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::from_errno(errno, "open " + file);
    void* map = ::mmap(nullptr, seq->bytes_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
    if (map == MAP_FAILED) return Status::from_errno(errno, "mmap " + file);
    seq->maps_.push_back(static_cast<const uint8_t*>(map));
  }
  const uint64_t pages = seq->bytes_ / vmm::guest::kPageSize;
  for (size_t i = 0; i + 1 < seq->maps_.size(); ++i) {
    std::vector<uint64_t>& changed = seq->changed_.emplace_back();
    for (uint64_t gfn = 0; gfn < pages; ++gfn) {
      const uint64_t at = gfn * vmm::guest::kPageSize;
      if (std::memcmp(seq->maps_[i] + at, seq->maps_[i + 1] + at, vmm::guest::kPageSize) != 0) changed.push_back(gfn);
    }
  }
  return seq;
}

ImageSequence::~ImageSequence() {
  for (const uint8_t* map : maps_) ::munmap(const_cast<uint8_t*>(map), bytes_);
}

void ImageReplay::load_first(std::span<uint8_t> memory) {
  const uint64_t from = first_gfn_ * vmm::guest::kPageSize;
  std::span<const uint8_t> first = images_.image(0);
  std::memcpy(memory.data() + from, first.data() + from, std::min(memory.size(), first.size()) - from);
  at_ = 0;
  forward_ = true;
}

uint64_t ImageReplay::step(std::span<uint8_t> memory) {
  if (images_.count() < 2) return 0;
  if (forward_ && at_ + 1 == images_.count()) forward_ = false;
  if (!forward_ && at_ == 0) forward_ = true;
  const size_t next = forward_ ? at_ + 1 : at_ - 1;
  // The pages that differ between two neighbours are the same set in both directions.
  const std::vector<uint64_t>& changed = images_.changed(std::min(at_, next));
  std::span<const uint8_t> target = images_.image(next);
  uint64_t written = 0;
  for (uint64_t gfn : changed) {
    const uint64_t at = gfn * vmm::guest::kPageSize;
    if (gfn < first_gfn_ || at + vmm::guest::kPageSize > memory.size()) continue;
    std::memcpy(memory.data() + at, target.data() + at, vmm::guest::kPageSize);
    ++written;
  }
  at_ = next;
  return written;
}

}  // namespace ckpt::bench
