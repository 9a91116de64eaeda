// Raw memory images of a guest over time (bench/linux_guest_images.sh captures them from a Linux guest): the *.img
// files of a directory in name order, each the whole guest memory at one moment. store_bench writes them as a base
// and deltas; pause_bench replays the pages that changed between two of them as one epoch's dirty set.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::bench {

// The *.img files of `dir` in name order: at least one, all of one size, a whole number of pages.
Result<std::vector<std::string>> list_memory_images(const std::string& dir);

// The images of a directory mapped read-only (the page cache holds them), with the pages that differ between each
// image and the next.
class ImageSequence {
 public:
  static Result<std::unique_ptr<ImageSequence>> open(const std::string& dir);
  ~ImageSequence();
  ImageSequence(const ImageSequence&) = delete;
  ImageSequence& operator=(const ImageSequence&) = delete;

  size_t count() const { return maps_.size(); }
  uint64_t bytes() const { return bytes_; }
  const std::vector<std::string>& files() const { return files_; }
  std::span<const uint8_t> image(size_t i) const { return {maps_[i], bytes_}; }
  // The gfns whose page differs between image i and image i + 1, ascending.
  const std::vector<uint64_t>& changed(size_t i) const { return changed_[i]; }

 private:
  ImageSequence() = default;
  std::vector<std::string> files_;
  std::vector<const uint8_t*> maps_;
  uint64_t bytes_ = 0;
  std::vector<std::vector<uint64_t>> changed_;
};

// Walks a guest's memory through the images and back (0, 1, ..., n-1, n-2, ..., 0, 1, ...), so that every step's
// dirty set is one the guest really produced between two captures, however many steps a bench takes. Pages below
// `first_gfn` are never written (the software backend's workload control blocks live there).
class ImageReplay {
 public:
  ImageReplay(const ImageSequence& images, uint64_t first_gfn) : images_(images), first_gfn_(first_gfn) {}
  // Writes the first image into `memory` (the pages from first_gfn on) and starts the walk there.
  void load_first(std::span<uint8_t> memory);
  // Moves `memory` to the next image of the walk by writing the pages that differ; returns how many it wrote.
  uint64_t step(std::span<uint8_t> memory);

 private:
  const ImageSequence& images_;
  uint64_t first_gfn_;
  size_t at_ = 0;
  bool forward_ = true;
};

}  // namespace ckpt::bench
