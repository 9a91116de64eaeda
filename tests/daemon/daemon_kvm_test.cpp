// The epoch pipeline on a real KVM VM, in-process (no socket, no systemd): run inside the nested-KVM harness
// (scripts/kvm-harness), linked statically. For each KVM dirty-tracking mode: periodic epochs, forced snapshots, a
// live restore and the final epoch; every committed epoch must restore to the memory digested at its pause, and
// the final one must rebuild into a fresh KVM VM bit-exactly (verify-final). Skips where /dev/kvm is missing.
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "daemon/session.h"
#include "snapshot/catalog.h"
#include "snapshot/restore.h"
#include "vmm/kvm/kvm_api.h"

namespace ckpt::daemon {
namespace {

using namespace std::chrono_literals;

std::map<uint64_t, uint64_t> read_epoch_digests(const std::string& path) {
  std::map<uint64_t, uint64_t> out;
  std::ifstream in(path);
  std::string event, hex;
  uint64_t epoch = 0;
  while (in >> event >> epoch >> hex) {
    if (event == "epoch") out[epoch] = std::stoull(hex, nullptr, 16);
  }
  return out;
}

class DaemonOnKvm : public ::testing::TestWithParam<vmm::TrackingMode> {};

TEST_P(DaemonOnKvm, EveryEpochRestoresToItsPauseThroughSnapshotsAndALiveRestore) {
  std::string why;
  if (!vmm::kvm::kvm_available(&why)) GTEST_SKIP() << why;
  char tmpl[] = "/tmp/ckptd-kvm-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  DaemonConfig config;
  config.backend = vmm::Backend::kKvm;
  config.machine.tracking = GetParam();
  config.machine.memory_bytes = 32ull << 20;
  config.machine.vcpus = 2;
  config.machine.workload.kind = vmm::guest::WorkloadKind::kRandomWriter;
  config.machine.workload.delay_loops = 0;
  config.store_dir = dir + "/store";
  config.epoch_ms = 30;
  config.staging_bytes = 8ull << 20;
  config.verify_final = true;
  config.record_digests = dir + "/digests";

  auto session = Session::create(config);
  ASSERT_TRUE(session.is_ok()) << session.status().to_string();
  EXPECT_EQ((*session)->stats().backend, "kvm");
  Status ran;
  std::thread loop([&] { ran = (*session)->run(); });
  std::this_thread::sleep_for(300ms);
  for (const char* tag : {"one", "two"}) {
    auto e = (*session)->snapshot(tag);
    EXPECT_TRUE(e.is_ok()) << e.status().to_string();
  }
  auto restored = (*session)->restore(2);
  EXPECT_TRUE(restored.is_ok()) << restored.status().to_string();
  std::this_thread::sleep_for(300ms);
  DaemonStats stats = (*session)->stats();
  (*session)->request_shutdown();
  loop.join();
  EXPECT_TRUE(ran.is_ok()) << ran.to_string();  // includes verify-final
  EXPECT_EQ(stats.epochs_failed, 0u) << stats.last_error;
  EXPECT_EQ(stats.errors_total, 0u) << stats.last_error;

  auto fs = snap::make_posix_file_system();
  auto catalog = snap::Catalog::load(*fs, config.store_dir);
  ASSERT_TRUE(catalog.is_ok());
  auto digests = read_epoch_digests(config.record_digests);
  std::vector<uint8_t> memory(catalog->guest_pages() * 4096);
  for (const auto& [epoch, entry] : catalog->entries()) {
    ASSERT_TRUE(snap::restore_to_memory(*fs, *catalog, epoch, memory).is_ok());
    ASSERT_TRUE(digests.count(epoch)) << "epoch " << epoch << " has no digest";
    EXPECT_EQ(XXH3_64bits(memory.data(), memory.size()), digests[epoch]) << "epoch " << epoch;
  }
  std::printf("%s: %zu epochs, pause p50 %.2f ms p99 %.2f ms, %llu dirty pages\n",
              std::string(vmm::tracking_mode_name(GetParam())).c_str(), catalog->entries().size(),
              stats.pause_p50_ms, stats.pause_p99_ms, static_cast<unsigned long long>(stats.dirty_pages_total));
  EXPECT_GE(catalog->entries().size(), 8u);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, DaemonOnKvm,
                         ::testing::Values(vmm::TrackingMode::kDirtyRing, vmm::TrackingMode::kClearLog,
                                           vmm::TrackingMode::kDirtyLog),
                         [](const auto& info) {
                           std::string name(vmm::tracking_mode_name(info.param));
                           std::erase(name, '-');
                           return name;
                         });

}  // namespace
}  // namespace ckpt::daemon

namespace {

// A hung VM must end the harness run with a failure, not its timeout. Armed per test, so that loops of the suite
// (--gtest_repeat, docs/testing.md) are not cut off by a whole-process limit.
class AlarmPerTest : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { alarm(120); }
  void OnTestEnd(const ::testing::TestInfo&) override { alarm(0); }
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new AlarmPerTest);
  return RUN_ALL_TESTS();
}
