// The KVM backend on a real /dev/kvm: every tracking mode verified after every harvest as in the kernel's
// dirty_log_test, a minimal dirty ring filling up under several concurrent vCPUs, and save/restore into a new VM.
// Skips where /dev/kvm is absent; `make test` runs it for real inside the nested-KVM harness
// (scripts/kvm-harness/).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "vmm/guest/guest_image.h"
#include "vmm/guest/workload.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/kvm/kvm_machine.h"
#include "vmm/kvm/vcpu_cpuid.h"

namespace ckpt::vmm {
namespace {

using namespace std::chrono_literals;
using guest::WorkloadControl;

#define SKIP_WITHOUT_KVM()                                   \
  do {                                                       \
    std::string why;                                         \
    if (!kvm::kvm_available(&why)) GTEST_SKIP() << why;      \
  } while (0)

std::unique_ptr<Machine> make_machine(const MachineConfig& config) {
  auto machine = kvm::create_kvm_machine(config);
  EXPECT_TRUE(machine.is_ok()) << machine.status().to_string();
  if (!machine.is_ok()) return nullptr;
  Status loaded = (*machine)->load_guest();
  EXPECT_TRUE(loaded.is_ok()) << loaded.to_string();
  return std::move(machine).value();
}

std::vector<WorkloadControl> controls_of(const MachineConfig& c) {
  const WorkloadConfig& w = c.workload;
  return guest::split_regions(c.memory_bytes, c.vcpus, w.kind, w.seed, w.writes_per_iteration, w.hot_pages,
                              w.delay_loops, w.max_iterations);
}

uint64_t status_of(Machine& m, unsigned vcpu) {
  uint64_t v;
  std::memcpy(&v, m.host_memory().data() + guest::status_gpa(vcpu), sizeof v);
  return v;
}

uint64_t page_value(Machine& m, uint64_t gpa) {
  uint64_t v;
  std::memcpy(&v, m.host_memory().data() + gpa, sizeof v);
  return v;
}

// Checks one harvest the way dirty_log_test does, for every vCPU region, against what the previous round saw.
class DirtyVerifier {
 public:
  explicit DirtyVerifier(const MachineConfig& config) : controls_(controls_of(config)) {
    for (const WorkloadControl& c : controls_) {
      shadow_.emplace_back(c.region_pages, 0);
      completed_before_.push_back(0);
    }
  }

  // Returns the number of region pages that changed this round.
  //
  // A reported page that did not change is legitimate in two cases, both allowed by dirty_log_test too:
  // - it was rewritten with the same value: the iteration in progress at the last harvest went on after it;
  // - KVM logs a page when the write faults, before the store lands; a vCPU kicked out right then has its page
  //   reported while it still holds the old value (the store completes after resume): one page per vCPU at most.
  uint64_t check(Machine& m, const std::vector<uint64_t>& dirty_gfns) {
    std::vector<uint8_t> dirty(m.host_memory().size() / 4096, 0);
    for (uint64_t g : dirty_gfns) dirty.at(g) = 1;
    uint64_t changed_total = 0;
    for (size_t v = 0; v < controls_.size(); ++v) {
      const WorkloadControl& c = controls_[v];
      uint64_t completed = status_of(m, static_cast<unsigned>(v));
      uint64_t first_gfn = c.region_gpa / 4096;
      uint64_t reported_unchanged = 0;
      for (uint64_t p = 0; p < c.region_pages; ++p) {
        uint64_t value = page_value(m, c.region_gpa + p * 4096);
        bool reported = dirty[first_gfn + p];
        bool changed = value != shadow_[v][p];
        // No written page is missed.
        EXPECT_TRUE(!changed || reported) << "vCPU " << v << " page " << p << " changed from " << shadow_[v][p]
                                          << " to " << value << " but was not reported dirty";
        // No page holds an iteration newer than the one in progress.
        EXPECT_LE(value, completed + 1) << "vCPU " << v << " page " << p;
        // A changed page holds a value written since the last harvest.
        if (changed) {
          EXPECT_GE(value, completed_before_[v] + 1) << "vCPU " << v << " page " << p << " holds " << value;
        }
        reported_unchanged += reported && !changed && value != completed_before_[v] + 1;
        changed_total += changed;
        shadow_[v][p] = value;
      }
      EXPECT_LE(reported_unchanged, 1u) << "vCPU " << v << ": " << reported_unchanged
                                        << " pages reported dirty that were not written (at most the one store in "
                                           "flight may be)";
      completed_before_[v] = completed;
    }
    return changed_total;
  }

