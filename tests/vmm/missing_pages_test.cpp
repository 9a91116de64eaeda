// MissingPages, what a lazy restore installs guest memory with: every first access waits for its page and then
// reads what was installed (user-mode and kernel-mode accesses alike), an install never overwrites a page that is
// present, and under the software backend's write tracking installed pages are not dirty, written ones are.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "tests/vmm/userfaultfd_skip.h"
#include "vmm/software/uffd_wp_tracker.h"
#include "vmm/uffd/missing_pages.h"

namespace ckpt::vmm {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kGroup = 16;  // pages installed per fault, as a lazy restore installs a block's

// The content the tests install at a page: its gfn in every 8-byte word.
void pattern(uint64_t gfn, uint8_t* page) {
  for (size_t i = 0; i < kPage; i += 8) std::memcpy(page + i, &gfn, 8);
}

bool holds_pattern(const uint8_t* page, uint64_t gfn) {
  std::vector<uint8_t> want(kPage);
  pattern(gfn, want.data());
  return std::memcmp(page, want.data(), kPage) == 0;
}

// Serves faults from a thread of its own, as the lazy restore's fault thread does: the aligned group of kGroup
// pages around each fault, with pattern().
class FaultServer {
 public:
  explicit FaultServer(MissingPages& pages) : pages_(pages), thread_([this] { run(); }) {}
  ~FaultServer() {
    stop_ = true;
    thread_.join();
  }
  uint64_t faults() const { return faults_; }

 private:
  void run() {
    std::vector<uint8_t> group(kGroup * kPage);
    while (!stop_) {
      pollfd p{pages_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      for (;;) {
        auto fault = pages_.next_fault();
        ASSERT_TRUE(fault.is_ok()) << fault.status().to_string();
        if (!fault->has_value()) break;
        ++faults_;
        const uint64_t first = **fault / kGroup * kGroup;
        for (uint32_t i = 0; i < kGroup; ++i) pattern(first + i, group.data() + i * kPage);
        auto installed = pages_.install(first, kGroup, group.data());
        ASSERT_TRUE(installed.is_ok()) << installed.status().to_string();
        ASSERT_TRUE(pages_.wake(**fault, 1).is_ok());  // in case another install raced ahead of this one
      }
    }
  }

  MissingPages& pages_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> faults_{0};
  std::thread thread_;
};

TEST(MissingPages, EveryFirstAccessWaitsForItsPageUserAndKernelMode) {
  auto memory = GuestMemory::create(16ull << 20);
  ASSERT_TRUE(memory.is_ok());
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, MissingPages::create(**memory));
  FaultServer server(**pages);
  const uint64_t n = (*memory)->pages();
  // A kernel-mode access first (KVM's are such): read(2) from a file into a missing page is served, not EFAULT.
  char path[] = "/tmp/missing-pages-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  std::vector<uint8_t> ones(kPage, 1);
  ASSERT_EQ(::pwrite(fd, ones.data(), kPage, 0), static_cast<ssize_t>(kPage));
  ASSERT_EQ(::pread(fd, (*memory)->host() + 100 * kPage, kPage, 0), static_cast<ssize_t>(kPage));
  ::close(fd);
  EXPECT_EQ(std::memcmp((*memory)->host() + 100 * kPage, ones.data(), kPage), 0);
  // Then every page, in a random order: each reads its installed content (page 100 what read(2) put there).
  std::vector<uint64_t> order(n);
  for (uint64_t g = 0; g < n; ++g) order[g] = g;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(3));
  size_t wrong = 0;
  for (uint64_t g : order) {
    if (g != 100 && !holds_pattern((*memory)->host() + g * kPage, g)) ++wrong;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(server.faults(), n / kGroup) << "one fault per group: a group's pages came with its first fault";
}

TEST(MissingPages, AnInstallNeverOverwritesAPresentPage) {
  auto memory = GuestMemory::create(2ull << 20);
  ASSERT_TRUE(memory.is_ok());
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, MissingPages::create(**memory));
  std::vector<uint8_t> a(kPage, 0xAA), b(8 * kPage, 0xBB);
  auto one = (*pages)->install(5, 1, a.data());
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ(*one, 1u);
  // Pages 2..9 with B: page 5 is present, so 7 are installed and page 5 keeps A.
  auto eight = (*pages)->install(2, 8, b.data());
  ASSERT_TRUE(eight.is_ok()) << eight.status().to_string();
  EXPECT_EQ(*eight, 7u);
  EXPECT_EQ((*memory)->host()[5 * kPage], 0xAA);
  EXPECT_EQ((*memory)->host()[4 * kPage], 0xBB);
  EXPECT_EQ((*memory)->host()[9 * kPage + 4095], 0xBB);
  // Zero pages likewise; the present ones stay.
  auto zeros = (*pages)->install_zero(0, 100);
  ASSERT_TRUE(zeros.is_ok());
  EXPECT_EQ(*zeros, 100u - 8u);  // pages 2..9 are present
  EXPECT_EQ((*memory)->host()[0], 0);
  EXPECT_EQ((*memory)->host()[99 * kPage], 0);
  EXPECT_EQ((*memory)->host()[3 * kPage], 0xBB);
  EXPECT_FALSE((*pages)->install((*memory)->pages() - 1, 2, b.data()).is_ok()) << "beyond guest memory";
}

