// A deterministic synthetic guest memory image for the store benchmark. It is shaped like real memory: content
// classes come in runs of 1..256 pages (about 25% zero pages, 50% structured data, 25% random bytes), and a page's
// bytes depend only on the seed, its run and the generation that wrote it, so a run is reproducible on any thread
// count.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"

namespace ckpt::bench {

inline constexpr size_t kPageSize = 4096;

enum class PageClass : uint8_t { kZero = 0, kStructured = 1, kRandom = 2 };
inline constexpr size_t kPageClassCount = 3;

// splitmix64: tiny, fast and good enough to make benchmark data; not for anything secret.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }           // n > 0; the modulo bias is irrelevant here
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }  // inclusive

 private:
  uint64_t state_;
};

// Mixes several values into one seed, so (seed, generation, gfn) triples give unrelated streams.
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

// A stretch of consecutive pages that get content of one class.
struct ClassRun {
  uint64_t first_gfn = 0;
  uint32_t count = 0;
  PageClass page_class = PageClass::kZero;
};

// Splits [first_gfn, first_gfn + count) into runs of 1..256 pages, each class drawn 25% zero / 50% structured /
// 25% random, appended to `out`.
void plan_class_runs(Rng& rng, uint64_t first_gfn, uint64_t count, std::vector<ClassRun>* out);

// Chooses `target` distinct gfns out of `pages`, three quarters in clustered runs of 16..512 pages and the rest
// scattered one by one, the way a guest dirties memory: a few hot regions plus stray writes. Sorted ascending.
std::vector<uint64_t> choose_dirty_pages(Rng& rng, uint64_t pages, uint64_t target);

// Groups sorted gfns into runs of consecutive pages and plans their new content classes.
std::vector<ClassRun> plan_rewrite(Rng& rng, const std::vector<uint64_t>& sorted_gfns);

// The guest memory: an anonymous mapping, pre-faulted at creation (a page fault costs ~11-15 us here; without this
// the first pass would measure the kernel, not the code).
class GuestImage {
 public:
  static Result<std::unique_ptr<GuestImage>> create(uint64_t pages);
  ~GuestImage();
  GuestImage(const GuestImage&) = delete;
  GuestImage& operator=(const GuestImage&) = delete;

  uint64_t pages() const { return pages_; }
  uint64_t bytes() const { return pages_ * kPageSize; }
  const uint8_t* page(uint64_t gfn) const { return base_ + gfn * kPageSize; }
  std::span<const uint8_t> memory() const { return {base_, bytes()}; }
  PageClass page_class(uint64_t gfn) const { return classes_[gfn]; }

  // Writes fresh content into every run, in parallel on `pool`. `generation` distinguishes rewrites of a page.
  void fill(const std::vector<ClassRun>& runs, uint64_t seed, uint64_t generation, ThreadPool& pool);
  // Replaces the image with the raw memory image at `path` (exactly bytes() long), appending the gfns whose content
  // changed to `changed` (ascending). Loaded pages count as zero or structured: their real class is unknown.
  Status load(const std::string& path, std::vector<uint64_t>* changed);
  // Fraction of pages per class, indexed by PageClass.
  std::vector<double> class_fractions() const;

 private:
  GuestImage(uint8_t* base, uint64_t pages) : base_(base), pages_(pages), classes_(pages, PageClass::kZero) {}
  void fill_run(const ClassRun& run, uint64_t run_seed);

  uint8_t* base_;
  uint64_t pages_;
  std::vector<PageClass> classes_;
};

}  // namespace ckpt::bench