 private:
  std::vector<WorkloadControl> controls_;
  std::vector<std::vector<uint64_t>> shadow_;
  std::vector<uint64_t> completed_before_;
};

// Lets the guest run for `at_least`, then on until every vCPU completed another iteration (nested KVM under TCG is
// slow and uneven) or 20 s passed.
void wait_for_progress(Machine& m, std::chrono::milliseconds at_least) {
  std::vector<uint64_t> before;
  for (unsigned v = 0; v < m.config().vcpus; ++v) before.push_back(status_of(m, v));
  std::this_thread::sleep_for(at_least);
  if (m.config().workload.kind == guest::WorkloadKind::kIdle) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (unsigned v = 0; v < m.config().vcpus; ++v) {
    while (status_of(m, v) == before[v] && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (status_of(m, v) == before[v]) std::printf("note: vCPU %u made no progress in 10 s\n", v);
  }
}

// Runs `rounds` of run -> pause -> harvest -> verify -> rearm -> resume. Returns pages changed in all.
uint64_t run_verified_rounds(Machine& m, const MachineConfig& config, int rounds, std::chrono::milliseconds run_for) {
  DirtyVerifier verifier(config);
  EXPECT_TRUE(m.start().is_ok());
  uint64_t changed = 0;
  for (int r = 0; r < rounds && !::testing::Test::HasFailure(); ++r) {
    wait_for_progress(m, run_for);
    Status paused = m.pause(5000ms);
    EXPECT_TRUE(paused.is_ok()) << paused.to_string();
    auto dirty = m.harvest_dirty();
    EXPECT_TRUE(dirty.is_ok()) << dirty.status().to_string();
    if (!dirty.is_ok()) break;
    uint64_t round_changed = verifier.check(m, *dirty);
    changed += round_changed;
    if (std::getenv("CKPT_TEST_VERBOSE")) {
      std::printf("  round %d: %zu pages reported, %llu region pages changed\n", r, dirty->size(),
                  static_cast<unsigned long long>(round_changed));
    }
    EXPECT_TRUE(m.rearm().is_ok());
    EXPECT_TRUE(m.resume().is_ok());
  }
  EXPECT_TRUE(m.pause(5000ms).is_ok());
  EXPECT_TRUE(m.vcpu_error().is_ok()) << m.vcpu_error().to_string();
  return changed;
}

MachineConfig small_config(TrackingMode mode, unsigned vcpus, guest::WorkloadKind kind) {
  MachineConfig c;
  c.memory_bytes = 16ull << 20;
  c.vcpus = vcpus;
  c.tracking = mode;
  c.workload.kind = kind;
  c.workload.seed = 7;
  c.workload.writes_per_iteration = 16;
  c.workload.hot_pages = 64;
  c.workload.delay_loops = 0;  // PAUSE loops exit to the host under nested virtualization: very slow there
  return c;
}

class TrackingModeTest : public ::testing::TestWithParam<TrackingMode> {};

// Each mode runs a different workload, so that all three workloads are verified too without tripling the time
// (nested KVM under TCG is slow).
guest::WorkloadKind workload_for(TrackingMode mode) {
  switch (mode) {
    case TrackingMode::kDirtyRing: return guest::WorkloadKind::kRandomWriter;
    case TrackingMode::kClearLog: return guest::WorkloadKind::kHotSet;
    default: return guest::WorkloadKind::kSweep;
  }
}

TEST_P(TrackingModeTest, EveryWrittenPageIsReportedAndNoneIsStale) {
  SKIP_WITHOUT_KVM();
  {
    auto kind = workload_for(GetParam());
    MachineConfig config = small_config(GetParam(), 2, kind);
    auto m = make_machine(config);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->tracking_mode(), GetParam());
    uint64_t changed = run_verified_rounds(*m, config, 20, 30ms);
    EXPECT_GT(changed, 0u) << "the guest wrote nothing";
    std::printf("mode %s, workload %u: %llu page changes verified over 20 harvests, iterations %llu/%llu\n",
                std::string(tracking_mode_name(GetParam())).c_str(), static_cast<unsigned>(kind),
                static_cast<unsigned long long>(changed), static_cast<unsigned long long>(status_of(*m, 0)),
                static_cast<unsigned long long>(status_of(*m, 1)));
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, TrackingModeTest,
                         ::testing::Values(TrackingMode::kDirtyRing, TrackingMode::kClearLog, TrackingMode::kDirtyLog),
                         [](const auto& info) {
                           std::string name(tracking_mode_name(info.param));
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

TEST(KvmMachine, AutoPicksTheDirtyRing) {
  SKIP_WITHOUT_KVM();
  auto m = make_machine(small_config(TrackingMode::kAuto, 1, guest::WorkloadKind::kIdle));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->tracking_mode(), TrackingMode::kDirtyRing);
}

TEST(KvmMachine, MinimalRingFillsUpWithFourVcpusAndLosesNothing) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kDirtyRing, 4, guest::WorkloadKind::kRandomWriter);
  config.dirty_ring_entries = 256;  // one page: the smallest ring
  config.workload.writes_per_iteration = 64;
  config.workload.delay_loops = 0;
  auto m = make_machine(config);
  ASSERT_TRUE(m);
  uint64_t changed = run_verified_rounds(*m, config, 15, 50ms);
  EXPECT_GT(m->stats().ring_full_exits, 0u) << "the ring never filled; the test proves nothing";
  std::printf("ring of 256 entries, 4 vCPUs: %llu ring-full exits, %llu page changes verified\n",
              static_cast<unsigned long long>(m->stats().ring_full_exits), static_cast<unsigned long long>(changed));
}

TEST(KvmMachine, IdleGuestDirtiesNoRegionPage) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kAuto, 2, guest::WorkloadKind::kIdle);
  auto m = make_machine(config);
  ASSERT_TRUE(m);
  EXPECT_EQ(run_verified_rounds(*m, config, 3, 20ms), 0u);
}