// Ending missing mode while the guest still faults: every access waiting then must be woken, also one that queued
// while UFFDIO_UNREGISTER ran (without the wake after it, 6.18 left such an access asleep until a signal came). An
// access still asleep after 5 s is counted, then interrupted by a signal so that the test ends.
void no_op(int) {}

TEST(MissingPages, ReleaseWakesEveryAccessStillWaiting) {
  struct sigaction interrupt {};
  interrupt.sa_handler = no_op;  // no SA_RESTART: the sleeping fault returns and the access retries
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGUSR1, &interrupt, &old), 0);
  constexpr uint64_t kBytes = 8ull << 20, kPages = kBytes / kPage;
  constexpr int kVcpus = 3;
  int asleep = 0;
  for (int round = 0; round < 100; ++round) {
    auto memory = GuestMemory::create(kBytes);
    ASSERT_TRUE(memory.is_ok());
    ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(pages, MissingPages::create(**memory));
    std::atomic<bool> stop{false};
    // Zero pages for every fault, as the lazy restore's fault thread serves zero pages; after release() its installs
    // and wakes fail, and are ignored, as there.
    std::thread server([&] {
      while (!stop) {
        pollfd p{(*pages)->fd(), POLLIN, 0};
        if (::poll(&p, 1, 10) <= 0) continue;
        for (;;) {
          auto fault = (*pages)->next_fault();
          if (!fault.is_ok() || !fault->has_value()) break;
          (void)(*pages)->install_zero(**fault, 1);
          (void)(*pages)->wake(**fault, 1);
        }
      }
    });
    // Three vCPUs, so that several faults are in flight when release() runs.
    uint8_t* host = (*memory)->host();
    std::atomic<int> running{kVcpus};
    std::vector<std::thread> vcpus;
    for (int v = 0; v < kVcpus; ++v) {
      vcpus.emplace_back([&, v] {
        uint64_t sum = 0;
        for (uint64_t g = static_cast<uint64_t>(v); g < kPages; g += kVcpus) {
          sum += std::atomic_ref<uint8_t>(host[g * kPage]).load();
        }
        EXPECT_EQ(sum, 0u);
        --running;
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (round % 10)));
    Status released = (*pages)->release();
    EXPECT_TRUE(released.is_ok()) << released.to_string();
    for (int i = 0; i < 500 && running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (running > 0) {
      ++asleep;
      while (running > 0) {
        for (auto& vcpu : vcpus) ::pthread_kill(vcpu.native_handle(), SIGUSR1);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    for (auto& vcpu : vcpus) vcpu.join();
    stop = true;
    server.join();
  }
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(asleep, 0) << "rounds whose access slept on after release()";
}

// The software backend: one userfaultfd tracks writes (async write-protect) and serves missing pages. Its holes get
// their write-protect markers from protect_holes(), which may run before the guest's accesses, between them and the
// first harvest, or not at all (a harvest then masks the holes): the dirty sets must be the same.
enum class MarkHoles { kNever, kFirst, kBeforeTheHarvest };

class InstalledPagesAreNotDirty : public ::testing::TestWithParam<MarkHoles> {};

TEST_P(InstalledPagesAreNotDirty, WrittenOnesAre) {
  auto memory = GuestMemory::create(16ull << 20);
  ASSERT_TRUE(memory.is_ok());
  ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(
      tracker, software::UffdWpTracker::create(**memory, software::UffdWpTracker::kDefaultVectorRegions,
                                               /*missing_too=*/true, software::UffdWpTracker::HoleMarking::kByCaller));
  EXPECT_FALSE((*tracker)->holes_protected());
  if (GetParam() == MarkHoles::kFirst) {
    ASSERT_TRUE((*tracker)->protect_holes().is_ok());
  }
  std::shared_ptr<MissingPages> pages = (*tracker)->missing_pages();
  FaultServer server(*pages);
  uint8_t* host = (*memory)->host();
  // Read 100 pages (faulted in), write one of them and one page never touched before; fill 64 pages without any
  // access, as the background filler does.
  uint64_t sum = 0;
  for (uint64_t g = 0; g < 100; ++g) sum += std::atomic_ref<uint8_t>(host[g * kPage]).load();
  host[50 * kPage + 8] = 1;
  host[2000 * kPage + 8] = 2;
  std::vector<uint8_t> filled(64 * kPage, 7);
  ASSERT_TRUE(pages->install(1000, 64, filled.data()).is_ok());
  if (GetParam() == MarkHoles::kBeforeTheHarvest) {
    ASSERT_TRUE((*tracker)->protect_holes().is_ok());
  }
  EXPECT_EQ((*tracker)->holes_protected(), GetParam() != MarkHoles::kNever);
  DirtyBitmap dirty((*memory)->pages());
  ASSERT_TRUE((*tracker)->harvest_and_rearm(dirty).is_ok());
  EXPECT_EQ(dirty.to_gfns(), (std::vector<uint64_t>{50, 2000}));
  EXPECT_FALSE(holds_pattern(host + 2000 * kPage, 2000));  // written after it was installed
  EXPECT_EQ(host[2000 * kPage + 8], 2);
  EXPECT_TRUE(holds_pattern(host + 2001 * kPage, 2001));
  EXPECT_EQ(host[1000 * kPage], 7);
  // A filled page written later is dirty like any other; so is one entered now, and the holes still are not.
  host[1010 * kPage] = 9;
  host[3000 * kPage] = 9;
  DirtyBitmap again((*memory)->pages());
  ASSERT_TRUE((*tracker)->harvest_and_rearm(again).is_ok());
  EXPECT_EQ(again.to_gfns(), (std::vector<uint64_t>{1010, 3000}));
  // reset() forgets the writes so far, whether the holes are marked or not.
  host[20 * kPage] = 1;
  host[4000 * kPage] = 1;
  ASSERT_TRUE((*tracker)->reset().is_ok());
  host[21 * kPage] = 1;
  DirtyBitmap after_reset((*memory)->pages());
  ASSERT_TRUE((*tracker)->harvest_and_rearm(after_reset).is_ok());
  EXPECT_EQ(after_reset.to_gfns(), std::vector<uint64_t>{21});
  EXPECT_GT(sum, 0u);
}

INSTANTIATE_TEST_SUITE_P(MissingPages, InstalledPagesAreNotDirty,
                         ::testing::Values(MarkHoles::kNever, MarkHoles::kFirst, MarkHoles::kBeforeTheHarvest),
                         [](const ::testing::TestParamInfo<MarkHoles>& info) {
                           switch (info.param) {
                             case MarkHoles::kNever: return std::string("HolesNeverMarked");
                             case MarkHoles::kFirst: return std::string("HolesMarkedFirst");
                             default: return std::string("HolesMarkedBeforeTheHarvest");
                           }
                         });

// Pages that enter and are written while their chunk is being marked: the marking may write-protect them again
// after the write, so it owes them to the next harvest. Every page written must be reported, and nothing that never
// entered may be. The writer installs each page itself (as the filler does, without a fault's round trip) and writes
// it at once, walking down through one marking chunk while the marking walks up it: the two cross in most rounds.
TEST(MissingPages, WritesRacingTheHoleMarkingAreNeverLost) {
  constexpr uint64_t kBytes = 8ull << 20, kPages = kBytes / kPage;
  std::vector<uint8_t> content(kPage, 0x11);
  for (int round = 0; round < 100; ++round) {
    auto memory = GuestMemory::create(kBytes);
    ASSERT_TRUE(memory.is_ok());
    ASSIGN_OR_SKIP_WITHOUT_USERFAULTFD(
        tracker,
        software::UffdWpTracker::create(**memory, software::UffdWpTracker::kDefaultVectorRegions,
                                        /*missing_too=*/true, software::UffdWpTracker::HoleMarking::kByCaller));
    std::shared_ptr<MissingPages> pages = (*tracker)->missing_pages();
    uint8_t* host = (*memory)->host();
    std::atomic<uint64_t> written_count{0};
    std::vector<uint64_t> written;
    Status installs = Status::ok();
    std::thread writer([&] {
      for (uint64_t g = kPages; g-- > 0 && installs.is_ok();) {
        installs = pages->install(g, 1, content.data()).status();
        host[g * kPage + 16] = 0xEE;
        written.push_back(g);
        written_count.store(written.size());
      }
    });
    while (written_count.load() < 64) std::this_thread::yield();
    Status marked = (*tracker)->protect_holes();
    writer.join();
    ASSERT_TRUE(installs.is_ok()) << installs.to_string();
    ASSERT_TRUE(marked.is_ok()) << marked.to_string();
    ASSERT_TRUE((*tracker)->holes_protected());
    DirtyBitmap dirty(kPages);
    ASSERT_TRUE((*tracker)->harvest_and_rearm(dirty).is_ok());
    size_t lost = 0, unentered = 0;
    for (uint64_t g : written) lost += !dirty.test(g);
    for (uint64_t g : dirty.to_gfns()) unentered += !pages->entered().test(g);
    ASSERT_EQ(lost, 0u) << "round " << round << ": " << written.size() << " pages written";
    ASSERT_EQ(unentered, 0u) << "round " << round;
  }
}

}  // namespace
}  // namespace ckpt::vmm
