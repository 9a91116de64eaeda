#include "vmm/software/software_machine.h"

#include <cstring>
#include <optional>
#include <vector>

#include "common/log.h"
#include "vmm/guest/guest_image.h"
#include "vmm/guest_memory.h"
#include "vmm/software/software_state.h"
#include "vmm/software/software_vcpu.h"
#include "vmm/software/uffd_wp_tracker.h"
#include "vmm/uffd/missing_pages.h"

namespace ckpt::vmm::software {
namespace {

class SoftwareMachine final : public Machine {
 public:
  SoftwareMachine(const MachineConfig& config, const SoftwareOptions& options) : config_(config), options_(options) {}
  ~SoftwareMachine() override { stop_threads(); }

  Status init();

  std::string_view backend_name() const override { return "software"; }
  TrackingMode tracking_mode() const override {
    return tracker_->name() == "uffd-wp" ? TrackingMode::kUffdWp : TrackingMode::kConservative;
  }
  const MachineConfig& config() const override { return config_; }
  std::span<uint8_t> host_memory() override { return {memory_->host(), memory_->bytes()}; }
  int memory_fd() const override { return memory_->fd(); }
  Result<std::vector<std::pair<uint64_t, uint64_t>>> data_ranges() const override { return memory_->data_ranges(); }
  std::shared_ptr<MissingPages> missing_pages() const override { return missing_; }
  Status write_memory(uint64_t gpa, std::span<const uint8_t> bytes) override { return memory_->write(gpa, bytes); }
  Status load_guest() override;
  Status start() override;
  Status pause(std::chrono::milliseconds timeout) override;
  Status resume() override;
  Result<std::vector<uint64_t>> harvest_dirty() override;
  Status rearm() override;
  Result<std::vector<StateBlob>> save_state() override;
  Status load_state(const std::vector<StateBlob>& state) override;
  // A software vCPU has no failure mode once started (start() checks what could go wrong).
  Status vcpu_error() const override { return Status::ok(); }
  MachineStats stats() const override { return MachineStats{}; }

  std::string_view tracker_name() const { return tracker_->name(); }

 private:
  Status check_tracking() const;
  Status require_paused(const char* what) const;
  Status not_parked_error(std::chrono::milliseconds timeout) const;
  guest::WorkloadCpuState state_before_start(unsigned index) const;
  void stop_threads();

