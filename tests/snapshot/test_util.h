// Helpers for store tests: scratch directories and a reference model of guest memory.
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

// Writes every page of `model` as a base epoch.
std::shared_ptr<const EpochMeta> write_base(Store& store, GuestModel& model, EpochOptions options = {});
// Scribbles `count` random pages (possibly repeating) and writes them as a delta. Returns the dirtied gfns.
std::shared_ptr<const EpochMeta> write_random_delta(Store& store, GuestModel& model, uint64_t count,
                                                    EpochOptions options = {});
// Restores `epoch` from `dir` with a freshly loaded catalog and returns the memory.
std::vector<uint8_t> restore_epoch(const std::string& dir, uint64_t epoch);
// Reads a whole file.
std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace ckpt::snap::testing
