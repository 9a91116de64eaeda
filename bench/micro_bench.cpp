// micro_bench: Google Benchmark micro-benchmarks of the hot loops behind a pause and an epoch write, each on the
// project's own code (not a copy) except where noted:
//   DirtyBitmap walk (vmm/dirty_bitmap.h): to_gfns / count / merge over a 4 GiB guest's bitmap;
//   KVM dirty-ring harvest (vmm/kvm/ring_tracker.h) on a fake ring: a memfd stands in for the vCPU fd, so
//     on_vcpu_created maps it as KVM would map the ring, and the bench writes DIRTY entries where KVM would. Only
//     the harvest is timed; rearm (KVM_RESET_DIRTY_RINGS) needs a real VM and is not exercised;
//   page compression and decompression (snapshot/block_codec.h) of one 64-page block;
//   checksums (snapshot checksum64 = XXH3-64) of a page and of a block;
//   zero-page detection: a copy of EpochWriter's is_zero_page (internal to snapshot/epoch_writer.cpp);
//   staging copy (daemon/staging_area.h): StagingArea::copy_in of scattered pages from pre-faulted memory.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "bench/synthetic_image.h"
#include "common/byte_buffer.h"
#include "common/unique_fd.h"
#include "common/thread_pool.h"
#include "daemon/staging_area.h"
#include "snapshot/block_codec.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/store.h"
#include "vmm/dirty_bitmap.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm/ring_tracker.h"

namespace {

using namespace ckpt;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kGuestPages = (4ull << 30) / kPage;  // a 4 GiB guest, as in pause_bench

// `n` distinct random gfns below `pages`, ascending.
std::vector<uint64_t> random_gfns(uint64_t pages, uint64_t n, uint64_t seed) {
  bench::Rng rng(seed);
  std::vector<uint8_t> taken(pages, 0);
  std::vector<uint64_t> gfns;
  while (gfns.size() < n) {
    uint64_t g = rng.below(pages);
    if (!taken[g]) gfns.push_back(g);
    taken[g] = 1;
  }
  std::sort(gfns.begin(), gfns.end());
  return gfns;
}

vmm::DirtyBitmap bitmap_with(uint64_t n) {
  vmm::DirtyBitmap b(kGuestPages);
  for (uint64_t g : random_gfns(kGuestPages, n, 7)) b.set(g);
  return b;
}

// ---- dirty bitmap -------------------------------------------------------------------------------------------------

void BM_DirtyBitmap_ToGfns(benchmark::State& state) {
  vmm::DirtyBitmap b = bitmap_with(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(b.to_gfns());
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kGuestPages));  // pages walked
}
BENCHMARK(BM_DirtyBitmap_ToGfns)->Arg(64)->Arg(1000)->Arg(10000)->Arg(100000);

void BM_DirtyBitmap_Count(benchmark::State& state) {
  vmm::DirtyBitmap b = bitmap_with(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(b.count());
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kGuestPages));
}
BENCHMARK(BM_DirtyBitmap_Count)->Arg(1000);

void BM_DirtyBitmap_Merge(benchmark::State& state) {
  vmm::DirtyBitmap a = bitmap_with(1000), b = bitmap_with(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    a.merge(b);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kGuestPages));
}
BENCHMARK(BM_DirtyBitmap_Merge)->Arg(1000);

// ---- KVM dirty ring harvest (fake ring) -----------------------------------------------------------------------------

