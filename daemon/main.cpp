// ckptd: the checkpoint daemon. Until the VM backends (vmm/) and the control socket land, it checkpoints a
// synthetic in-process guest: base snapshot, then every epoch pause -> harvest -> copy dirty pages -> resume, and
// with the guest running, compress + write + commit through the store. --check restores the newest epoch at the end
// and compares it with the guest's memory bit for bit.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "daemon/synthetic_guest.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using ckpt::Status;

struct Options {
  std::string store_dir;
  uint64_t memory_mib = 256;
  uint64_t epoch_ms = 100;
  double duration_s = 5;
  uint64_t writes_per_ms = 20;
  uint64_t seed = 1;
  bool check = false;
  std::string snapshot_tag;
};

struct Totals {
  uint64_t epochs = 0;
  uint64_t dirty_pages = 0;
  uint64_t stored_bytes = 0;
  uint64_t raw_bytes = 0;
  std::vector<double> pauses_ms;
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

Status write_base(ckpt::snap::Store& store, ckpt::daemon::SyntheticGuest& guest, Totals& totals) {
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_base(guest.pages(), {"base"}));
  for (uint64_t g = 0; g < guest.pages(); ++g) CKPT_RETURN_IF_ERROR(writer->add_page(g, guest.page(g)));
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  totals.stored_bytes += meta->stats.stored_bytes;
  totals.raw_bytes += meta->stats.raw_bytes;
  return Status::ok();
}

// One epoch: the guest is paused only for harvesting and copying; writing happens while it runs.
// The final epoch leaves the guest paused, so its memory is exactly what that epoch holds.
Status take_epoch(ckpt::snap::Store& store, ckpt::daemon::SyntheticGuest& guest, std::vector<uint8_t>& staging,
                  const std::string& tag, Totals& totals, bool final = false) {
  auto t0 = Clock::now();
  guest.pause();
  std::vector<uint64_t> dirty = guest.harvest_dirty();
  if (staging.size() < dirty.size() * 4096) staging.resize(dirty.size() * 4096);
  for (size_t i = 0; i < dirty.size(); ++i) std::memcpy(staging.data() + i * 4096, guest.page(dirty[i]), 4096);
  if (!final) guest.resume();
  totals.pauses_ms.push_back(ms_since(t0));
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_delta({tag}));
  for (size_t i = 0; i < dirty.size(); ++i) CKPT_RETURN_IF_ERROR(writer->add_page(dirty[i], &staging[i * 4096]));
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  ++totals.epochs;
  totals.dirty_pages += dirty.size();
  totals.stored_bytes += meta->stats.stored_bytes;
  totals.raw_bytes += meta->stats.raw_bytes;
  return Status::ok();
}

// Restores the newest epoch into a fresh buffer and compares it with the (paused) guest's memory.
Status check_newest(ckpt::snap::Store& store, ckpt::daemon::SyntheticGuest& guest) {
  std::vector<uint8_t> memory(guest.pages() * 4096);
  CKPT_RETURN_IF_ERROR(ckpt::snap::restore_to_memory(store.fs(), store.catalog(), *store.newest(), memory).status());
  for (uint64_t g = 0; g < guest.pages(); ++g) {
    if (std::memcmp(memory.data() + g * 4096, guest.page(g), 4096) != 0) {
      return ckpt::corruption("restored epoch " + std::to_string(*store.newest()) + " differs from the guest at gfn " +
                              std::to_string(g));
    }
  }
  return Status::ok();
}

void print_summary(const Totals& t, double seconds) {
  std::vector<double> p = t.pauses_ms;
  std::sort(p.begin(), p.end());
  double mean = 0;
  for (double v : p) mean += v;
  mean = p.empty() ? 0 : mean / static_cast<double>(p.size());
  double p99 = p.empty() ? 0 : p[std::min(p.size() - 1, p.size() * 99 / 100)];
  std::printf("summary: %llu epochs in %.1f s; pause mean %.3f ms, p99 %.3f ms; %.0f dirty pages/s; "
              "%.1f MiB written for %.1f MiB of pages (ratio %.2fx)\n",
              static_cast<unsigned long long>(t.epochs), seconds, mean, p99,
              static_cast<double>(t.dirty_pages) / seconds, static_cast<double>(t.stored_bytes) / (1 << 20),
              static_cast<double>(t.raw_bytes) / (1 << 20),
              t.stored_bytes ? static_cast<double>(t.raw_bytes) / static_cast<double>(t.stored_bytes) : 0.0);
}

int run(const Options& o) {
  auto store = ckpt::snap::Store::open(o.store_dir);
  if (!store.is_ok()) {
    CKPT_LOG(kError) << store.status().to_string();
    return 1;
  }
  ckpt::daemon::SyntheticGuest guest(o.memory_mib * 256, o.seed, o.writes_per_ms);
  Totals totals;
  Status s = (*store)->catalog().empty() ? write_base(**store, guest, totals)
                                         : ckpt::invalid_argument(o.store_dir + " already holds epochs; "
                                                                  "resuming arrives with the VM backends");
  auto start = Clock::now();
  if (s.is_ok()) guest.start();
  std::vector<uint8_t> staging;
  auto next_status = Clock::now() + std::chrono::seconds(1);
  while (s.is_ok() && ms_since(start) < o.duration_s * 1000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.epoch_ms));
    bool tagged = !o.snapshot_tag.empty() && totals.epochs == 10;
    s = take_epoch(**store, guest, staging, tagged ? o.snapshot_tag : "", totals);
    if (Clock::now() >= next_status) {
      std::printf("epoch %llu: %llu dirty pages so far, %.1f MiB stored\n",
                  static_cast<unsigned long long>(*(*store)->newest()),
                  static_cast<unsigned long long>(totals.dirty_pages),
                  static_cast<double>(totals.stored_bytes) / (1 << 20));
      std::fflush(stdout);
      next_status += std::chrono::seconds(1);
    }
  }
  if (s.is_ok()) s = take_epoch(**store, guest, staging, "final", totals, /*final=*/true);
  guest.pause();
  double seconds = ms_since(start) / 1000;
  if (s.is_ok() && o.check) {
    s = check_newest(**store, guest);
    if (s.is_ok()) std::printf("check: epoch %llu restores bit-exactly\n", (unsigned long long)*(*store)->newest());
  }
  if (!s.is_ok()) {
    CKPT_LOG(kError) << s.to_string();
    return 1;
  }
  print_summary(totals, seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ckptd - incremental checkpoint daemon (synthetic guest until the VM backends land)"};
  Options o;
  app.set_version_flag("--version", "ckptd 0.1.0");
  app.add_option("--store", o.store_dir, "Store directory (created if missing; must be empty)")->required();
  app.add_option("--memory-mib", o.memory_mib, "Guest memory size in MiB")->capture_default_str();
  app.add_option("--epoch-ms", o.epoch_ms, "Epoch interval in milliseconds")->capture_default_str();
  app.add_option("--duration", o.duration_s, "Seconds to run before the final epoch")->capture_default_str();
  app.add_option("--writes-per-ms", o.writes_per_ms, "Guest page writes per millisecond")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the guest's write pattern")->capture_default_str();
  app.add_option("--tag", o.snapshot_tag, "Tag the 10th epoch with this label");
  app.add_flag("--check", o.check, "At the end, restore the newest epoch and compare it with the guest");
  CLI11_PARSE(app, argc, argv);
  return run(o);
}
