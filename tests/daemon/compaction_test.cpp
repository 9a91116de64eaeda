// The daemon's store stays bounded while the guest runs: background rebases keep the chain short, retention keeps
// the store small, and every epoch left restores to the memory digested at its pause. Bytes written count whole
// epoch files. In-process Sessions on the software backend.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "daemon/session.h"
#include "snapshot/catalog.h"
#include "snapshot/restore.h"
#include "snapshot/verify.h"
#include "tests/daemon/daemon_process.h"

namespace ckpt::daemon::testing {
namespace {

using namespace std::chrono_literals;

class Compaction : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::kWarn);
    char tmpl[] = "/tmp/ckptd-compaction-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_ = in_process_config(dir_);
    config_.machine.vcpus = 1;
    config_.machine.workload.delay_loops = 2000;
    config_.epoch_ms = 2;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs a session for `run_for`; returns its stats after the final epoch.
  DaemonStats run_for(std::chrono::milliseconds run_for) {
    auto session = Session::create(config_);
    EXPECT_TRUE(session.is_ok()) << session.status().to_string();
    if (!session.is_ok()) return {};
    Status ran;
    std::thread loop([&] { ran = (*session)->run(); });
    std::this_thread::sleep_for(run_for);
    (*session)->request_shutdown();
    loop.join();
    EXPECT_TRUE(ran.is_ok()) << ran.to_string();
    return (*session)->stats();
  }

  // Every epoch in the store restores to the digest recorded at its pause.
  void expect_every_epoch_restores() {
    auto digests = read_digest_file(config_.record_digests)["epoch"];
    auto fs = snap::make_posix_file_system();
    auto catalog = snap::Catalog::load(*fs, config_.store_dir);
    ASSERT_TRUE(catalog.is_ok());
    std::vector<uint8_t> memory(config_.machine.memory_bytes);
    for (const auto& [epoch, entry] : catalog->entries()) {
      ASSERT_TRUE(snap::restore_to_memory(*fs, *catalog, epoch, memory).is_ok()) << epoch;
      EXPECT_EQ(DigestLog::digest(memory), digests.at(epoch)) << "epoch " << epoch;
    }
    auto report = snap::verify_store(*fs, config_.store_dir);
    ASSERT_TRUE(report.is_ok());
    EXPECT_TRUE(report->ok()) << report->problems.front().status.to_string();
  }

  std::string dir_;
  DaemonConfig config_;
};

TEST_F(Compaction, BytesWrittenAreTheStoreFilesBytes) {
  config_.compact_max_chain = 0;  // nothing rewritten or removed: the files are exactly what the epochs wrote
  config_.compact_max_read_amplification = 0;
  config_.retention_keep_last = 0;
  DaemonStats stats = run_for(500ms);
  uint64_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(config_.store_dir)) {
    if (f.path().extension() == ".epoch") files += f.file_size();
  }
  EXPECT_GE(stats.epochs_committed, 3u);  // a loaded host commits few; the figure must match either way
  EXPECT_EQ(stats.bytes_stored_total, files);
  EXPECT_EQ(stats.compaction.store_bytes, files);
}

TEST_F(Compaction, RebasesAndRetentionKeepTheStoreBoundedAndRestorable) {
  config_.compact_max_chain = 20;
  config_.retention_keep_last = 30;
  DaemonStats stats = run_for(3s);
  EXPECT_GT(stats.epochs_committed, 60u);
  EXPECT_GE(stats.compaction.rebases, 2u);
  EXPECT_EQ(stats.compaction.errors, 0u);
  EXPECT_EQ(stats.errors_total, 0u) << stats.last_error;
  // A few epochs may commit while a rebase runs; retention runs every 64 epochs at this size.
  EXPECT_LE(stats.compaction.chain_length, 20u + 30u);
  size_t files = std::distance(std::filesystem::directory_iterator(config_.store_dir), {});
  EXPECT_LE(files, 1u + 30u + 20u + 64u + 30u);  // LOCK, kept, a chain they need, a retention batch, slack
  expect_every_epoch_restores();
}

TEST_F(Compaction, ALiveRestoreBranchesAndBothLinesStayRestorable) {
  config_.compact_max_chain = 10;
  config_.retention_keep_last = 0;  // keep every epoch: both branches are checked
  auto session = Session::create(config_);
  ASSERT_TRUE(session.is_ok()) << session.status().to_string();
  Status ran;
  std::thread loop([&] { ran = (*session)->run(); });
  std::this_thread::sleep_for(800ms);
  uint64_t target = *(*session)->stats().last_committed_epoch / 2;
  auto restored = (*session)->restore(target);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  std::this_thread::sleep_for(800ms);
  EXPECT_GE((*session)->stats().compaction.rebases, 1u);
  (*session)->request_shutdown();
  loop.join();
  EXPECT_TRUE(ran.is_ok()) << ran.to_string();
  expect_every_epoch_restores();
}

}  // namespace
}  // namespace ckpt::daemon::testing