void BM_RingTracker_Harvest(benchmark::State& state) {
  const auto entries = static_cast<uint32_t>(state.range(0));
  const auto dirty = static_cast<uint32_t>(state.range(1));
  auto memory = vmm::GuestMemory::create(kGuestPages * kPage);  // untouched: no memory is used
  if (!memory.is_ok()) return state.SkipWithError(memory.status().to_string().c_str());
  const long page = ::sysconf(_SC_PAGESIZE);
  const uint64_t ring_bytes = uint64_t{entries} * sizeof(kvm_dirty_gfn);
  UniqueFd fake_vcpu(::memfd_create("fake-vcpu", MFD_CLOEXEC));
  if (!fake_vcpu.valid() || ::ftruncate(fake_vcpu.get(), KVM_DIRTY_LOG_PAGE_OFFSET * page + ring_bytes) != 0) {
    return state.SkipWithError("memfd for the fake ring");
  }
  vmm::kvm::RingTracker tracker(**memory, entries, /*acq_rel=*/true, 1);
  if (!tracker.on_vcpu_created(0, fake_vcpu.get()).is_ok()) return state.SkipWithError("map the fake ring");
  // A second mapping of the same ring: the bench's view as "KVM", publishing entries.
  auto* ring = static_cast<kvm_dirty_gfn*>(::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                                                  fake_vcpu.get(), KVM_DIRTY_LOG_PAGE_OFFSET * page));
  if (ring == MAP_FAILED) return state.SkipWithError("mmap the fake ring");
  const uint64_t slot_pages = vmm::GuestMemory::kMaxSlotBytes / kPage;
  std::vector<uint64_t> gfns = random_gfns(kGuestPages, dirty, 11);
  vmm::DirtyBitmap out(kGuestPages);
  uint64_t cursor = 0;  // mirrors the tracker's fetch index: each harvest takes exactly `dirty` entries
  for (auto _ : state) {
    for (uint64_t g : gfns) {
      kvm_dirty_gfn& e = ring[cursor++ & (entries - 1)];
      e.slot = static_cast<uint32_t>(g / slot_pages);
      e.offset = g % slot_pages;
      __atomic_store_n(&e.flags, 1u, __ATOMIC_RELEASE);  // KVM_DIRTY_GFN_F_DIRTY
    }
    out.clear();
    auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(tracker.harvest(out));
    auto end = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
  }
  state.SetItemsProcessed(state.iterations() * dirty);
  ::munmap(ring, ring_bytes);
}
// The harvest also ORs the ring-full pending bitmap (all guest pages) into the output: a fixed cost per harvest.
BENCHMARK(BM_RingTracker_Harvest)->Args({4096, 64})->Args({4096, 4000})->Args({65536, 60000})->UseManualTime();

// ---- compression, checksums, zero pages ---------------------------------------------------------------------------

// 64 pages of one content class, from the store benchmark's generator; "guest" is what the built-in workloads
// leave: one 8-byte counter at the start of an otherwise zero page.
std::vector<uint8_t> block_of(int kind) {
  constexpr uint64_t kPages = 64;
  std::vector<uint8_t> block(kPages * kPage, 0);
  if (kind == 3) {
    for (uint64_t p = 0; p < kPages; ++p) block[p * kPage] = static_cast<uint8_t>(p + 1);
    return block;
  }
  auto image = bench::GuestImage::create(kPages);
  ThreadPool pool(1);
  bench::PageClass cls = kind == 0 ? bench::PageClass::kZero : kind == 1 ? bench::PageClass::kStructured
                                                                         : bench::PageClass::kRandom;
  (*image)->fill({bench::ClassRun{0, static_cast<uint32_t>(kPages), cls}}, 42, 0, pool);
  std::memcpy(block.data(), (*image)->page(0), block.size());
  return block;
}

const char* kKinds[] = {"zero", "structured", "random", "guest"};

void BM_BlockCompress(benchmark::State& state) {
  std::vector<uint8_t> raw = block_of(static_cast<int>(state.range(0)));
  snap::BlockCompressor compressor(snap::StoreOptions{}.compression_level);  // the daemon's default level
  ByteBuffer out(snap::max_stored_block_size());
  size_t stored = 0;
  for (auto _ : state) {
    auto codec = compressor.compress(raw.data(), raw.size(), &out);
    benchmark::DoNotOptimize(codec);
    stored = codec.is_ok() && *codec == snap::Codec::kRaw ? raw.size() : out.size();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(raw.size()));
  state.SetLabel(std::string(kKinds[state.range(0)]) + ", stored/raw " +
                 std::to_string(static_cast<double>(stored) / static_cast<double>(raw.size())).substr(0, 5));
}
BENCHMARK(BM_BlockCompress)->DenseRange(1, 3);

