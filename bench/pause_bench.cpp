// pause_bench: the epoch pause against its floor, measured in the same run, on the software backend (the only one
// here: no /dev/kvm). For each dirty-set size N (default 1k, 10k, 100k pages) of a 4 GiB guest, in rounds of
// blocks A, B, A, B (one 4 GiB guest at a time; B's guest cannot be paused from outside the Session, so B cannot
// share a guest with A's floor):
//
//   A. One machine, epochs alternating R F F R R F ... (after warm-up epochs of each):
//        R  the capture path, replicated call for call from Session::capture (bench/pause_paths.h): pause ->
//           harvest -> copy into a StagingArea -> rearm -> save state -> resume request;
//        F  the floor: the machine paused (untimed), then PAGEMAP_SCAN harvest-and-rearm + memcpy of the same
//           number of pages into a pre-faulted buffer.
//      Both run on a loop thread the bench hands each epoch to, as Session::snapshot hands its command to the
//      Session's loop thread (bench/loop_thread.h says why that matters on these VMs).
//   B. The daemon's own code: a Session in-process (bench/session_runner.h), one Session::snapshot per guest
//      iteration; the pause is the one the Session itself measures (EpochCommitted::pause_ms), and its phase
//      laps come from its debug log.
//
// Exact dirty sets come from the guest itself: a random-writer vCPU writes W pages per iteration (W chosen so that
// ~N distinct pages are hit) and then spins in its delay loop; the bench waits until the status slot says the
// iteration is complete, then takes the epoch while the guest is in its delay. An epoch counts only if the saved
// state (A) or the status slot (B) shows it ended exactly one whole iteration after the previous one and it holds
// exactly that iteration's distinct pages + the status page (bench/write_sets.h replays the guest's draws).
// Everything else (the first epoch of a block, a missed gate) is reported as discarded. Guest memory is made
// resident before the guest starts (populate_guest), as in a VM that has been running for a while.
//
// With --images DIR the dirty sets are a real guest's instead (C below): memory images of a Linux guest captured one
// memcheck round apart, replayed into an idle guest of the images' size, A and B as above, one dirty set per epoch.
#include <CLI/CLI.hpp>
#include <cstddef>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

#include "bench/bench_util.h"
#include "bench/debug_log.h"
#include "bench/guest_view.h"
#include "bench/loop_thread.h"
#include "bench/memory_images.h"
#include "bench/pause_paths.h"
#include "bench/sample_stats.h"
#include "bench/session_runner.h"
#include "bench/write_sets.h"
#include "common/log.h"
#include "vmm/guest/guest_image.h"
#include "vmm/machine_factory.h"