  MachineConfig config_;
  SoftwareOptions options_;
  // Declared before the vCPUs, so destroyed after them: their threads write this memory until joined.
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<SoftwareTracker> tracker_;
  std::shared_ptr<MissingPages> missing_;  // lazy_memory only
  // Reused by every harvest: a fresh bitmap (32 KiB per GiB of guest) costs page faults inside the pause.
  DirtyBitmap harvested_;
  VcpuControl control_;
  std::vector<std::unique_ptr<SoftwareVcpu>> vcpus_;
  std::optional<std::vector<guest::WorkloadCpuState>> loaded_state_;  // from load_state, applied at start
  bool started_ = false;
  bool paused_ = true;  // not running the workload: before start, or after pause()
};

Status SoftwareMachine::check_tracking() const {
  if (config_.tracking != TrackingMode::kAuto && config_.tracking != TrackingMode::kUffdWp) {
    return invalid_argument("tracking mode " + std::string(tracking_mode_name(config_.tracking)) +
                            " is KVM-only; the software backend tracks with uffd-wp (modes auto and uffd-wp)");
  }
  if (config_.tracking == TrackingMode::kUffdWp && options_.conservative == ConservativePolicy::kAlways) {
    return invalid_argument("tracking mode uffd-wp contradicts the conservative tracker that was forced");
  }
  return Status::ok();
}

Status SoftwareMachine::init() {
  if (config_.vcpus == 0 || config_.vcpus > guest::kMaxVcpus) {
    return invalid_argument("vCPU count " + std::to_string(config_.vcpus) + " out of range 1.." +
                            std::to_string(guest::kMaxVcpus));
  }
  CKPT_RETURN_IF_ERROR(check_tracking());
  CKPT_ASSIGN_OR_RETURN(memory_, GuestMemory::create(config_.memory_bytes));
  CKPT_ASSIGN_OR_RETURN(tracker_, make_software_tracker(*memory_, options_.conservative, options_.scan_vector_regions,
                                                        config_.lazy_memory));
  if (config_.lazy_memory) {
    // One userfaultfd per mapping: the uffd-wp tracker's serves the missing pages too; a conservative tracker has
    // none, so they get one of their own.
    if (auto* uffd = dynamic_cast<UffdWpTracker*>(tracker_.get())) {
      missing_ = uffd->missing_pages();
    } else {
      CKPT_ASSIGN_OR_RETURN(missing_, MissingPages::create(*memory_));
    }
  }
  for (unsigned i = 0; i < config_.vcpus; ++i) {
    vcpus_.push_back(
        std::make_unique<SoftwareVcpu>(i, std::span<uint8_t>(memory_->host(), memory_->bytes()), control_));
  }
  CKPT_LOG(kInfo) << "software machine: " << (config_.memory_bytes >> 20) << " MiB, " << config_.vcpus
                  << " vCPUs, tracking " << tracker_->name();
  return Status::ok();
}

// The same bytes the KVM backend writes (page tables and code included, though nothing here executes them), so
// the two backends' memory images agree everywhere, and through GuestMemory::write, so the first harvest reports
// them as the VMM's writes.
Status SoftwareMachine::load_guest() {
  if (started_) return invalid_argument("load_guest after start");
  const WorkloadConfig& w = config_.workload;
  std::vector<guest::WorkloadControl> controls =
      guest::split_regions(config_.memory_bytes, config_.vcpus, w.kind, w.seed, w.writes_per_iteration, w.hot_pages,
                           w.delay_loops, w.max_iterations);
  std::vector<uint8_t> low(guest::kWorkloadGpa, 0);
  CKPT_RETURN_IF_ERROR(guest::build_guest_image(low, config_.memory_bytes, controls));
  CKPT_RETURN_IF_ERROR(memory_->write(0, low));
  loaded_state_.reset();  // every vCPU starts at the guest's entry point, as with KVM's registers
  return Status::ok();
}

// Order: each vCPU reads its control block and takes its registers (loaded or entry), then the tracker forgets
// the VMM's writes through host_memory() so far (bulk loading; write_memory's stay owed), then the threads run.
Status SoftwareMachine::start() {
  if (started_) return invalid_argument("machine already started");
  for (unsigned i = 0; i < vcpus_.size(); ++i) {
    CKPT_RETURN_IF_ERROR(vcpus_[i]->prepare(loaded_state_ ? &(*loaded_state_)[i] : nullptr));
  }
  CKPT_RETURN_IF_ERROR(tracker_->reset().with_context("start"));
  started_ = true;
  for (const auto& vcpu : vcpus_) vcpu->start_thread();
  return resume();
}

Status SoftwareMachine::pause(std::chrono::milliseconds timeout) {
  std::unique_lock lock(control_.mutex);
  control_.run.store(false, std::memory_order_relaxed);
  if (!started_) return Status::ok();
  control_.wake.notify_all();  // halted vCPUs sleep on it; running ones see `run` between two steps
  if (!control_.all_parked.wait_for(lock, timeout, [&] { return control_.parked == vcpus_.size(); })) {
    return not_parked_error(timeout);
  }
  paused_ = true;
  return Status::ok();
}

Status SoftwareMachine::not_parked_error(std::chrono::milliseconds timeout) const {
  std::string which;
  for (const auto& vcpu : vcpus_) {
    if (!vcpu->parked_locked()) which += (which.empty() ? "" : ", ") + std::to_string(vcpu->index());
  }
  return Status(StatusCode::kAborted, "software vCPU(s) " + which + " of " + std::to_string(vcpus_.size()) +
                                          " did not park within " + std::to_string(timeout.count()) + " ms");
}

Status SoftwareMachine::resume() {
  if (!started_) return invalid_argument("resume before start");
  {
    std::lock_guard lock(control_.mutex);
    control_.run.store(true, std::memory_order_relaxed);
    paused_ = false;
  }
  control_.wake.notify_all();
  return Status::ok();
}

Status SoftwareMachine::require_paused(const char* what) const {
  if (!paused_) return invalid_argument(std::string(what) + " needs a paused machine");
  return Status::ok();
}

Result<std::vector<uint64_t>> SoftwareMachine::harvest_dirty() {
  CKPT_RETURN_IF_ERROR(require_paused("harvest"));
  if (harvested_.pages() != memory_->pages()) harvested_ = DirtyBitmap(memory_->pages());
  harvested_.clear();
  CKPT_RETURN_IF_ERROR(tracker_->harvest_and_rearm(harvested_));
  memory_->take_vmm_dirty(harvested_);  // only after the tracker succeeded: on failure both stay owed
  return harvested_.to_gfns();
}

// Nothing to do: harvest_dirty() re-protected every page it reported, in the same PAGEMAP_SCAN walk. (The conservative
// tracker protects nothing.) Kept paused-only so that callers written against KVM behave the same here.
Status SoftwareMachine::rearm() { return require_paused("rearm"); }

Result<std::vector<StateBlob>> SoftwareMachine::save_state() {
  CKPT_RETURN_IF_ERROR(require_paused("save_state"));
  std::vector<StateBlob> state;
  for (const auto& vcpu : vcpus_) {
    append_vcpu_state(vcpu->index(), started_ ? vcpu->state() : state_before_start(vcpu->index()), state);
  }
  return state;
}

// Before start the registers are the loaded ones, or the entry state the control block in memory implies.
guest::WorkloadCpuState SoftwareMachine::state_before_start(unsigned index) const {
  if (loaded_state_) return (*loaded_state_)[index];
  guest::WorkloadControl c;
  std::memcpy(&c, memory_->host() + guest::control_gpa(index), sizeof(c));
  return guest::WorkloadCpu::initial_state(c);
}

Status SoftwareMachine::load_state(const std::vector<StateBlob>& state) {
  if (started_) return invalid_argument("load_state after start");
  CKPT_ASSIGN_OR_RETURN(loaded_state_, parse_vcpu_states(state, config_.vcpus));
  return Status::ok();
}

void SoftwareMachine::stop_threads() {
  {
    std::lock_guard lock(control_.mutex);
    control_.stop = true;
    control_.run.store(false, std::memory_order_relaxed);
  }
  control_.wake.notify_all();
  for (const auto& vcpu : vcpus_) vcpu->join();
}

}  // namespace

Result<std::unique_ptr<Machine>> create_software_machine(const MachineConfig& config, const SoftwareOptions& options) {
  auto machine = std::make_unique<SoftwareMachine>(config, options);
  CKPT_RETURN_IF_ERROR(machine->init());
  return std::unique_ptr<Machine>(std::move(machine));
}

std::string_view software_tracker_name(const Machine& machine) {
  const auto* software = dynamic_cast<const SoftwareMachine*>(&machine);
  return software ? software->tracker_name() : std::string_view();
}

}  // namespace ckpt::vmm::software
