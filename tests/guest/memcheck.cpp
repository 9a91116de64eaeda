// memcheck: the workload and integrity check of a Linux test guest (scripts/linux-guest/init runs it as the guest's
// only program; docs/guest.md). It keeps a self-verifying pattern in MIB of memory (tests/guest/memcheck_pattern.h):
// every round rewrites a deterministic subset of the pages with the round's number as their generation (a
// sequential sweep plus a random subset, so the dirty set is a real one), then verifies every page against the
// generation it must hold, and prints one line:
//
//   MEMCHECK round=R bad=B pages=P uptime=U.UU boot=XXXXXXXX dirty=D total_bad=T ms=M
//
// bad is the number of pages wrong in this round's verify (each is then rewritten, so one loss is counted once);
// total_bad their sum since start; boot is random per start of the program, so a guest restored from a checkpoint
// continues with the same boot and the next round, while a rebooted one starts again at round 1 with another boot.
// Each wrong page is named on a line `MEMCHECK-BAD round=R page=N verdict=stale|future|zero|foreign|corrupt
// want=G found=G` (at most 8 a round). With --rounds N the exit status is 0 if total_bad is 0, else 1; 2 on errors.
//
// Static: it runs from a busybox initramfs that has no C library.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

#include "tests/guest/memcheck_pattern.h"

namespace {

using ckpt::guest::kPageBytes;
using ckpt::guest::kPageWords;
using ckpt::guest::Pattern;
using ckpt::guest::monotonic_seconds;
using ckpt::guest::random_u64;
using ckpt::guest::read_uptime;

constexpr int kExitBad = 1;
constexpr int kExitError = 2;
constexpr int kMaxBadLinesPerRound = 8;

// A negative control for tests: in round `round`, damage one page after the writes as a broken checkpoint would.
enum class Inject { kNone, kStale, kZero, kForeign, kFlip };

struct Options {
  uint64_t mib = 192;
  uint64_t rounds = 0;  // 0: forever
  uint64_t interval_ms = 1000;
  bool seed_given = false;
  uint64_t seed = 0;
  uint64_t sweep_rounds = 16;
  uint32_t random_per_mille = 62;
  Inject inject = Inject::kNone;
  uint64_t inject_round = 2;
};

void usage(FILE* out) {
  std::fputs(
      "Usage: memcheck [options]\n"
      "Keeps a self-verifying pattern in memory; prints one MEMCHECK line per round.\n"
      "  --mib N               memory to check, MiB (default 192)\n"
      "  --rounds N            stop after N rounds (default 0: run forever); exit 0 iff no bad page was seen\n"
      "  --interval-ms N       minimum time from one round's start to the next (default 1000)\n"
      "  --seed N              pattern seed (default: random, as the boot id)\n"
      "  --sweep-rounds N      the sequential sweep covers memory every N rounds (default 16)\n"
      "  --random-per-mille N  each page is also rewritten with this probability a round (default 62)\n"
      "  --inject KIND         negative control: damage one page in a round (stale, zero, foreign, flip)\n"
      "  --inject-round R      the round to damage (default 2)\n",
      out);
}

[[noreturn]] void fail(const char* what, const char* detail) {
  std::fprintf(stderr, "memcheck: error: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  std::exit(kExitError);
}

uint64_t parse_number(const char* option, const char* text) {
  std::optional<uint64_t> value = ckpt::guest::parse_whole_number(text);
  if (!value) fail(option, "needs a non-negative integer");
  return *value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) fail(argv[i], "unknown option, or its value is missing (see --help)");
    const char* value = argv[++i];
    if (arg == "--mib") {
      o.mib = parse_number(argv[i - 1], value);
    } else if (arg == "--rounds") {
      o.rounds = parse_number(argv[i - 1], value);
    } else if (arg == "--interval-ms") {
      o.interval_ms = parse_number(argv[i - 1], value);
    } else if (arg == "--seed") {
      o.seed = parse_number(argv[i - 1], value);
      o.seed_given = true;
    } else if (arg == "--sweep-rounds") {
      o.sweep_rounds = parse_number(argv[i - 1], value);
    } else if (arg == "--random-per-mille") {
      o.random_per_mille = static_cast<uint32_t>(parse_number(argv[i - 1], value));
    } else if (arg == "--inject-round") {
      o.inject_round = parse_number(argv[i - 1], value);
    } else if (arg == "--inject") {
      const std::string_view kind = value;
      if (kind == "stale") o.inject = Inject::kStale;
      else if (kind == "zero") o.inject = Inject::kZero;
      else if (kind == "foreign") o.inject = Inject::kForeign;
      else if (kind == "flip") o.inject = Inject::kFlip;
      else fail("--inject", "must be stale, zero, foreign or flip");
    } else {
      fail(argv[i - 1], "unknown option (see --help)");
    }
  }
  if (o.mib == 0 || o.mib > (1u << 20)) fail("--mib", "must be 1 to 1048576");
  if (o.sweep_rounds == 0) fail("--sweep-rounds", "must be at least 1");
  if (o.random_per_mille > 1000) fail("--random-per-mille", "must be 0 to 1000");
  if (o.inject != Inject::kNone && o.inject_round == 0) fail("--inject-round", "must be at least 1");
  return o;
}