TEST(KvmMachine, VmmWritesAreReportedDirty) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kAuto, 1, guest::WorkloadKind::kIdle);
  auto m = make_machine(config);
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->start().is_ok());
  ASSERT_TRUE(m->pause(5000ms).is_ok());
  ASSERT_TRUE(m->harvest_dirty().is_ok());  // the guest image the VMM wrote at load
  ASSERT_TRUE(m->rearm().is_ok());
  uint8_t mark[3] = {1, 2, 3};
  ASSERT_TRUE(m->write_memory(0x500000 + 100, mark).is_ok());
  auto dirty = m->harvest_dirty();
  ASSERT_TRUE(dirty.is_ok());
  EXPECT_NE(std::find(dirty->begin(), dirty->end(), 0x500000 / 4096), dirty->end());
  ASSERT_TRUE(m->rearm().is_ok());
}

TEST(KvmMachine, StateCaptureNeedsAPausedMachine) {
  SKIP_WITHOUT_KVM();
  auto m = make_machine(small_config(TrackingMode::kAuto, 1, guest::WorkloadKind::kIdle));
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->start().is_ok());
  EXPECT_EQ(m->save_state().status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->harvest_dirty().status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(m->pause(5000ms).is_ok());
  EXPECT_TRUE(m->save_state().is_ok());
}

// Waits until every vCPU has completed `iterations` (and so halted).
bool wait_for_iterations(Machine& m, uint64_t iterations, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (unsigned v = 0; v < m.config().vcpus; ++v) all &= status_of(m, v) >= iterations;
    if (all) return true;
    // A failed vCPU (a triple fault in the nested emulator, say) never gets there: say so now, not at the timeout.
    if (Status e = m.vcpu_error(); !e.is_ok()) {
      std::printf("vCPU failed while waiting: %s\n", e.to_string().c_str());
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(KvmMachine, SaveAndRestoreIntoANewVmReachesTheSameImage) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kAuto, 2, guest::WorkloadKind::kRandomWriter);
  const uint64_t kFinal = 2000;
  config.workload.max_iterations = kFinal;
  auto a = make_machine(config);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->start().is_ok());
  wait_for_progress(*a, 20ms);
  ASSERT_TRUE(a->pause(5000ms).is_ok());
  uint64_t at_save = status_of(*a, 0);
  auto state = a->save_state();
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  std::vector<uint8_t> memory(a->host_memory().begin(), a->host_memory().end());
  ASSERT_TRUE(a->resume().is_ok());
  ASSERT_TRUE(wait_for_iterations(*a, kFinal, 300s)) << "the original VM did not finish";
  ASSERT_TRUE(a->pause(5000ms).is_ok());

  auto b = kvm::create_kvm_machine(config);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  std::memcpy((*b)->host_memory().data(), memory.data(), memory.size());
  Status loaded = (*b)->load_state(*state);
  ASSERT_TRUE(loaded.is_ok()) << loaded.to_string();
  ASSERT_TRUE((*b)->start().is_ok());
  ASSERT_TRUE(wait_for_iterations(**b, kFinal, 300s)) << "the restored VM did not finish";
  ASSERT_TRUE((*b)->pause(5000ms).is_ok());
  EXPECT_TRUE((*b)->vcpu_error().is_ok()) << (*b)->vcpu_error().to_string();

  // Both VMs hold the same workload image, and it is the one the reference model computes from the seed.
  for (const WorkloadControl& c : controls_of(config)) {
    std::span<const uint8_t> ra(a->host_memory().data() + c.region_gpa, c.region_pages * 4096);
    std::span<const uint8_t> rb((*b)->host_memory().data() + c.region_gpa, c.region_pages * 4096);
    std::vector<uint8_t> expected(c.region_pages * 4096, 0);
    guest::reference_image(c, kFinal, expected);
    EXPECT_TRUE(std::equal(ra.begin(), ra.end(), rb.begin())) << "vCPU " << c.vcpu_index << " regions differ";
    EXPECT_TRUE(std::equal(ra.begin(), ra.end(), expected.begin())) << "vCPU " << c.vcpu_index
                                                                    << " differs from the reference model";
  }
  std::printf("saved at iteration %llu, both VMs reached %llu with identical memory\n",
              static_cast<unsigned long long>(at_save), static_cast<unsigned long long>(kFinal));
}

