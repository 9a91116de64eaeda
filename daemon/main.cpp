// ckptd: the checkpoint daemon. Until the epoch pipeline, control socket and service land (the next issue), it runs
// one VM (KVM where /dev/kvm works, else the software backend) with a built-in workload and checkpoints it: a base
// snapshot, then every epoch pause -> harvest -> copy the dirty pages -> rearm -> save state -> resume, and with the
// guest running, compress + write + commit through the store. --check restores the newest epoch at the end and
// compares it with the guest's memory bit for bit.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "common/log.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"
#include "vmm/machine_factory.h"

namespace {

using Clock = std::chrono::steady_clock;
using ckpt::Status;
using ckpt::vmm::Machine;
constexpr uint64_t kPage = 4096;
constexpr auto kPauseTimeout = std::chrono::milliseconds(1000);

struct Options {
  std::string store_dir;
  uint64_t memory_mib = 256;
  unsigned vcpus = 2;
  std::string backend = "auto";
  std::string workload = "hot-set";
  uint64_t epoch_ms = 100;
  double duration_s = 5;
  uint64_t delay_loops = 20000;
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

Status add_state(ckpt::snap::EpochWriter& writer, const std::vector<ckpt::vmm::StateBlob>& state) {
  for (const auto& blob : state) CKPT_RETURN_IF_ERROR(writer.add_state(blob.name, blob.data));
  return Status::ok();
}

// The base holds every page and the machine state, taken before the guest first runs.
Status write_base(ckpt::snap::Store& store, Machine& machine, Totals& totals) {
  std::span<uint8_t> memory = machine.host_memory();
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_base(memory.size() / kPage, {"base"}));
  for (uint64_t g = 0; g < memory.size() / kPage; ++g) CKPT_RETURN_IF_ERROR(writer->add_page(g, &memory[g * kPage]));
  CKPT_ASSIGN_OR_RETURN(auto state, machine.save_state());
  CKPT_RETURN_IF_ERROR(add_state(*writer, state));
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  totals.stored_bytes += meta->stats.stored_bytes;
  totals.raw_bytes += meta->stats.raw_bytes;
  return Status::ok();
}

// One epoch: the guest is paused only to harvest, copy, rearm and save state; writing happens while it runs. The
// final epoch leaves the guest paused, so its memory is exactly what that epoch holds.
Status take_epoch(ckpt::snap::Store& store, Machine& machine, std::vector<uint8_t>& staging, const std::string& tag,
                  Totals& totals, bool final = false) {
  auto t0 = Clock::now();
  CKPT_RETURN_IF_ERROR(machine.pause(kPauseTimeout));
  CKPT_ASSIGN_OR_RETURN(std::vector<uint64_t> dirty, machine.harvest_dirty());
  if (staging.size() < dirty.size() * kPage) staging.resize(dirty.size() * kPage);
  const uint8_t* memory = machine.host_memory().data();
  for (size_t i = 0; i < dirty.size(); ++i) std::memcpy(&staging[i * kPage], memory + dirty[i] * kPage, kPage);
  CKPT_RETURN_IF_ERROR(machine.rearm());
  CKPT_ASSIGN_OR_RETURN(auto state, machine.save_state());
  if (!final) CKPT_RETURN_IF_ERROR(machine.resume());
  totals.pauses_ms.push_back(ms_since(t0));
  CKPT_ASSIGN_OR_RETURN(auto writer, store.begin_delta({tag}));
  for (size_t i = 0; i < dirty.size(); ++i) CKPT_RETURN_IF_ERROR(writer->add_page(dirty[i], &staging[i * kPage]));
  CKPT_RETURN_IF_ERROR(add_state(*writer, state));
  CKPT_ASSIGN_OR_RETURN(auto meta, writer->commit());
  ++totals.epochs;
  totals.dirty_pages += dirty.size();
  totals.stored_bytes += meta->stats.stored_bytes;
  totals.raw_bytes += meta->stats.raw_bytes;
  return Status::ok();
}

// Restores the newest epoch into a fresh buffer and compares it with the (paused) guest's memory.
Status check_newest(ckpt::snap::Store& store, Machine& machine) {
  std::span<const uint8_t> guest = machine.host_memory();
  std::vector<uint8_t> memory(guest.size());
  CKPT_RETURN_IF_ERROR(ckpt::snap::restore_to_memory(store.fs(), store.catalog(), *store.newest(), memory).status());
  for (uint64_t g = 0; g < guest.size() / kPage; ++g) {
    if (std::memcmp(&memory[g * kPage], &guest[g * kPage], kPage) != 0) {
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

ckpt::Result<std::unique_ptr<Machine>> make_machine(const Options& o) {
  ckpt::vmm::Backend backend;
  if (!ckpt::vmm::parse_backend(o.backend, &backend)) return ckpt::invalid_argument("unknown backend " + o.backend);
  ckpt::vmm::MachineConfig config;
  config.memory_bytes = o.memory_mib << 20;
  config.vcpus = o.vcpus;
  if (!ckpt::vmm::parse_workload_kind(o.workload, &config.workload.kind)) {
    return ckpt::invalid_argument("unknown workload " + o.workload + " (random-writer, hot-set, sweep, idle)");
  }
  config.workload.seed = o.seed;
  config.workload.writes_per_iteration = 16;
  config.workload.hot_pages = 1024;
  config.workload.delay_loops = o.delay_loops;
  CKPT_ASSIGN_OR_RETURN(auto machine, ckpt::vmm::create_machine(config, backend));
  CKPT_RETURN_IF_ERROR(machine->load_guest());
  return machine;
}

Status run(const Options& o) {
  CKPT_ASSIGN_OR_RETURN(auto store, ckpt::snap::Store::open(o.store_dir));
  if (!store->catalog().empty()) {
    return ckpt::invalid_argument(o.store_dir + " already holds epochs; resuming arrives with the epoch pipeline");
  }
  CKPT_ASSIGN_OR_RETURN(auto machine, make_machine(o));
  std::printf("ckptd: %s backend, %s tracking, %llu MiB, %u vCPUs, %s workload\n",
              std::string(machine->backend_name()).c_str(),
              std::string(ckpt::vmm::tracking_mode_name(machine->tracking_mode())).c_str(),
              static_cast<unsigned long long>(o.memory_mib), o.vcpus, o.workload.c_str());
  Totals totals;
  CKPT_RETURN_IF_ERROR(write_base(*store, *machine, totals));
  auto start = Clock::now();
  CKPT_RETURN_IF_ERROR(machine->start());
  std::vector<uint8_t> staging;
  auto next_status = Clock::now() + std::chrono::seconds(1);
  while (ms_since(start) < o.duration_s * 1000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.epoch_ms));
    bool tagged = !o.snapshot_tag.empty() && totals.epochs == 10;
    CKPT_RETURN_IF_ERROR(take_epoch(*store, *machine, staging, tagged ? o.snapshot_tag : "", totals));
    if (Clock::now() >= next_status) {
      std::printf("epoch %llu: %llu dirty pages so far, %.1f MiB stored\n",
                  static_cast<unsigned long long>(*store->newest()),
                  static_cast<unsigned long long>(totals.dirty_pages),
                  static_cast<double>(totals.stored_bytes) / (1 << 20));
      std::fflush(stdout);
      next_status += std::chrono::seconds(1);
    }
  }
  CKPT_RETURN_IF_ERROR(take_epoch(*store, *machine, staging, "final", totals, /*final=*/true));
  double seconds = ms_since(start) / 1000;
  if (o.check) {
    CKPT_RETURN_IF_ERROR(check_newest(*store, *machine));
    std::printf("check: epoch %llu restores bit-exactly\n", static_cast<unsigned long long>(*store->newest()));
  }
  print_summary(totals, seconds);
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ckptd - incremental checkpoint daemon (a foreground run until the service lands)"};
  Options o;
  app.set_version_flag("--version", "ckptd 0.1.0");
  app.add_option("--store", o.store_dir, "Store directory (created if missing; must hold no epochs)")->required();
  app.add_option("--memory-mib", o.memory_mib, "Guest memory size in MiB (a multiple of 2)")->capture_default_str();
  app.add_option("--vcpus", o.vcpus, "Number of vCPUs")->capture_default_str();
  app.add_option("--backend", o.backend, "auto (KVM where /dev/kvm works), kvm or software")->capture_default_str();
  app.add_option("--workload", o.workload, "random-writer, hot-set, sweep or idle")->capture_default_str();
  app.add_option("--epoch-ms", o.epoch_ms, "Epoch interval in milliseconds")->capture_default_str();
  app.add_option("--duration", o.duration_s, "Seconds to run before the final epoch")->capture_default_str();
  app.add_option("--delay-loops", o.delay_loops, "Guest pause instructions between iterations (write rate)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the guest's write pattern")->capture_default_str();
  app.add_option("--tag", o.snapshot_tag, "Tag the 10th epoch with this label");
  app.add_flag("--check", o.check, "At the end, restore the newest epoch and compare it with the guest");
  CLI11_PARSE(app, argc, argv);
  Status s = run(o);
  if (!s.is_ok()) {
    CKPT_LOG(kError) << s.to_string();
    return 1;
  }
  return 0;
}
