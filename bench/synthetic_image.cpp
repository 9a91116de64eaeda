#include "bench/synthetic_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/unique_fd.h"

namespace ckpt::bench {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  Rng rng(a ^ (b * 0xd6e8feb86659fd93ull) ^ (c * 0xa0761d6478bd642full));
  rng.next();
  return rng.next();
}

void plan_class_runs(Rng& rng, uint64_t first_gfn, uint64_t count, std::vector<ClassRun>* out) {
  while (count > 0) {
    auto length = static_cast<uint32_t>(std::min<uint64_t>(count, rng.between(1, 256)));
    uint64_t roll = rng.below(4);  // 0: zero, 1-2: structured, 3: random
    PageClass cls = roll == 0 ? PageClass::kZero : roll == 3 ? PageClass::kRandom : PageClass::kStructured;
    out->push_back(ClassRun{first_gfn, length, cls});
    first_gfn += length;
    count -= length;
  }
}

std::vector<uint64_t> choose_dirty_pages(Rng& rng, uint64_t pages, uint64_t target) {
  target = std::min(target, pages);
  std::vector<uint8_t> dirty(pages, 0);
  uint64_t marked = 0;
  auto mark = [&](uint64_t gfn) {
    marked += dirty[gfn] ? 0 : 1;
    dirty[gfn] = 1;
  };
  uint64_t clustered_target = target - target / 4;
  while (marked < clustered_target) {
    uint64_t start = rng.below(pages);
    uint64_t end = std::min(pages, start + rng.between(16, 512));
    for (uint64_t gfn = start; gfn < end && marked < clustered_target; ++gfn) mark(gfn);
  }
  while (marked < target) mark(rng.below(pages));
  std::vector<uint64_t> gfns;
  gfns.reserve(target);
  for (uint64_t gfn = 0; gfn < pages; ++gfn) {
    if (dirty[gfn]) gfns.push_back(gfn);
  }
  return gfns;
}

std::vector<ClassRun> plan_rewrite(Rng& rng, const std::vector<uint64_t>& sorted_gfns) {
  std::vector<ClassRun> runs;
  for (size_t i = 0; i < sorted_gfns.size();) {
    size_t j = i + 1;
    while (j < sorted_gfns.size() && sorted_gfns[j] == sorted_gfns[j - 1] + 1) ++j;
    plan_class_runs(rng, sorted_gfns[i], j - i, &runs);
    i = j;
  }
  return runs;
}