// A machine that ran its workload a little, paused, and the state it saved: the start of the load_state tests.
struct SavedMachine {
  std::unique_ptr<Machine> machine;
  std::vector<StateBlob> state;
};

void run_pause_and_save(const MachineConfig& config, SavedMachine& out) {
  out.machine = make_machine(config);
  ASSERT_TRUE(out.machine);
  ASSERT_TRUE(out.machine->start().is_ok());
  wait_for_progress(*out.machine, 20ms);
  ASSERT_TRUE(out.machine->pause(5000ms).is_ok());
  auto state = out.machine->save_state();
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  out.state = std::move(*state);
}

// A guest saved where the CPU had a feature this host's KVM lacks may use that feature at any moment after a restore:
// loading it must fail with an error that names the feature and the vCPU. The saved CPUID of vCPU 1 is edited to claim the lowest leaf 7.0 EBX bit that KVM does not offer here; the unedited state loads.
TEST(KvmMachine, LoadRefusesASavedGuestWithACpuFeatureThisHostLacks) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kAuto, 2, guest::WorkloadKind::kRandomWriter);
  SavedMachine saved;
  ASSERT_NO_FATAL_FAILURE(run_pause_and_save(config, saved));
  const std::vector<StateBlob>& state = saved.state;

  auto kvm = kvm::KvmSystem::open();
  ASSERT_TRUE(kvm.is_ok()) << kvm.status().to_string();
  auto supported = kvm::host_supported_cpuid(**kvm);
  ASSERT_TRUE(supported.is_ok()) << supported.status().to_string();
  auto leaf7 = std::find_if(supported->begin(), supported->end(),
                            [](const kvm_cpuid_entry2& e) { return e.function == 7 && e.index == 0; });
  ASSERT_NE(leaf7, supported->end()) << "KVM_GET_SUPPORTED_CPUID has no leaf 7.0";
  ASSERT_NE(leaf7->ebx, ~0u) << "this host offers every leaf 7.0 EBX feature: nothing to claim";
  const unsigned bit = static_cast<unsigned>(std::countr_one(leaf7->ebx));

  std::vector<StateBlob> edited = state;
  bool found = false;
  for (StateBlob& blob : edited) {
    if (blob.name != "kvm/vcpu1/cpuid") continue;
    auto entries = x86::cpuid_from_kvm_buffer(blob.data);
    ASSERT_TRUE(entries.is_ok()) << entries.status().to_string();
    for (kvm_cpuid_entry2& e : *entries) {
      if (e.function == 7 && e.index == 0) e.ebx |= 1u << bit;
    }
    blob.data = x86::cpuid_to_kvm_buffer(*entries);
    found = true;
  }
  ASSERT_TRUE(found) << "the saved state has no kvm/vcpu1/cpuid blob";

  auto b = kvm::create_kvm_machine(config);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  Status refused = (*b)->load_state(edited);
  ASSERT_FALSE(refused.is_ok()) << "a guest that saw leaf 7.0 EBX bit " << bit << " loaded on a host without it";
  EXPECT_EQ(refused.code(), StatusCode::kUnsupported) << refused.to_string();
  char expected[64];
  std::snprintf(expected, sizeof expected, "leaf 0x7.0 EBX bits 0x%x (%u)", 1u << bit, bit);
  EXPECT_NE(refused.message().find(expected), std::string::npos) << refused.to_string();
  EXPECT_NE(refused.message().find("vCPU 1"), std::string::npos) << refused.to_string();
  std::printf("refused: %s\n", refused.to_string().c_str());

  auto c = kvm::create_kvm_machine(config);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  Status loaded = (*c)->load_state(state);
  EXPECT_TRUE(loaded.is_ok()) << "the unedited state: " << loaded.to_string();
}

