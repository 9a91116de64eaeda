// Writes the epoch_file fuzzer's seeds: real epoch files from the real store (snap::Store), small enough to fuzz
// quickly (a 2 MiB guest, mostly zero pages; two small disks for the format 1.1 seeds). Every input is fixed (store
// id, timestamps, page contents, one worker), so a rerun rewrites the same bytes.
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
const std::vector<snap::DiskSpec> kDisks = {{"disk0", 96, false}, {"cidata", 8, true}};  // 384 KiB, 32 KiB
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

// A disk block to write: (disk id, block, fill).
struct DiskWrite {
  uint32_t disk;
  uint64_t block;
  Fill fill;
};

// Commits one epoch: `pages` lists (gfn, fill) to write; `states` adds named blobs like the VMM's. With `disks`,
// the epoch has kDisks (a base holds all of their blocks: those `blocks` does not list are zero).
bool write_epoch(snap::Store& store, bool base, const std::vector<std::pair<uint64_t, Fill>>& pages,
                 const std::string& tag, uint64_t timestamp_ns, bool states, bool disks = false,
                 const std::vector<DiskWrite>& blocks = {}) {
  snap::EpochOptions options;
  options.tag = tag;
  options.timestamp_ns = timestamp_ns;
  if (disks) options.disks = kDisks;
  auto writer = base ? store.begin_base(kGuestPages, options) : store.begin_delta(options);
  if (!check(writer.status(), "begin epoch")) return false;
  if (disks && base) {  // zero first, then the listed blocks over it: later content wins
    for (uint32_t d = 0; d < kDisks.size(); ++d) {
      if (!check((*writer)->add_disk_zero_blocks(d + 1, 0, kDisks[d].blocks), "add zero blocks")) return false;
    }
  }
  for (const DiskWrite& w : blocks) {
    if (!check((*writer)->add_disk_block(w.disk, w.block, page(w.fill, w.block * 7 + w.disk + timestamp_ns).data()),
               "add disk block")) {
      return false;
    }
  }
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
    // 4: format 1.1, a new base with two disks: text blocks (zstd) and random blocks (raw) on disk 1, a read-only
    //    disk 2 of text, both otherwise zero, beside memory.
    // 5: a delta of that base: disk blocks alternating between the disks (one became zero), then a memory page.
    std::vector<std::pair<uint64_t, Fill>> many;
    for (uint64_t gfn = 100; gfn < 170; ++gfn) many.push_back({gfn, Fill::kText});
    std::vector<DiskWrite> disk_base;
    for (uint64_t b = 10; b < 20; ++b) disk_base.push_back({1, b, Fill::kText});
    for (uint64_t b = 90; b < 92; ++b) disk_base.push_back({1, b, Fill::kRandom});
    for (uint64_t b = 0; b < 4; ++b) disk_base.push_back({2, b, Fill::kText});
    return write_epoch(s, true, text, "base", 1'000'000'000, true) &&
           write_epoch(s, false, {{3, Fill::kRandom}, {4, Fill::kRandom}, {5, Fill::kRandom}, {20, Fill::kZero}},
                       "random pages", 2'000'000'000, true) &&
           write_epoch(s, false, many, "", 3'000'000'000, false) &&
           write_epoch(s, false, {{7, Fill::kZero}}, "zero page", 4'000'000'000, true) &&
           write_epoch(s, true, text, "disks", 5'000'000'000, true, true, disk_base) &&
           write_epoch(s, false, {{30, Fill::kText}}, "disk writes", 6'000'000'000, true, true,
                       {{1, 11, Fill::kRandom}, {2, 3, Fill::kText}, {1, 12, Fill::kZero}, {1, 95, Fill::kText}});
  }();
  const char* names[] = {"base-zstd-state", "delta-raw", "delta-two-blocks", "delta-zero-run", "base-disks",
                         "delta-disks"};
  for (uint64_t epoch = 0; ok && epoch < 6; ++epoch) {
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