// ---- content generators: each fills one run's bytes (a whole number of pages) from its own Rng ----
namespace {

void fill_random(uint8_t* out, size_t bytes, Rng& rng) {
  for (size_t i = 0; i < bytes; i += sizeof(uint64_t)) {
    uint64_t v = rng.next();
    std::memcpy(out + i, &v, sizeof v);
  }
}

// Where a run's "heap" lives: pointers into it share their high bits, as user-space and kernel pointers do.
uint64_t arena_base(Rng& rng) { return 0x00007f0000000000ull | (rng.below(1u << 16) << 24); }

// An array of 32-byte objects: an id counting up, a type from a small set, mostly-clear flags, a slowly creeping
// counter, a link into one arena and a small or zero value.
void fill_records(uint8_t* out, size_t bytes, Rng& rng) {
  struct Record {
    uint32_t id;
    uint16_t type;
    uint16_t flags;
    uint64_t counter;
    uint64_t link;
    uint64_t value;
  };
  static_assert(sizeof(Record) == 32);
  uint64_t arena = arena_base(rng);
  auto id = static_cast<uint32_t>(rng.below(1u << 20));
  uint64_t counter = rng.below(1u << 30);
  for (size_t at = 0; at + sizeof(Record) <= bytes; at += sizeof(Record)) {
    uint64_t r = rng.next();
    Record rec{};
    rec.id = id++;
    rec.type = static_cast<uint16_t>(1 + (r & 7) % 6);
    rec.flags = (r >> 3 & 7) == 0 ? static_cast<uint16_t>(0x8000 | (r >> 6 & 3)) : 0;
    counter += r >> 8 & 15;
    rec.counter = counter;
    rec.link = arena + (r >> 12 & 0xffff) * 64;
    rec.value = (r >> 28 & 1) ? (r >> 32) % 1000 : 0;
    std::memcpy(out + at, &rec, sizeof rec);
  }
}

// A table of pointers, a third of them null, the rest 16-byte aligned into one arena.
void fill_pointers(uint8_t* out, size_t bytes, Rng& rng) {
  uint64_t arena = arena_base(rng);
  for (size_t at = 0; at < bytes; at += sizeof(uint64_t)) {
    uint64_t r = rng.next();
    uint64_t v = r % 3 == 0 ? 0 : arena + (r >> 8 & 0xfffff) * 16;
    std::memcpy(out + at, &v, sizeof v);
  }
}

// Mostly zero with a few small words scattered in, like a half-used static data section.
void fill_sparse(uint8_t* out, size_t bytes, Rng& rng) {
  std::memset(out, 0, bytes);
  for (size_t page = 0; page < bytes; page += kPageSize) {
    for (uint64_t k = rng.between(8, 48); k-- > 0;) {
      uint64_t v = rng.below(1u << 16);
      std::memcpy(out + page + rng.below(kPageSize / 8) * 8, &v, sizeof v);
    }
  }
}

// Appends text into a fixed span, silently stopping at its end.
class TextWriter {
 public:
  TextWriter(uint8_t* out, size_t size) : out_(out), size_(size) {}
  bool full() const { return used_ == size_; }
  void put(std::string_view s) {
    size_t n = std::min(s.size(), size_ - used_);
    std::memcpy(out_ + used_, s.data(), n);
    used_ += n;
  }
  void put_number(uint64_t v, int min_digits = 1) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 || n < min_digits);
    while (n > 0 && !full()) out_[used_++] = static_cast<uint8_t>(digits[--n]);
  }

 private:
  uint8_t* out_;
  size_t size_;
  size_t used_ = 0;
};

// Log lines with a limited vocabulary, a clock that moves forward and request ids that count up: the text a
// service keeps in its buffers.
void fill_text(uint8_t* out, size_t bytes, Rng& rng) {
  static constexpr std::array<std::string_view, 4> kLevels = {"INFO ", "DEBUG", "WARN ", "ERROR"};
  static constexpr std::array<std::string_view, 6> kMethods = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
  static constexpr std::array<std::string_view, 10> kPaths = {
      "/api/v1/orders/", "/api/v1/users/", "/api/v1/items/", "/api/v2/search?q=", "/static/img/",
      "/api/v1/carts/", "/healthz?probe=", "/api/v1/sessions/", "/api/v2/reports/", "/metrics?scrape="};
  static constexpr std::array<std::string_view, 7> kStatus = {"200", "200", "200", "201", "304", "404", "500"};
  static constexpr std::array<std::string_view, 8> kWords = {
      "cache=hit",  "cache=miss", "upstream=db-primary", "upstream=db-replica",
      "retry=0",    "retry=1",    "user_agent=\"Mozilla/5.0 (X11; Linux x86_64)\"", "tls=1.3"};
  TextWriter text(out, bytes);
  uint64_t clock_ms = rng.below(86'400'000);
  uint64_t request = rng.below(1u << 24);
  while (!text.full()) {
    uint64_t r = rng.next();
    clock_ms += r & 63;
    text.put("2025-03-14T");
    text.put_number(clock_ms / 3'600'000 % 24, 2);
    text.put(":");
    text.put_number(clock_ms / 60'000 % 60, 2);
    text.put(":");
    text.put_number(clock_ms / 1000 % 60, 2);
    text.put(".");
    text.put_number(clock_ms % 1000, 3);
    text.put("Z ");
    text.put(kLevels[(r >> 6 & 15) < 12 ? 0 : (r >> 6 & 3)]);
    text.put(" [worker-");
    text.put_number(r >> 10 & 7);
    text.put("] req=");
    text.put_number(request++);
    text.put(" ");
    text.put(kMethods[(r >> 13) % kMethods.size()]);
    text.put(" ");
    text.put(kPaths[(r >> 16) % kPaths.size()]);
    text.put_number(r >> 20 & 0xffff);
    text.put(" status=");
    text.put(kStatus[(r >> 36) % kStatus.size()]);
    text.put(" took=");
    text.put_number(r >> 40 & 255);
    text.put("ms ");
    text.put(kWords[(r >> 48) % kWords.size()]);
    text.put("\n");
  }
}

enum class Flavour { kRecords, kText, kPointers, kSparse };

// Structured runs mix the flavours; the shares are set so that zstd -1 compresses structured pages ~3-5x.
Flavour pick_flavour(Rng& rng) {
  uint64_t roll = rng.below(10);
  if (roll < 4) return Flavour::kRecords;
  if (roll < 7) return Flavour::kText;
  if (roll < 9) return Flavour::kPointers;
  return Flavour::kSparse;
}

void fill_structured(uint8_t* out, size_t bytes, Rng& rng) {
  switch (pick_flavour(rng)) {
    case Flavour::kRecords: return fill_records(out, bytes, rng);
    case Flavour::kText: return fill_text(out, bytes, rng);
    case Flavour::kPointers: return fill_pointers(out, bytes, rng);
    case Flavour::kSparse: return fill_sparse(out, bytes, rng);
  }
}

}  // namespace