// docs/vmm.md, "State": an epoch written before ckptd saved CPUID and the TSC pairing lacks those blobs and still
// loads (the vCPUs keep the CPUID this ckptd sets up; IA32_TSC stands); a TSC blob of a version this ckptd does not
// know is refused, naming it, rather than read as something it is not.
TEST(KvmMachine, LoadsAnEpochWithoutCpuidOrTscBlobsAndRefusesAnUnknownTscVersion) {
  SKIP_WITHOUT_KVM();
  MachineConfig config = small_config(TrackingMode::kAuto, 2, guest::WorkloadKind::kRandomWriter);
  SavedMachine saved;
  ASSERT_NO_FATAL_FAILURE(run_pause_and_save(config, saved));
  auto& a = saved.machine;
  const std::vector<StateBlob>& state = saved.state;
  const uint64_t at_save = status_of(*a, 0);

  std::vector<StateBlob> older;
  size_t left_out = 0;
  for (const StateBlob& blob : state) {
    bool newer_blob = blob.name.ends_with("/cpuid") || blob.name.ends_with("/tsc");
    left_out += newer_blob;
    if (!newer_blob) older.push_back(blob);
  }
  EXPECT_GE(left_out, 2u) << "the saved state has no per-vCPU cpuid blobs";
  auto b = kvm::create_kvm_machine(config);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  std::memcpy((*b)->host_memory().data(), a->host_memory().data(), a->host_memory().size());
  Status loaded = (*b)->load_state(older);
  ASSERT_TRUE(loaded.is_ok()) << "an epoch without cpuid and tsc blobs: " << loaded.to_string();
  ASSERT_TRUE((*b)->start().is_ok());
  wait_for_progress(**b, 20ms);
  ASSERT_TRUE((*b)->pause(5000ms).is_ok());
  EXPECT_TRUE((*b)->vcpu_error().is_ok()) << (*b)->vcpu_error().to_string();
  EXPECT_GT(status_of(**b, 0), at_save) << "the loaded guest did not run on";

  // A TSC blob from a newer ckptd (version 2): replaced where this host saved one, added where it did not.
  std::vector<StateBlob> newer = state;
  std::vector<uint8_t> tsc(24, 0);
  tsc[0] = 2;  // TscPairing::version, little-endian
  auto it = std::find_if(newer.begin(), newer.end(), [](const StateBlob& s) { return s.name == "kvm/vcpu0/tsc"; });
  if (it == newer.end()) newer.push_back(StateBlob{"kvm/vcpu0/tsc", tsc});
  else it->data = tsc;
  auto c = kvm::create_kvm_machine(config);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  Status refused = (*c)->load_state(newer);
  ASSERT_FALSE(refused.is_ok()) << "a version 2 TSC blob loaded";
  EXPECT_EQ(refused.code(), StatusCode::kUnsupported) << refused.to_string();
  EXPECT_NE(refused.message().find("kvm/vcpu0/tsc is version 2"), std::string::npos) << refused.to_string();
}

}  // namespace
}  // namespace ckpt::vmm

namespace {

// A test that hangs inside the nested guest would otherwise hold the harness until its timeout with nothing to show.
// The watchdog names the test and exits once one runs longer than the limit.
class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  explicit Watchdog(std::chrono::seconds limit) : limit_(limit) {
    std::thread([this] { watch(); }).detach();
  }
  void OnTestStart(const ::testing::TestInfo& info) override {
    std::lock_guard lock(mutex_);
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    started_ = std::chrono::steady_clock::now();
    running_ = true;
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard lock(mutex_);
    running_ = false;
  }

 private:
  void watch() {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::lock_guard lock(mutex_);
      if (running_ && std::chrono::steady_clock::now() - started_ > limit_) {
        std::printf("watchdog: %s ran longer than %lld s; giving up\n", name_.c_str(),
                    static_cast<long long>(limit_.count()));
        std::fflush(stdout);
        std::_Exit(3);
      }
    }
  }
  std::chrono::seconds limit_;
  std::mutex mutex_;
  std::string name_;
  std::chrono::steady_clock::time_point started_;
  bool running_ = false;
};

}  // namespace

// Line-buffered output: inside the nested-KVM harness stdout is a serial port, and a stuck test should still show
// how far it got.
int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(std::chrono::seconds(120)));
  return RUN_ALL_TESTS();
}