namespace ckpt::bench {
namespace {

struct Config {
  uint64_t memory_mib = 4096;
  std::vector<uint64_t> pages = {1000, 10000, 100000};
  std::vector<unsigned> samples = {36, 18, 3};  // per path, over all rounds; p99 of < 100 samples is their maximum
  unsigned rounds = 3;  // A, B, A, B...: the Session's blocks interleave with the replica/floor blocks
  unsigned warmup = 1;  // untimed epochs at the start of each block
  uint64_t staging_mib = 512;  // 100k pages are 391 MiB: with the daemon's default 256 MiB they would not be staged
  double gate_ms = 25;         // the guest's delay after each iteration: the bench must pause it within this
  uint64_t seed = 1;
  std::string dir;
  bool session = true;
  bool populate = true;  // every guest page resident before the guest starts, as in a VM that has run a while
  bool capture_thread = true;  // replica and floor on a loop thread, as in the Session (false: the main thread)
  std::string images;          // --images: replay a Linux guest's dirty sets instead of the random writer's
  unsigned image_samples = 30;  // per path, over all rounds, with --images
  std::string command;         // as invoked, for the report
};

// The guest: one vCPU running random-writer over all memory above 1 MiB.
vmm::MachineConfig machine_config(const Config& c, uint64_t writes, uint64_t delay_loops) {
  vmm::MachineConfig m;
  m.memory_bytes = c.memory_mib << 20;
  m.vcpus = 1;
  m.workload.kind = vmm::guest::WorkloadKind::kRandomWriter;
  m.workload.seed = c.seed;
  m.workload.writes_per_iteration = writes;
  m.workload.delay_loops = delay_loops;
  m.workload.max_iterations = 0;
  return m;
}

vmm::guest::WorkloadControl control_of(const vmm::MachineConfig& m) {
  const vmm::WorkloadConfig& w = m.workload;
  return vmm::guest::split_regions(m.memory_bytes, 1, w.kind, w.seed, w.writes_per_iteration, w.hot_pages,
                                   w.delay_loops, w.max_iterations)[0];
}

// The software vCPU's delay is `pause` instructions; how long one takes varies a lot between CPUs (and under a
// hypervisor: 19-180 ns seen here), so it is measured; a gate that turns out too short only costs discarded epochs.
double ns_per_pause() {
  std::vector<double> runs;
  for (int run = 0; run < 5; ++run) {
    Stopwatch watch;
    for (int i = 0; i < 50000; ++i) __builtin_ia32_pause();
    runs.push_back(watch.seconds() * 1e9 / 50000);
  }
  return summarize(runs).median;
}

// Exact distinct-page counts of the guest's iterations 1..n (index = iteration).
std::vector<uint64_t> iteration_pages(const vmm::MachineConfig& m, uint64_t n) {
  RandomWriterModel model(control_of(m));
  std::vector<uint64_t> pages(n + 1, 0);
  for (uint64_t i = 1; i <= n; ++i) pages[i] = model.next_iteration_pages();
  return pages;
}

constexpr double kIterationTimeout = 300;  // s; 100k first-write faults take seconds on a loaded machine
constexpr uint64_t kStatusPage = 1;        // the status slot's page is dirtied with every iteration

struct SizeResult {
  uint64_t target = 0, writes = 0;
  unsigned samples = 0;  // accepted samples wanted per path in each round (block)
  std::vector<CaptureTimes> replica;
  std::vector<FloorTimes> floor;
  unsigned replica_discarded = 0, floor_discarded = 0;
  std::vector<double> session_pause;  // ms, accepted epochs
  std::vector<uint64_t> session_pages;
  std::vector<CaptureLap> session_laps;  // accepted epochs
  std::vector<double> session_write_ms;
  unsigned session_discarded = 0;
  double session_delay_ms = 0;
};

// ---- A: replica and floor alternating on one machine ------------------------------------------------------------

enum class Path { kReplica, kFloor };

class Alternation {
 public:
  // `loop`: the thread both paths run on (null: the caller's).
  Alternation(vmm::Machine& machine, daemon::StagingArea& staging, PauseFloor& floor, std::vector<uint64_t> pages,
              LoopThread* loop)
      : loop_(loop), machine_(machine), replica_(machine, staging), floor_(floor), view_(machine.host_memory()),
        pages_(std::move(pages)) {}

  // One epoch of each kind per call to step(kind); `keep` false for warm-up epochs.
  Status step(Path path, bool keep, SizeResult& out);

 private:
  Status epoch(Path path, bool keep, uint64_t want, SizeResult& out);
  Result<vmm::guest::WorkloadCpuState> paused_state();
  Status resync(vmm::guest::WorkloadCpuState state);
  bool exact(const vmm::guest::WorkloadCpuState& s, uint64_t want, uint64_t pages) const {
    return s.iterations == want && s.writes_done_in_iteration == 0 && want < pages_.size() &&
           pages == pages_[want] + kStatusPage;
  }