class Memory {
 public:
  explicit Memory(uint64_t pages) : pages_(pages) {
    const size_t bytes = pages * kPageBytes;
    // MAP_POPULATE and mlock: every page is backed (and stays resident) before the first round, so the dirty set of
    // a round is the pages it wrote, not the page faults of first touches.
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) fail("cannot map the memory to check (try a smaller --mib)", std::strerror(errno));
    if (mlock(p, bytes) != 0) {
      std::fprintf(stderr, "memcheck: note: mlock failed (%s); pages may be swapped or reclaimed\n", std::strerror(errno));
    }
    base_ = static_cast<uint64_t*>(p);
  }
  uint64_t* page(uint64_t index) { return base_ + index * kPageWords; }
  uint64_t pages() const { return pages_; }

 private:
  uint64_t pages_;
  uint64_t* base_ = nullptr;
};

// Damages one page of round `round` after its writes, as a checkpoint that lost or mangled a page would.
class Injector {
 public:
  Injector(const Options& o, const Pattern& pattern, Memory& memory) : o_(o), pattern_(pattern), memory_(memory) {}

  // Before the round's writes: a stale page is one of this round's pages that keeps its previous contents.
  void before_writes(uint64_t round) {
    if (o_.inject == Inject::kNone || round != o_.inject_round) return;
    victim_ = memory_.pages() / 2;
    if (o_.inject == Inject::kStale) {
      victim_ = memory_.pages();
      for (uint64_t p = 0; p < memory_.pages() && victim_ == memory_.pages(); ++p) {
        if (pattern_.written_in(round, p)) victim_ = p;
      }
      std::memcpy(saved_, memory_.page(victim_), kPageBytes);
    }
  }

  void after_writes(uint64_t round) {
    if (o_.inject == Inject::kNone || round != o_.inject_round) return;
    uint64_t* page = memory_.page(victim_);
    const char* kind = "";
    switch (o_.inject) {
      case Inject::kStale: std::memcpy(page, saved_, kPageBytes); kind = "stale"; break;
      case Inject::kZero: std::memset(page, 0, kPageBytes); kind = "zero"; break;
      case Inject::kForeign:
        std::memcpy(page, memory_.page((victim_ + 1) % memory_.pages()), kPageBytes);
        kind = "foreign";
        break;
      case Inject::kFlip: page[kPageWords / 2] ^= 1ull << 17; kind = "flip"; break;
      case Inject::kNone: break;
    }
    std::printf("MEMCHECK-INJECT round=%" PRIu64 " page=%" PRIu64 " kind=%s\n", round, victim_, kind);
  }

 private:
  const Options& o_;
  const Pattern& pattern_;
  Memory& memory_;
  uint64_t victim_ = 0;
  alignas(64) uint64_t saved_[kPageWords] = {};
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const uint64_t random = random_u64();
  const uint32_t boot = static_cast<uint32_t>(random);
  const uint64_t pages = o.mib * (1024 * 1024 / kPageBytes);
  if (o.inject == Inject::kForeign && pages < 2) fail("--inject foreign", "needs at least 2 pages");
  const Pattern pattern({.seed = o.seed_given ? o.seed : ckpt::guest::mix64(random),
                         .pages = pages,
                         .sweep_rounds = o.sweep_rounds,
                         .random_per_mille = o.random_per_mille});
  Memory memory(pages);
  Injector injector(o, pattern, memory);

  // Round 0: every page at generation 0.
  for (uint64_t p = 0; p < pages; ++p) pattern.fill(memory.page(p), p, 0);
  char uptime[64];
  read_uptime(uptime, sizeof uptime);
  std::printf("MEMCHECK-START boot=%08" PRIx32 " pages=%" PRIu64 " mib=%" PRIu64 " sweep_rounds=%" PRIu64
              " random_per_mille=%" PRIu32 " uptime=%s\n",
              boot, pages, o.mib, o.sweep_rounds, o.random_per_mille, uptime);

  uint64_t total_bad = 0;
  for (uint64_t round = 1; o.rounds == 0 || round <= o.rounds; ++round) {
    const double start = monotonic_seconds();
    injector.before_writes(round);
    uint64_t dirty = 0;
    for (uint64_t p = 0; p < pages; ++p) {
      if (pattern.written_in(round, p)) {
        pattern.fill(memory.page(p), p, round);
        ++dirty;
      }
    }
    injector.after_writes(round);

    uint64_t bad = 0;
    for (uint64_t p = 0; p < pages; ++p) {
      const uint64_t want = pattern.expected_generation(p, round);
      uint64_t found = 0;
      const Pattern::Verdict verdict = pattern.check(memory.page(p), p, want, &found);
      if (verdict == Pattern::Verdict::kGood) continue;
      if (++bad <= kMaxBadLinesPerRound) {
        std::printf("MEMCHECK-BAD round=%" PRIu64 " page=%" PRIu64 " verdict=%s want=%" PRIu64 " found=%" PRIu64 "\n",
                    round, p, ckpt::guest::verdict_name(verdict).data(), want, found);
      }
      pattern.fill(memory.page(p), p, want);  // repaired, so that one loss is reported once
    }
    total_bad += bad;

    const double elapsed = monotonic_seconds() - start;
    read_uptime(uptime, sizeof uptime);
    std::printf("MEMCHECK round=%" PRIu64 " bad=%" PRIu64 " pages=%" PRIu64 " uptime=%s boot=%08" PRIx32
                " dirty=%" PRIu64 " total_bad=%" PRIu64 " ms=%.0f\n",
                round, bad, pages, uptime, boot, dirty, total_bad, elapsed * 1000);
    const double wait = o.interval_ms / 1000.0 - elapsed;
    if (wait > 0 && (o.rounds == 0 || round < o.rounds)) {
      const timespec ts{static_cast<time_t>(wait), static_cast<long>((wait - static_cast<time_t>(wait)) * 1e9)};
      nanosleep(&ts, nullptr);
    }
  }
  return total_bad == 0 ? 0 : kExitBad;
}