void BM_BlockDecompress(benchmark::State& state) {
  std::vector<uint8_t> raw = block_of(static_cast<int>(state.range(0))), back(raw.size());
  snap::BlockCompressor compressor(1);
  ByteBuffer stored(snap::max_stored_block_size());
  auto codec = compressor.compress(raw.data(), raw.size(), &stored);
  if (!codec.is_ok()) return state.SkipWithError("compress");
  const bool as_raw = *codec == snap::Codec::kRaw;  // the stored form is the raw block itself
  const uint8_t* from = as_raw ? raw.data() : stored.data();
  const size_t from_len = as_raw ? raw.size() : stored.size();
  snap::BlockDecompressor decompressor;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decompressor.decompress(*codec, from, from_len, back.data(), back.size()));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(raw.size()));
  state.SetLabel(kKinds[state.range(0)]);
}
BENCHMARK(BM_BlockDecompress)->DenseRange(1, 3);

void BM_Checksum64(benchmark::State& state) {
  std::vector<uint8_t> data = block_of(2);
  data.resize(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(snap::checksum64(data.data(), data.size()));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Checksum64)->Arg(4096)->Arg(256 << 10);

// Copy of is_zero_page in snapshot/epoch_writer.cpp (internal there): OR of all words, branch-free.
bool is_zero_page(const void* page) {
  const auto* words = static_cast<const uint64_t*>(page);
  uint64_t acc = 0;
  for (size_t i = 0; i < kPage / sizeof(uint64_t); ++i) acc |= words[i];
  return acc == 0;
}

void BM_ZeroPageCheck(benchmark::State& state) {
  std::vector<uint8_t> block = block_of(state.range(0) ? 3 : 0);  // all zero, or a counter in the first word
  size_t p = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(is_zero_page(block.data() + p * kPage));
    p = (p + 1) & 63;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kPage));
  state.SetLabel(state.range(0) ? "non-zero first word" : "zero page");
}
BENCHMARK(BM_ZeroPageCheck)->Arg(0)->Arg(1);

// ---- staging copy ----------------------------------------------------------------------------------------------

// 512 MiB of resident "guest" memory, made once for every staging benchmark (first touches are slow on this VM).
uint8_t* staging_source(uint64_t pages) {
  static uint8_t* source = [&] {
    void* p = ::mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return static_cast<uint8_t*>(nullptr);
    std::memset(p, 1, pages * kPage);
    return static_cast<uint8_t*>(p);
  }();
  return source;
}

void BM_StagingCopyIn(benchmark::State& state) {
  const uint64_t source_pages = (512ull << 20) / kPage;
  uint8_t* source = staging_source(source_pages);
  if (source == nullptr) return state.SkipWithError("mmap source");
  const auto n = static_cast<uint64_t>(state.range(0));
  std::vector<uint64_t> gfns = state.range(1) ? random_gfns(source_pages, n, 3) : std::vector<uint64_t>(n);
  if (!state.range(1)) {
    for (uint64_t i = 0; i < n; ++i) gfns[i] = i;
  }
  auto staging = daemon::StagingArea::create(n * kPage);  // pre-faulted, as the daemon's
  if (!staging.is_ok()) return state.SkipWithError("staging");
  // Untimed: on this VM even pre-faulted memory is slow on its first use (the hypervisor backs it lazily), which
  // pause_bench sees as a slow first copy; here the steady state is measured.
  for (int warm = 0; warm < 3; ++warm) staging->copy_in({source, source_pages * kPage}, gfns);
  for (auto _ : state) {
    staging->copy_in({source, source_pages * kPage}, gfns);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(n * kPage));
  state.SetLabel(state.range(1) ? "scattered" : "contiguous");
}
BENCHMARK(BM_StagingCopyIn)->Args({1000, 1})->Args({10000, 1})->Args({10000, 0})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