  LoopThread* loop_;
  vmm::Machine& machine_;
  CaptureReplica replica_;
  PauseFloor& floor_;
  GuestView view_;
  std::vector<uint64_t> pages_;
  uint64_t done_ = 0;  // iterations whose pages an epoch has taken
};

Result<vmm::guest::WorkloadCpuState> Alternation::paused_state() {
  CKPT_ASSIGN_OR_RETURN(std::vector<vmm::StateBlob> state, machine_.save_state());
  for (const vmm::StateBlob& blob : state) {
    if (blob.name == "software/vcpu0/workload") return vmm::guest::WorkloadCpuState::decode(blob.data);
  }
  return not_found("no vcpu0 state");
}

// The epoch ended inside an iteration (the gate was missed): finish that iteration and drop its pages untimed, so
// the next epoch again holds exactly one whole iteration.
Status Alternation::resync(vmm::guest::WorkloadCpuState state) {
  while (state.writes_done_in_iteration != 0) {
    view_.wait_for_iterations(state.iterations + 1, kIterationTimeout);
    CKPT_RETURN_IF_ERROR(machine_.pause(std::chrono::milliseconds(1000)));
    CKPT_RETURN_IF_ERROR(machine_.harvest_dirty().status());
    CKPT_RETURN_IF_ERROR(machine_.rearm());
    CKPT_ASSIGN_OR_RETURN(state, paused_state());
    CKPT_RETURN_IF_ERROR(machine_.resume());
  }
  done_ = state.iterations;
  return Status::ok();
}

Status Alternation::step(Path path, bool keep, SizeResult& out) {
  uint64_t want = done_ + 1;
  if (view_.wait_for_iterations(want, kIterationTimeout) < want) {
    return Status(StatusCode::kAborted, "the guest did not finish iteration " + std::to_string(want));
  }
  if (!loop_) return epoch(path, keep, want, out);
  Status s;
  loop_->run([&] { s = epoch(path, keep, want, out); });
  return s;
}

// Runs on the capture thread: the machine is driven from there alone, as the Session's loop thread drives its own.
Status Alternation::epoch(Path path, bool keep, uint64_t want, SizeResult& out) {
  vmm::guest::WorkloadCpuState state;
  if (path == Path::kReplica) {
    CKPT_ASSIGN_OR_RETURN(CaptureTimes t, replica_.capture());
    state = t.vcpu0;
    bool ok = exact(state, want, t.pages);
    if (ok && keep) out.replica.push_back(t);
    out.replica_discarded += keep && !ok;
  } else {
    CKPT_RETURN_IF_ERROR(machine_.pause(std::chrono::milliseconds(1000)));
    CKPT_ASSIGN_OR_RETURN(state, paused_state());
    CKPT_ASSIGN_OR_RETURN(FloorTimes f, floor_.measure());
    CKPT_RETURN_IF_ERROR(machine_.resume());
    bool ok = exact(state, want, f.pages);
    if (ok && keep) out.floor.push_back(f);
    out.floor_discarded += keep && !ok;
  }
  return resync(state);
}

// `on_loop`: both paths on a loop thread (as the Session's capture), else on the thread that polls the guest.
Status measure_alternating(const Config& config, SizeResult& out, double pause_ns, bool on_loop) {
  auto delay = static_cast<uint64_t>(config.gate_ms * 1e6 / pause_ns);
  vmm::MachineConfig mc = machine_config(config, out.writes, delay);
  const size_t samples_r = out.replica.size() + out.samples, samples_f = out.floor.size() + out.samples;
  uint64_t epochs = 2ull * (config.warmup + out.samples);
  CKPT_ASSIGN_OR_RETURN(auto machine, vmm::create_machine(mc, vmm::Backend::kSoftware));
  CKPT_RETURN_IF_ERROR(machine->load_guest());
  CKPT_ASSIGN_OR_RETURN(daemon::StagingArea staging, daemon::StagingArea::create(config.staging_mib << 20));
  CKPT_ASSIGN_OR_RETURN(auto floor, PauseFloor::create(machine->host_memory(), staging));
  if (config.populate) CKPT_RETURN_IF_ERROR(populate_guest(machine->host_memory()));
  LoopThread loop;
  Alternation alternation(*machine, staging, *floor, iteration_pages(mc, epochs * 4 + 64),
                          on_loop ? &loop : nullptr);
  CKPT_RETURN_IF_ERROR(machine->start());
  // Warm-up: the first epoch also holds the guest image load_guest wrote; both paths then run on a warm machine.
  for (unsigned i = 0; i < config.warmup; ++i) CKPT_RETURN_IF_ERROR(alternation.step(Path::kReplica, false, out));
  // R F F R: each path goes first as often as second, so slow drifts (other jobs, the guest's page tables) fall on
  // both alike.
  static constexpr Path kPattern[4] = {Path::kReplica, Path::kFloor, Path::kFloor, Path::kReplica};
  auto full = [&](Path p) { return p == Path::kReplica ? out.replica.size() >= samples_r : out.floor.size() >= samples_f; };
  unsigned guard = 0;
  for (unsigned j = 0; !full(Path::kReplica) || !full(Path::kFloor); ++j) {
    Path path = kPattern[j % 4];
    if (full(path)) continue;
    if (++guard > 4 * out.samples + 16) return Status(StatusCode::kAborted, "too many discarded epochs");
    CKPT_RETURN_IF_ERROR(alternation.step(path, true, out));
    std::cerr << "." << std::flush;
  }
  return Status::ok();
}

// ---- B: the Session -------------------------------------------------------------------------------------------

// A snapshot the bench took: its dirty pages, and whether it counts.
struct TakenEpoch {
  uint64_t pages = 0;
  bool accepted = false;
};

// The Session's phase laps of the accepted snapshots, from its debug log. The log also holds epochs the bench did
// not take (the base, the final one), so each snapshot is matched, in order, to the next capture and write lines
// with its page count.
void collect_session_laps(const std::string& log, const std::vector<TakenEpoch>& taken, SizeResult& out) {
  DebugLaps laps = parse_debug_laps(log);
  size_t c = 0, w = 0;
  for (const TakenEpoch& epoch : taken) {
    // An epoch without lines of its own (one too big to stage is written while paused) takes none of the next's.
    size_t cm = c, wm = w;
    while (cm < laps.captures.size() && laps.captures[cm].pages != epoch.pages) ++cm;
    while (wm < laps.writes.size() && laps.writes[wm].pages != epoch.pages) ++wm;
    if (cm == laps.captures.size()) continue;
    if (epoch.accepted) {
      out.session_laps.push_back(laps.captures[cm]);
      if (wm < laps.writes.size()) out.session_write_ms.push_back(laps.writes[wm].ms);
    }
    c = cm + 1;
    if (wm < laps.writes.size()) w = wm + 1;
  }
}

daemon::DaemonConfig session_config(const Config& config, const vmm::MachineConfig& mc, const std::string& store) {
  daemon::DaemonConfig dc;
  dc.backend = vmm::Backend::kSoftware;
  dc.machine = mc;
  dc.store_dir = store;
  dc.epoch_ms = 86400000;  // no periodic epochs: each one is a snapshot command issued at an iteration boundary
  dc.staging_bytes = config.staging_mib << 20;
  return dc;
}

Status drive_session(const Config& config, SizeResult& out, double pause_ns, const std::string& store,
                     const std::string& log) {
  // The guest must still be in its delay when the next snapshot pauses it, and the Session only pauses once the
  // previous epoch is written (one epoch in flight): the delay covers the write too. A first guess, then 1.5x the
  // slowest round trip after the first, raised again whenever the guest ran ahead.
  double delay_ms = config.gate_ms + static_cast<double>(out.target) * 0.01;
  vmm::MachineConfig mc = machine_config(config, out.writes, static_cast<uint64_t>(delay_ms * 1e6 / pause_ns));
  const size_t wanted = out.session_pause.size() + out.samples;
  std::vector<uint64_t> pages = iteration_pages(mc, 8ull * (config.warmup + out.samples) + 64);
  CKPT_RETURN_IF_ERROR(remove_tree(store));  // ours: a leftover from a kept --dir would make the Session refuse it
  CKPT_ASSIGN_OR_RETURN(auto redirect, StderrToFile::start(log));
  std::optional<GuestView> view;  // the Session's guest, found once the Session has made it
  CKPT_ASSIGN_OR_RETURN(auto runner, SessionRunner::start(session_config(config, mc, store), [&]() -> Status {
    CKPT_ASSIGN_OR_RETURN(view, GuestView::find_in_process(mc.memory_bytes));
    return config.populate ? populate_guest(view->memory()) : Status::ok();
  }));
  auto set_delay = [&](double ms) {
    delay_ms = ms;
    view->set_control(0, offsetof(vmm::guest::WorkloadControl, delay_loops), static_cast<uint64_t>(ms * 1e6 / pause_ns));
  };
  std::vector<TakenEpoch> taken;  // per snapshot, in order
  uint64_t done = 0, extra = 0;  // extra: the control page, dirtied by set_delay since the last epoch
  double slowest = 0;
  for (unsigned k = 0; out.session_pause.size() < wanted; ++k) {
    if (k > 4 * out.samples + 16) return Status(StatusCode::kAborted, "too many discarded Session epochs");
    uint64_t want = done + 1;
    uint64_t seen = view->wait_for_iterations(want, kIterationTimeout);
    Stopwatch watch;
    CKPT_ASSIGN_OR_RETURN(daemon::EpochCommitted e, runner->session().snapshot(""));
    double round_trip = watch.seconds() * 1e3;
    bool warm = k >= config.warmup;  // epoch 0 also holds the guest's first touches of its control block
    bool ok = warm && seen == want && want < pages.size() && e.dirty_pages == pages[want] + kStatusPage + extra;
    taken.push_back({e.dirty_pages, ok});
    if (ok) {
      out.session_pause.push_back(e.pause_ms);
      out.session_pages.push_back(e.dirty_pages);
    }
    out.session_discarded += warm && !ok;
    done = seen;
    extra = 0;
    if (k > 0) slowest = std::max(slowest, round_trip);
    if (k + 1 == config.warmup || (warm && seen > want)) {
      set_delay(std::max(delay_ms, 1.5 * slowest + config.gate_ms));
      extra = 1;
    }
    std::cerr << "." << std::flush;
  }
  out.session_delay_ms = std::max(out.session_delay_ms, delay_ms);
  CKPT_RETURN_IF_ERROR(runner->stop());
  runner.reset();
  redirect->stop();
  collect_session_laps(log, taken, out);
  return Status::ok();
}

// ---- C: a Linux guest's dirty sets (--images) -----------------------------------------------------------------
//
// The same paths on the dirty sets a real guest produced: memory images of a Linux guest captured one memcheck round
// apart (bench/linux_guest_images.sh). The guest here is idle (its vCPU writes nothing); before each epoch the bench
// walks its memory to the next image (bench/memory_images.h), writing through the tracked mapping exactly the
// pages that differ, so an epoch is exact when it holds those pages and no other.

constexpr uint64_t kReplayFirstGfn = vmm::guest::kWorkloadGpa / vmm::guest::kPageSize;  // the control blocks below stay untouched

vmm::MachineConfig idle_machine_config(uint64_t bytes) {
  vmm::MachineConfig m;
  m.memory_bytes = bytes;
  m.vcpus = 1;
  m.workload.kind = vmm::guest::WorkloadKind::kIdle;
  return m;
}

// Block A on the images: replica and floor alternating R F F R on one machine.
Status replay_alternating(const Config& config, const ImageSequence& images, SizeResult& out) {
  vmm::MachineConfig mc = idle_machine_config(images.bytes());
  CKPT_ASSIGN_OR_RETURN(auto machine, vmm::create_machine(mc, vmm::Backend::kSoftware));
  CKPT_RETURN_IF_ERROR(machine->load_guest());
  CKPT_ASSIGN_OR_RETURN(daemon::StagingArea staging, daemon::StagingArea::create(config.staging_mib << 20));
  CKPT_ASSIGN_OR_RETURN(auto floor, PauseFloor::create(machine->host_memory(), staging));
  if (config.populate) CKPT_RETURN_IF_ERROR(populate_guest(machine->host_memory()));
  ImageReplay replay(images, kReplayFirstGfn);
  replay.load_first(machine->host_memory());  // before start(), which forgets these writes
  CaptureReplica replica(*machine, staging);
  LoopThread loop;
  CKPT_RETURN_IF_ERROR(machine->start());
  const size_t want_r = out.replica.size() + out.samples, want_f = out.floor.size() + out.samples;
  auto full = [&](Path p) { return p == Path::kReplica ? out.replica.size() >= want_r : out.floor.size() >= want_f; };
  static constexpr Path kPattern[4] = {Path::kReplica, Path::kFloor, Path::kFloor, Path::kReplica};
  for (unsigned k = 0, guard = 0; !full(Path::kReplica) || !full(Path::kFloor); ++k) {
    const bool keep = k >= config.warmup;
    Path path = keep ? kPattern[k % 4] : Path::kReplica;
    if (keep && full(path)) continue;
    if (++guard > 4 * out.samples + 16) return Status(StatusCode::kAborted, "too many discarded epochs");
    const uint64_t written = replay.step(machine->host_memory());
    Status s;
    loop.run([&] {
      if (path == Path::kReplica) {
        Result<CaptureTimes> t = replica.capture();
        if (!t.is_ok()) { s = t.status(); return; }
        bool ok = t->pages == written;
        if (keep && ok) out.replica.push_back(*t);
        out.replica_discarded += keep && !ok;
        return;
      }
      if (s = machine->pause(std::chrono::milliseconds(1000)); !s.is_ok()) return;
      Result<FloorTimes> f = floor->measure();
      if (s = machine->resume(); !s.is_ok()) return;
      if (!f.is_ok()) { s = f.status(); return; }
      bool ok = f->pages == written;
      if (keep && ok) out.floor.push_back(*f);
      out.floor_discarded += keep && !ok;
    });
    CKPT_RETURN_IF_ERROR(s);
    std::cerr << "." << std::flush;
  }
  return Status::ok();
}

// Block B on the images: the Session, one snapshot per step.
Status replay_session(const Config& config, const ImageSequence& images, SizeResult& out, const std::string& store,
                      const std::string& log) {
  vmm::MachineConfig mc = idle_machine_config(images.bytes());
  const size_t wanted = out.session_pause.size() + out.samples;
  CKPT_RETURN_IF_ERROR(remove_tree(store));
  CKPT_ASSIGN_OR_RETURN(auto redirect, StderrToFile::start(log));
  std::optional<GuestView> view;
  ImageReplay replay(images, kReplayFirstGfn);
  CKPT_ASSIGN_OR_RETURN(auto runner, SessionRunner::start(session_config(config, mc, store), [&]() -> Status {
    CKPT_ASSIGN_OR_RETURN(view, GuestView::find_in_process(mc.memory_bytes));
    if (config.populate) CKPT_RETURN_IF_ERROR(populate_guest(view->memory()));
    replay.load_first(view->memory());
    return Status::ok();
  }));
  std::vector<TakenEpoch> taken;  // per snapshot, in order
  for (unsigned k = 0; out.session_pause.size() < wanted; ++k) {
    if (k > 4 * out.samples + 16) return Status(StatusCode::kAborted, "too many discarded Session epochs");
    const uint64_t written = replay.step(view->memory());
    CKPT_ASSIGN_OR_RETURN(daemon::EpochCommitted e, runner->session().snapshot(""));
    // The first epoch is a warm-up, as in the other blocks (it may hold the first touches of the staging area).
    const bool warm = k >= std::max(1u, config.warmup);
    const bool ok = warm && e.dirty_pages == written;
    taken.push_back({e.dirty_pages, ok});
    if (ok) out.session_pause.push_back(e.pause_ms);
    out.session_discarded += warm && !ok;
    std::cerr << "." << std::flush;
  }
  CKPT_RETURN_IF_ERROR(runner->stop());
  runner.reset();
  redirect->stop();
  collect_session_laps(log, taken, out);
  return Status::ok();
}

// ---- report ----------------------------------------------------------------------------------------------------

std::string ms(double v) { return format_fixed(v, v < 10 ? 3 : 1); }
std::string med_p99(const Summary& s) { return ms(s.median) + " / " + ms(s.p99); }
std::string ratio(double a, double b) { return b > 0 ? format_fixed(a / b, 2) + "x" : "n/a"; }

template <typename T, typename F>
Summary summary_of(const std::vector<T>& items, F field) {
  std::vector<double> v;
  for (const T& item : items) v.push_back(field(item));
  return summarize(v);
}

// The goal table: one row per dirty-set size.
void pause_table(std::ostream& out, const std::vector<SizeResult>& results) {
  out << "| dirty pages | floor (scan + memcpy) med / p99 ms | capture path, replica, med / p99 ms | replica / floor "
      << "med, p99 | Session pause med / p99 ms | Session / floor med, p99 | goal <= 1.3x |\n"
      << "|---|---|---|---|---|---|---|\n";
  for (const SizeResult& r : results) {
    Summary f = summary_of(r.floor, [](const FloorTimes& t) { return t.total_ms; });
    Summary c = summary_of(r.replica, [](const CaptureTimes& t) { return t.total_ms; });
    Summary s = summarize(r.session_pause);
    Summary pages = summary_of(r.replica, [](const CaptureTimes& t) { return static_cast<double>(t.pages); });
    bool has_session = s.n > 0;
    const Summary& judged = has_session ? s : c;
    double worst = std::max(judged.median / f.median, judged.p99 / f.p99);
    out << "| " << r.target << " (" << format_fixed(pages.median, 0) << ") | " << med_p99(f) << " | " << med_p99(c)
        << " | " << ratio(c.median, f.median) << ", " << ratio(c.p99, f.p99) << " | "
        << (has_session ? med_p99(s) : "not run") << " | "
        << (has_session ? ratio(s.median, f.median) + ", " + ratio(s.p99, f.p99) : "-") << " | "
        << (worst <= 1.3 ? "**met**" : "**MISSED**") << " (worst " << format_fixed(worst, 2) << "x) |\n";
  }
}

// Where the time goes: the phases of each path, medians.
void laps_table(std::ostream& out, const std::vector<SizeResult>& results) {
  out << "Where the time goes (medians, ms). Floor: PAGEMAP_SCAN walk (harvest and rearm in one), memcpy. Replica "
      << "and Session: pause (park the vCPU), harvest (Machine::harvest_dirty: the same walk plus the bitmap of all "
      << "guest pages, merged with owed pages), copy (StagingArea::copy_in), rearm (nothing on this backend), state "
      << "(save_state); the Session's from its own debug log.\n\n"
      << "| dirty pages | floor scan | floor memcpy | replica pause | harvest | copy | rearm | state | Session pause | "
      << "harvest | copy | rearm | state | Session epoch write (after resume) |\n"
      << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const SizeResult& r : results) {
    auto fm = [&](auto f) { return ms(summary_of(r.floor, f).median); };
    auto cm = [&](auto f) { return ms(summary_of(r.replica, f).median); };
    auto sm = [&](auto f) { return r.session_laps.empty() ? std::string("-") : ms(summary_of(r.session_laps, f).median); };
    out << "| " << r.target << " | " << fm([](const FloorTimes& t) { return t.scan_ms; }) << " | "
        << fm([](const FloorTimes& t) { return t.copy_ms; }) << " | "
        << cm([](const CaptureTimes& t) { return t.pause_ms; }) << " | "
        << cm([](const CaptureTimes& t) { return t.harvest_ms; }) << " | "
        << cm([](const CaptureTimes& t) { return t.copy_ms; }) << " | "
        << cm([](const CaptureTimes& t) { return t.rearm_ms; }) << " | "
        << cm([](const CaptureTimes& t) { return t.state_ms; }) << " | "
        << sm([](const CaptureLap& l) { return l.pause; }) << " | " << sm([](const CaptureLap& l) { return l.harvest; })
        << " | " << sm([](const CaptureLap& l) { return l.copy; }) << " | "
        << sm([](const CaptureLap& l) { return l.rearm; }) << " | " << sm([](const CaptureLap& l) { return l.state; })
        << " | " << (r.session_write_ms.empty() ? "-" : ms(summarize(r.session_write_ms).median)) << " |\n";
  }
}

void samples_line(std::ostream& out, const std::vector<SizeResult>& results) {
  out << "\nSamples (accepted / discarded): ";
  for (const SizeResult& r : results) {
    out << r.target << " pages: floor " << r.floor.size() << "/" << r.floor_discarded << ", replica "
        << r.replica.size() << "/" << r.replica_discarded << ", Session " << r.session_pause.size() << "/"
        << r.session_discarded;
    if (r.writes > 0) {
      out << " (guest delay " << format_fixed(r.session_delay_ms, 0) << " ms, " << r.writes << " writes per iteration)";
    }
    out << "; ";
  }
  out << "p99 of fewer than 100 samples is their maximum.\n\n";
}

void print_report(const Config& config, const std::vector<SizeResult>& results, double pause_ns) {
  std::ostringstream out;
  out << "## Epoch pause against its floor (software backend, " << config.memory_mib << " MiB guest)\n\n"
      << "Command: `" << config.command << "` (bench/pause_bench.cpp). Guest: 1 vCPU, "
      << "random-writer over all memory above 1 MiB (scattered pages: the costly case for the harvest), one iteration "
      << "per epoch, the epoch taken while the vCPU spins in its " << format_fixed(config.gate_ms, 0)
      << " ms delay (" << format_fixed(pause_ns, 1) << " ns per `pause` measured here). Staging area "
      << config.staging_mib << " MiB for both paths (the daemon's default 256 MiB holds 65536 pages: a 100k-page "
      << "epoch would be written while paused). Dirty pages = the iteration's distinct pages + its status page; "
      << "epochs that did not hold exactly that are discarded. " << config.rounds << " rounds of blocks per size: "
      << "replica/floor (one fresh guest, epochs alternating R F F R), then the Session (a fresh Session and guest), "
      << "then again; " << config.warmup << " warm-up epoch(s) at the start of each block. The goal is judged on "
      << "the Session's pause, the daemon's own (on the replica's where the Session did not run); the replica, the "
      << "capture steps re-implemented without the Session, is there to tell harness noise from Session cost.\n\n";
  pause_table(out, results);
  samples_line(out, results);
  laps_table(out, results);
  std::cout << out.str() << std::flush;
}

// How many pages differ between neighbouring images.
Summary changed_pages(const ImageSequence& images) {
  std::vector<double> sizes;
  for (size_t i = 0; i + 1 < images.count(); ++i) sizes.push_back(static_cast<double>(images.changed(i).size()));
  return summarize(sizes);
}

void print_image_report(const Config& config, const ImageSequence& images, const SizeResult& r) {
  Summary steps = changed_pages(images);
  std::ostringstream out;
  out << "## Epoch pause on a Linux guest's dirty sets (software backend, " << (images.bytes() >> 20)
      << " MiB guest)\n\n"
      << "Command: `" << config.command << "` (bench/pause_bench.cpp). The dirty sets of a real guest: "
      << images.count() << " memory images of the Linux test guest one memcheck round apart "
      << "(bench/linux_guest_images.sh), " << format_fixed(steps.min, 0) << " / " << format_fixed(steps.median, 0)
      << " / " << format_fixed(steps.max, 0) << " pages (min / median / max) changed between neighbours. The guest "
      << "here is idle (1 vCPU that writes nothing); before each epoch the bench walks its memory to the next image "
      << "and back again at the end (0, 1, ..., " << images.count() - 1 << ", ..., 0, 1, ...), writing exactly the "
      << "pages that differ (above 1 MiB), and an epoch counts only if it holds exactly those. Staging area "
      << config.staging_mib << " MiB. " << config.rounds << " rounds of blocks: replica/floor (epochs alternating "
      << "R F F R), then the Session; " << config.warmup << " warm-up epoch(s) at the start of each block (at least "
      << "one for the Session). The row's first figure is the median number of pages changed between neighbouring "
      << "images, the one in parentheses the median dirty set of the accepted replica epochs.\n\n";
  std::vector<SizeResult> results{r};
  pause_table(out, results);
  samples_line(out, results);
  laps_table(out, results);
  std::cout << out.str() << std::flush;
}

Status run_images(const Config& config) {
  CKPT_ASSIGN_OR_RETURN(auto images, ImageSequence::open(config.images));
  if (images->count() < 2) return invalid_argument("--images " + config.images + " needs at least two images");
  CKPT_ASSIGN_OR_RETURN(std::string dir, make_bench_dir(config.dir, "pause_bench"));
  SizeResult r;
  r.target = static_cast<uint64_t>(changed_pages(*images).median);
  r.samples = (config.image_samples + config.rounds - 1) / std::max(1u, config.rounds);
  std::cerr << "pause_bench: " << images->count() << " images of " << (images->bytes() >> 20) << " MiB:" << std::flush;
  for (unsigned round = 0; round < config.rounds; ++round) {
    std::cerr << " replica/floor " << std::flush;
    CKPT_RETURN_IF_ERROR(replay_alternating(config, *images, r));
    if (!config.session) continue;
    std::cerr << " Session " << std::flush;
    std::string name = dir + "/session-images-" + std::to_string(round);
    CKPT_RETURN_IF_ERROR(replay_session(config, *images, r, name, name + ".log"));
  }
  std::cerr << std::endl;
  print_image_report(config, *images, r);
  if (config.dir.empty()) return remove_tree(dir);
  return Status::ok();
}

Status run(const Config& config) {
  if (!config.images.empty()) return run_images(config);
  if (config.samples.size() != config.pages.size()) return invalid_argument("--samples needs one count per --pages");
  CKPT_ASSIGN_OR_RETURN(std::string dir, make_bench_dir(config.dir, "pause_bench"));
  double pause_ns = ns_per_pause();
  uint64_t region_pages = ((config.memory_mib << 20) - vmm::guest::kWorkloadGpa) / 4096;
  std::vector<SizeResult> results;
  for (size_t i = 0; i < config.pages.size(); ++i) {
    SizeResult r;
    r.target = config.pages[i];
    r.writes = writes_for_distinct(region_pages, r.target);
    r.samples = (config.samples[i] + config.rounds - 1) / std::max(1u, config.rounds);
    std::cerr << "pause_bench: " << r.target << " pages:" << std::flush;
    for (unsigned round = 0; round < config.rounds; ++round) {
      std::cerr << " replica/floor " << std::flush;
      CKPT_RETURN_IF_ERROR(measure_alternating(config, r, pause_ns, config.capture_thread));
      if (!config.session) continue;
      std::cerr << " Session " << std::flush;
      std::string name = dir + "/session-" + std::to_string(r.target) + "-" + std::to_string(round);
      CKPT_RETURN_IF_ERROR(drive_session(config, r, pause_ns, name, name + ".log"));
    }
    std::cerr << std::endl;
    results.push_back(std::move(r));
  }
  print_report(config, results, pause_ns);
  if (config.dir.empty()) return remove_tree(dir);
  return Status::ok();
}

}  // namespace
}  // namespace ckpt::bench

