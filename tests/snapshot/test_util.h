// Helpers for store tests: scratch directories and a reference model of guest memory (and disks).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "snapshot/store.h"

namespace ckpt::snap::testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Guest memory as the tests expect it to be, with helpers to change pages the way a guest would.
class GuestModel {
 public:
  GuestModel(uint64_t pages, uint64_t seed) : memory_(pages * format::kPageSize), rng_(seed) {}
  uint64_t pages() const { return memory_.size() / format::kPageSize; }
  uint8_t* page(uint64_t gfn) { return memory_.data() + gfn * format::kPageSize; }
  const std::vector<uint8_t>& bytes() const { return memory_; }
  // Fills a page with content of a random kind: zero, compressible text-like data, or random bytes.
  void scribble(uint64_t gfn);
  std::mt19937_64& rng() { return rng_; }

 private:
  std::vector<uint8_t> memory_;
  std::mt19937_64 rng_;
};

// A VM as the tests expect it: guest memory and disks, each a GuestModel (a disk's 4 KiB blocks are its pages).
struct VmModel {
  VmModel(uint64_t pages, std::vector<DiskSpec> disk_specs, uint64_t seed);
  void scribble_all();  // every page and every block
  GuestModel memory;
  std::vector<DiskSpec> specs;
  std::vector<GuestModel> disks;  // disks[i] is disk i + 1
};

// Writes every page of `model` as a base epoch.
std::shared_ptr<const EpochMeta> write_base(Store& store, GuestModel& model, EpochOptions options = {});
// Scribbles `count` random pages (possibly repeating) and writes them as a delta. Returns the dirtied gfns.
std::shared_ptr<const EpochMeta> write_random_delta(Store& store, GuestModel& model, uint64_t count,
                                                    EpochOptions options = {});
// Writes every page and every disk block of `model` as a base epoch with its disks, memory and disks interleaved.
std::shared_ptr<const EpochMeta> write_vm_base(Store& store, VmModel& model, EpochOptions options = {});
// Scribbles `pages` random memory pages and `blocks` random blocks of each disk (possibly repeating), interleaved so
// that blocks of every space alternate, and writes them as a delta.
std::shared_ptr<const EpochMeta> write_vm_delta(Store& store, VmModel& model, uint64_t pages, uint64_t blocks,
                                                EpochOptions options = {});
// Restores `epoch` from `dir` with a freshly loaded catalog and returns the memory.
std::vector<uint8_t> restore_epoch(const std::string& dir, uint64_t epoch);
// The same for disk `disk`, through restore_disk_to_fd into an anonymous memory file; empty when it fails.
std::vector<uint8_t> restore_disk(const std::string& dir, uint64_t epoch, uint32_t disk);
// Reads a whole file.
std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace ckpt::snap::testing
