// Writes the epoch_file fuzzer's seeds: real epoch files from the real store (snap::Store), small enough to fuzz
// quickly (a 2 MiB guest, mostly zero pages). Every input is fixed (store id, timestamps, page contents, one
// worker), so a rerun rewrites the same bytes.
//
//   make_seed_corpus tests/fuzz/corpus/epoch_file
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "snapshot/epoch_file.h"
#include "snapshot/store.h"

namespace {

namespace snap = ckpt::snap;
namespace fs = std::filesystem;
constexpr uint64_t kGuestPages = 512;  // 2 MiB
constexpr uint32_t kPage = snap::format::kPageSize;

enum class Fill { kZero, kText, kRandom };

std::vector<uint8_t> page(Fill fill, uint64_t salt) {
  std::vector<uint8_t> p(kPage, 0);
  std::mt19937_64 rng(salt);
  if (fill == Fill::kText) {
    for (uint32_t i = 0; i < kPage; i += 32) {
      std::snprintf(reinterpret_cast<char*>(p.data() + i), 32, "page %04llu line %04u ...........",
                    static_cast<unsigned long long>(salt), i / 32);
    }
  } else if (fill == Fill::kRandom) {
    for (uint32_t i = 0; i < kPage; i += 8) {
      uint64_t v = rng();
      std::memcpy(p.data() + i, &v, 8);
    }
  }
  return p;
}

bool check(const ckpt::Status& s, const char* what) {
  if (!s.is_ok()) std::fprintf(stderr, "make_seed_corpus: %s: %s\n", what, s.to_string().c_str());
  return s.is_ok();
}

// Commits one epoch: `pages` lists (gfn, fill) to write; `states` adds named blobs like the VMM's.
bool write_epoch(snap::Store& store, bool base, const std::vector<std::pair<uint64_t, Fill>>& pages,
                 const std::string& tag, uint64_t timestamp_ns, bool states) {
  snap::EpochOptions options;
  options.tag = tag;
  options.timestamp_ns = timestamp_ns;
  auto writer = base ? store.begin_base(kGuestPages, options) : store.begin_delta(options);
  if (!check(writer.status(), "begin epoch")) return false;
  auto add = [&](uint64_t gfn, Fill fill) {
    return check((*writer)->add_page(gfn, page(fill, gfn + timestamp_ns).data()), "add page");
  };
  if (base) {  // a base holds every page; those not listed are zero
    std::vector<Fill> fills(kGuestPages, Fill::kZero);
    for (auto [gfn, fill] : pages) fills[gfn] = fill;
    for (uint64_t gfn = 0; gfn < kGuestPages; ++gfn) {
      if (!add(gfn, fills[gfn])) return false;
    }
  } else {
    for (auto [gfn, fill] : pages) {
      if (!add(gfn, fill)) return false;
    }
  }
  if (states) {
    std::vector<uint8_t> regs(64);
    for (size_t i = 0; i < regs.size(); ++i) regs[i] = static_cast<uint8_t>(i * 7);
    if (!check((*writer)->add_state("software/vcpu0/regs", regs), "add state")) return false;
    if (!check((*writer)->add_state("software/vm", std::vector<uint8_t>{1, 2, 3}), "add state")) return false;
  }
  return check((*writer)->commit().status(), "commit");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::string out = argv[1];
  char tmpl[] = "/tmp/ckpt-seeds-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = std::string(tmpl) + "/store";

  bool ok = [&] {
    snap::StoreOptions options;
    options.engine = snap::WriteEngine::kPwrite;
    options.workers = 1;
    options.store_id = 0x5eed5eed5eed5eedull;
    auto store = snap::Store::open(dir, options);
    if (!check(store.status(), "open store")) return false;
    snap::Store& s = **store;
    std::vector<std::pair<uint64_t, Fill>> text;  // a zstd block: compressible pages among zero ones
    for (uint64_t gfn = 16; gfn < 32; ++gfn) text.push_back({gfn, Fill::kText});
    // 0: a base of text pages (zstd) with vCPU and VM state, as a daemon's first epoch.
    // 1: a delta of three random pages (a raw block) and a page that became zero.
    // 2: a delta with more than one block (70 text pages) and no tag.
    // 3: a delta with only a zero page: a block of zero runs, no stored bytes.
    std::vector<std::pair<uint64_t, Fill>> many;
    for (uint64_t gfn = 100; gfn < 170; ++gfn) many.push_back({gfn, Fill::kText});
    return write_epoch(s, true, text, "base", 1'000'000'000, true) &&
           write_epoch(s, false, {{3, Fill::kRandom}, {4, Fill::kRandom}, {5, Fill::kRandom}, {20, Fill::kZero}},
                       "random pages", 2'000'000'000, true) &&
           write_epoch(s, false, many, "", 3'000'000'000, false) &&
           write_epoch(s, false, {{7, Fill::kZero}}, "zero page", 4'000'000'000, true);
  }();
  const char* names[] = {"base-zstd-state", "delta-raw", "delta-two-blocks", "delta-zero-run"};
  for (uint64_t epoch = 0; ok && epoch < 4; ++epoch) {
    std::error_code ec;
    fs::copy_file(dir + "/" + snap::epoch_file_name(epoch), out + "/" + names[epoch] + ".epoch",
                  fs::copy_options::overwrite_existing, ec);
    if (ec) {
      std::fprintf(stderr, "make_seed_corpus: copy epoch %llu: %s\n", static_cast<unsigned long long>(epoch),
                   ec.message().c_str());
      ok = false;
    }
  }
  std::error_code ec;
  fs::remove_all(tmpl, ec);
  return ok ? 0 : 1;
}