int main(int argc, char** argv) {
  ckpt::bench::Config config;
  CLI::App app{"Epoch pause (capture path and the daemon's Session) against its floor (see bench/README.md)"};
  app.add_option("--memory-mib", config.memory_mib, "guest memory")->capture_default_str();
  app.add_option("--pages", config.pages, "dirty-set sizes, comma-separated")->delimiter(',')->capture_default_str();
  app.add_option("--samples", config.samples, "accepted samples per path for each size, over all rounds")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rounds", config.rounds, "blocks of each path, alternating")->capture_default_str();
  app.add_option("--warmup", config.warmup, "untimed epochs of each path at the start of each block")
      ->capture_default_str();
  app.add_option("--staging-mib", config.staging_mib, "staging area (and floor buffer)")->capture_default_str();
  app.add_option("--gate-ms", config.gate_ms, "the guest's delay after each iteration")->capture_default_str();
  app.add_option("--seed", config.seed, "workload seed")->capture_default_str();
  app.add_option("--dir", config.dir, "directory for the Session's stores and logs (default: fresh, removed)");
  app.add_flag("!--no-session", config.session, "skip the Session (B) runs");
  app.add_flag("!--no-populate", config.populate, "leave untouched guest memory as memfd holes (first writes then "
               "also allocate: several times slower here)");
  app.add_flag("!--main-thread", config.capture_thread,
               "run the replica and the floor on the main thread (which also polls the guest) instead of a loop "
               "thread like the Session's");
  app.add_option("--images", config.images,
                 "directory of raw memory images (*.img; bench/linux_guest_images.sh): instead of the random writer, "
                 "replay the pages that changed between neighbouring images as the epochs' dirty sets (the guest's size "
                 "is the images'; --memory-mib, --pages, --samples and --gate-ms do not apply)");
  app.add_option("--image-samples", config.image_samples, "with --images: accepted samples per path, over all rounds")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  config.command = ckpt::bench::command_line("pause_bench", argc, argv);
  ckpt::set_log_level(ckpt::LogLevel::kWarn);
  return ckpt::bench::exit_status("pause_bench", ckpt::bench::run(config));
}