Result<std::unique_ptr<GuestImage>> GuestImage::create(uint64_t pages) {
  size_t bytes = pages * kPageSize;
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (base == MAP_FAILED) return Status::from_errno(errno, "mmap " + std::to_string(bytes) + " bytes of guest image");
  return std::unique_ptr<GuestImage>(new GuestImage(static_cast<uint8_t*>(base), pages));
}

GuestImage::~GuestImage() { ::munmap(base_, bytes()); }

Status GuestImage::load(const std::string& path, std::vector<uint64_t>* changed) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open " + path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno(errno, "stat " + path);
  if (static_cast<uint64_t>(st.st_size) != bytes()) {
    return invalid_argument(path + " is " + std::to_string(st.st_size) + " bytes; the image is " +
                            std::to_string(bytes()));
  }
  static const std::vector<uint8_t> zero(kPageSize, 0);
  std::vector<uint8_t> chunk(8u << 20);
  for (uint64_t at = 0; at < bytes();) {
    ssize_t n = ::pread(fd.get(), chunk.data(), std::min<uint64_t>(chunk.size(), bytes() - at), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "read " + path + " at " + std::to_string(at));
    if (n % kPageSize != 0) return Status(StatusCode::kIoError, "short read of " + path + " at " + std::to_string(at));
    for (size_t off = 0; off < static_cast<size_t>(n); off += kPageSize) {
      uint64_t gfn = (at + off) / kPageSize;
      uint8_t* page = base_ + gfn * kPageSize;
      if (std::memcmp(page, chunk.data() + off, kPageSize) == 0) continue;
      std::memcpy(page, chunk.data() + off, kPageSize);
      classes_[gfn] = std::memcmp(page, zero.data(), kPageSize) == 0 ? PageClass::kZero : PageClass::kStructured;
      if (changed != nullptr) changed->push_back(gfn);
    }
    at += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

void GuestImage::fill_run(const ClassRun& run, uint64_t run_seed) {
  uint8_t* out = base_ + run.first_gfn * kPageSize;
  size_t bytes = size_t{run.count} * kPageSize;
  Rng rng(run_seed);
  switch (run.page_class) {
    case PageClass::kZero: std::memset(out, 0, bytes); break;
    case PageClass::kStructured: fill_structured(out, bytes, rng); break;
    case PageClass::kRandom: fill_random(out, bytes, rng); break;
  }
  std::fill_n(classes_.begin() + static_cast<ptrdiff_t>(run.first_gfn), run.count, run.page_class);
}

void GuestImage::fill(const std::vector<ClassRun>& runs, uint64_t seed, uint64_t generation, ThreadPool& pool) {
  // Runs are disjoint, so workers never touch the same page or class entry.
  pool.parallel_for(runs.size(), [&](size_t i, unsigned) {
    fill_run(runs[i], mix_seed(seed, generation, runs[i].first_gfn));
  });
}

std::vector<double> GuestImage::class_fractions() const {
  std::vector<double> counts(kPageClassCount, 0);
  for (PageClass c : classes_) counts[static_cast<size_t>(c)] += 1;
  for (double& c : counts) c /= static_cast<double>(pages_);
  return counts;
}

}  // namespace ckpt::bench
