#include "vmm/kvm/kvm_machine.h"

#include <sys/mman.h>

#include <vector>

#include "common/log.h"
#include "vmm/guest/guest_image.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm/dirty_tracker.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/kvm/kvm_state.h"
#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/kvm/linux_entry.h"
#include "vmm/kvm/long_mode.h"
#include "vmm/kvm/platform_io.h"
#include "vmm/kvm/tsc_state.h"
#include "vmm/kvm/virtio_disks.h"
#include "vmm/kvm/vcpu_cpuid.h"
#include "vmm/uffd/missing_pages.h"
#include "vmm/x86/linux_loader.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint64_t kTssGpa = 0xfffbd000;  // three pages KVM needs for real-mode emulation on Intel

class KvmMachine final : public Machine, private VcpuExitHandler {
 public:
  explicit KvmMachine(const MachineConfig& config) : config_(config) {}
  ~KvmMachine() override { stop_threads(); }

  Status init();

  std::string_view backend_name() const override { return "kvm"; }
  TrackingMode tracking_mode() const override { return tracker_->mode(); }
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
  std::vector<uint64_t> harvest_disk_blocks(size_t index) override {
    return disks_ ? disks_->harvest_written_blocks(index) : std::vector<uint64_t>{};
  }
  Result<std::vector<StateBlob>> save_state() override;
  Status load_state(const std::vector<StateBlob>& state) override;
  std::vector<std::pair<uint64_t, uint64_t>> memory_written_by_load() const override { return written_by_load_; }
  Status vcpu_error() const override {
    std::lock_guard lock(control_.mutex);
    return control_.error;
  }
  MachineStats stats() const override { return MachineStats{tracker_->ring_full_exits()}; }
  GuestStop guest_stop() const override {
    std::lock_guard lock(control_.mutex);
    return guest_stop_;
  }
  bool has_console() const override { return platform_ != nullptr; }
  void set_console_sink(ConsoleSink* sink) override {
    if (platform_) platform_->set_console_sink(sink);
  }
  size_t console_input(std::span<const uint8_t> bytes) override {
    return platform_ ? platform_->console_input(bytes) : 0;
  }

 private:
  // VcpuExitHandler, on vCPU threads.
  bool on_io(kvm_run& run) override;
  bool on_mmio(kvm_run& run) override;
  bool on_shutdown(unsigned vcpu, const std::string& where) override;
  void stop_guest(GuestStopReason reason, const std::string& detail);
  Status load_linux_guest();

  Status create_vm();
  Status add_slots();
  Status create_vcpu(unsigned index, size_t run_size, const CpuidEntries& supported);
  Status require_paused(const char* what) const;
  std::vector<int> vcpu_fds() const {
    std::vector<int> fds;
    for (const auto& vcpu : vcpus_) fds.push_back(vcpu->fd());
    return fds;
  }
  void stop_threads();

  MachineConfig config_;
  std::unique_ptr<KvmSystem> kvm_;
  UniqueFd vm_;
  std::unique_ptr<GuestMemory> memory_;
  std::shared_ptr<MissingPages> missing_;  // lazy_memory only
  std::unique_ptr<DirtyTracker> tracker_;
  // Reused by every harvest: a fresh bitmap (32 KiB per GiB of guest) costs page faults inside the pause.
  DirtyBitmap harvested_;
  mutable VcpuControl control_;
  GuestStop guest_stop_;  // guarded by control_.mutex
  std::unique_ptr<PlatformIo> platform_;  // a Linux guest's devices; none for the built-in guest
  std::unique_ptr<VirtioDisks> disks_;    // a Linux guest's disks, if it has any; they use memory_
  std::vector<std::pair<uint64_t, uint64_t>> written_by_load_;  // memory_written_by_load()
  CpuidEntries host_cpuid_;               // what KVM supports, for checking a saved guest's CPUID
  std::vector<std::unique_ptr<KvmVcpu>> vcpus_;
  bool started_ = false;
  bool paused_ = true;  // not running guest code: before start, or after pause()
};

Status KvmMachine::init() {
  if (config_.vcpus == 0 || config_.vcpus > guest::kMaxVcpus) {
    return invalid_argument("vCPU count " + std::to_string(config_.vcpus) + " out of range 1.." +
                            std::to_string(guest::kMaxVcpus));
  }
  CKPT_ASSIGN_OR_RETURN(kvm_, KvmSystem::open());
  CKPT_ASSIGN_OR_RETURN(memory_, GuestMemory::create(config_.memory_bytes));
  if (config_.lazy_memory) {
    CKPT_ASSIGN_OR_RETURN(missing_, MissingPages::create(*memory_));
  }
  CKPT_RETURN_IF_ERROR(create_vm());
  // Capabilities that must precede vCPUs (dirty ring) are enabled here, before the slots and the vCPUs exist.
  CKPT_ASSIGN_OR_RETURN(tracker_, make_dirty_tracker(config_.tracking, vm_.get(), *memory_,
                                                     config_.dirty_ring_entries, config_.vcpus));
  CKPT_RETURN_IF_ERROR(add_slots());
  CKPT_RETURN_IF_ERROR(tracker_->on_vm_ready(vm_.get()));
  CKPT_ASSIGN_OR_RETURN(int run_size, kvm_->vcpu_mmap_size());
  CKPT_ASSIGN_OR_RETURN(host_cpuid_, host_supported_cpuid(*kvm_));
  if (config_.guest == GuestKind::kLinux) {
    platform_ = std::make_unique<PlatformIo>(
        vm_.get(), [this](const std::string& how) { stop_guest(GuestStopReason::kReset, how); },
        [this](const std::string& how) { stop_guest(GuestStopReason::kPowerOff, how); });
    if (!config_.disks.empty()) {
      CKPT_ASSIGN_OR_RETURN(disks_, VirtioDisks::create(config_.disks, *memory_, vm_.get()));
    }
  } else if (!config_.disks.empty()) {
    return invalid_argument("disks need a Linux guest (the built-in guest has no driver for them)");
  }
  install_kick_signal();
  for (unsigned i = 0; i < config_.vcpus; ++i) {
    CKPT_RETURN_IF_ERROR(create_vcpu(i, static_cast<size_t>(run_size), host_cpuid_));
  }
  CKPT_LOG(kInfo) << "kvm machine: " << (config_.memory_bytes >> 20) << " MiB, " << config_.vcpus
                  << " vCPUs, tracking " << tracking_mode_name(tracker_->mode());
  return Status::ok();
}

Status KvmMachine::create_vm() {
  CKPT_ASSIGN_OR_RETURN(int vm, KVM_CALL_VALUE(kvm_->fd(), KVM_CREATE_VM, 0));
  vm_.reset(vm);
  if (config_.memory_bytes <= kTssGpa) CKPT_RETURN_IF_ERROR(KVM_CALL_VALUE(vm, KVM_SET_TSS_ADDR, kTssGpa).status());
  CKPT_RETURN_IF_ERROR(KVM_CALL_VALUE(vm, KVM_CREATE_IRQCHIP, 0).status());
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 answered in the kernel: Linux reads it to calibrate the TSC
  return KVM_CALL(vm, KVM_CREATE_PIT2, &pit).status();
}

Status KvmMachine::add_slots() {
  for (const MemorySlot& slot : memory_->slots()) {
    kvm_userspace_memory_region region{};
    region.slot = slot.id;
    region.flags = KVM_MEM_LOG_DIRTY_PAGES;
    region.guest_phys_addr = slot.gpa;
    region.memory_size = slot.bytes;
    region.userspace_addr = reinterpret_cast<uint64_t>(slot.host);
    Status s = KVM_CALL(vm_.get(), KVM_SET_USER_MEMORY_REGION, &region).status();
    if (!s.is_ok()) return s.with_context("slot " + std::to_string(slot.id));
  }
  return Status::ok();
}

Status KvmMachine::create_vcpu(unsigned index, size_t run_size, const CpuidEntries& supported) {
  CKPT_ASSIGN_OR_RETURN(int fd, KVM_CALL_VALUE(vm_.get(), KVM_CREATE_VCPU, index));
  UniqueFd vcpu_fd(fd);
  CKPT_ASSIGN_OR_RETURN(CpuidEntries cpuid, guest_cpuid(*kvm_, supported, index, config_.vcpus));
  CKPT_RETURN_IF_ERROR(set_vcpu_cpuid(fd, cpuid));
  void* run = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) return Status::from_errno(errno, "mmap kvm_run of vCPU " + std::to_string(index));
  CKPT_RETURN_IF_ERROR(tracker_->on_vcpu_created(index, fd));
  vcpus_.push_back(std::make_unique<KvmVcpu>(index, std::move(vcpu_fd), static_cast<kvm_run*>(run), run_size,
                                             *tracker_, control_, static_cast<VcpuExitHandler&>(*this)));
  return Status::ok();
}

Status KvmMachine::load_guest() {
  if (started_) return invalid_argument("load_guest after start");
  if (config_.guest == GuestKind::kLinux) return load_linux_guest();
  const WorkloadConfig& w = config_.workload;
  std::vector<guest::WorkloadControl> controls = guest::split_regions(
      config_.memory_bytes, config_.vcpus, w.kind, w.seed, w.writes_per_iteration, w.hot_pages, w.delay_loops,
      w.max_iterations);
  std::vector<uint8_t> low(guest::kWorkloadGpa, 0);
  CKPT_RETURN_IF_ERROR(guest::build_guest_image(low, config_.memory_bytes, controls));
  CKPT_RETURN_IF_ERROR(memory_->write(0, low));
  for (const auto& vcpu : vcpus_) CKPT_RETURN_IF_ERROR(enter_long_mode(vcpu->fd(), vcpu->index()));
  return Status::ok();
}

// The kernel, initrd and boot structures go straight into guest memory: nothing has been captured yet, and the base
// epoch takes every page that holds data.
Status KvmMachine::load_linux_guest() {
  x86::LinuxImage image{config_.linux_guest.kernel, config_.linux_guest.initrd, config_.linux_guest.cmdline};
  std::vector<x86::VirtioMmioDevice> devices;
  if (disks_) devices = disks_->mmio_devices();
  CKPT_ASSIGN_OR_RETURN(x86::LinuxEntry entry, x86::load_linux(image, host_memory(), config_.vcpus, devices));
  CKPT_RETURN_IF_ERROR(enter_linux(vcpus_.front()->fd(), entry));
  for (const auto& vcpu : vcpus_) CKPT_RETURN_IF_ERROR(wire_local_interrupts(vcpu->fd()));
  return Status::ok();
}

bool KvmMachine::on_io(kvm_run& run) {
  if (!platform_) return false;
  platform_->handle_io(run);
  return true;
}

bool KvmMachine::on_mmio(kvm_run& run) {
  if (!platform_) return false;
  if (disks_ && disks_->handle_mmio(run)) return true;
  platform_->handle_mmio(run);
  return true;
}

// The built-in guest never faults: a triple fault there is a VMM bug and fails the vCPU. A Linux guest triple-faults
// to reboot (reboot=t, and so after panic=-1): that is the guest's own doing.
bool KvmMachine::on_shutdown(unsigned vcpu, const std::string& where) {
  if (!platform_) return false;
  stop_guest(GuestStopReason::kTripleFault, "vCPU " + std::to_string(vcpu) + where);
  return true;
}

void KvmMachine::stop_guest(GuestStopReason reason, const std::string& detail) {
  {
    std::lock_guard lock(control_.mutex);
    if (guest_stop_.reason == GuestStopReason::kNone) {
      guest_stop_ = GuestStop{reason, detail};
      CKPT_LOG(kWarn) << "the guest stopped: " << guest_stop_reason_name(reason) << " (" << detail << ")";
    }
    control_.guest_stopped = true;
  }
  control_.cv.notify_all();
  for (const auto& vcpu : vcpus_) vcpu->kick();
}

Status KvmMachine::start() {
  if (started_) return invalid_argument("machine already started");
  started_ = true;
  for (const auto& vcpu : vcpus_) vcpu->start_thread();
  return resume();
}

Status KvmMachine::pause(std::chrono::milliseconds timeout) {
  std::unique_lock lock(control_.mutex);
  control_.run = false;
  if (!started_) return Status::ok();
  for (const auto& vcpu : vcpus_) vcpu->kick();
  bool all = control_.cv.wait_for(lock, timeout, [&] { return control_.parked == vcpus_.size(); });
  if (!all) {
    return Status(StatusCode::kAborted, std::to_string(vcpus_.size() - control_.parked) + " of " +
                                            std::to_string(vcpus_.size()) + " vCPUs did not stop within " +
                                            std::to_string(timeout.count()) + " ms");
  }
  paused_ = true;
  if (!control_.error.is_ok()) return control_.error;
  lock.unlock();
  // The vCPUs are parked, so no new request reaches a disk; those under way finish now (VirtioBlk::pause).
  if (disks_) CKPT_RETURN_IF_ERROR(disks_->pause(timeout));
  return Status::ok();
}

Status KvmMachine::resume() {
  if (!started_) return invalid_argument("resume before start");
  {
    std::lock_guard lock(control_.mutex);
    if (!control_.error.is_ok()) return control_.error;
    control_.run = true;
    paused_ = false;
  }
  if (disks_) disks_->resume();  // before the vCPUs: requests queued meanwhile are served
  control_.cv.notify_all();
  return Status::ok();
}

Status KvmMachine::require_paused(const char* what) const {
  if (!paused_) return invalid_argument(std::string(what) + " needs a paused machine");
  return Status::ok();
}

Result<std::vector<uint64_t>> KvmMachine::harvest_dirty() {
  CKPT_RETURN_IF_ERROR(require_paused("harvest"));
  if (harvested_.pages() != memory_->pages()) harvested_ = DirtyBitmap(memory_->pages());
  harvested_.clear();
  CKPT_RETURN_IF_ERROR(tracker_->harvest(harvested_));
  memory_->take_vmm_dirty(harvested_);
  return harvested_.to_gfns();
}

Status KvmMachine::rearm() {
  CKPT_RETURN_IF_ERROR(require_paused("rearm"));
  return tracker_->rearm();
}

Result<std::vector<StateBlob>> KvmMachine::save_state() {
  CKPT_RETURN_IF_ERROR(require_paused("save_state"));
  std::vector<StateBlob> state;
  CKPT_RETURN_IF_ERROR(save_vm_state(vm_.get(), state));
  for (const auto& vcpu : vcpus_) {
    CKPT_RETURN_IF_ERROR(save_vcpu_cpuid(vcpu->fd(), vcpu->index(), state));
    CKPT_RETURN_IF_ERROR(save_vcpu_state(*kvm_, vcpu->fd(), vcpu->index(), state));
  }
  CKPT_RETURN_IF_ERROR(save_tsc_pairing(vm_.get(), vcpu_fds(), state));
  if (disks_) {
    CKPT_RETURN_IF_ERROR(disks_->irq_error());
    disks_->save_state(state);
  }
  if (platform_) {
    CKPT_RETURN_IF_ERROR(platform_->irq_error());
    platform_->save_state(state);
    std::string_view kind = guest_kind_name(GuestKind::kLinux);
    state.push_back(StateBlob{kGuestKindStateBlob, std::vector<uint8_t>(kind.begin(), kind.end())});
  }
  return state;
}

Status KvmMachine::load_state(const std::vector<StateBlob>& state) {
  if (started_) return invalid_argument("load_state after start");
  bool linux_state = false;
  for (const StateBlob& blob : state) linux_state |= blob.name == kGuestKindStateBlob;
  if (linux_state != (platform_ != nullptr)) {
    return invalid_argument(std::string("the saved state is a ") + (linux_state ? "Linux" : "built-in") +
                            " guest's, this machine was made for a " + (platform_ ? "Linux" : "built-in") + " one");
  }
  CKPT_RETURN_IF_ERROR(load_vm_state(vm_.get(), state));
  for (const auto& vcpu : vcpus_) {
    // CPUID first: KVM checks MSRs and XSAVE against the vCPU's features.
    CKPT_RETURN_IF_ERROR(load_vcpu_cpuid(vcpu->fd(), vcpu->index(), state, host_cpuid_));
    CKPT_RETURN_IF_ERROR(load_vcpu_state(vcpu->fd(), vcpu->index(), state));
  }
  CKPT_RETURN_IF_ERROR(load_tsc_pairing(vm_.get(), vcpu_fds(), state));  // after kvmclock and IA32_TSC
  written_by_load_ = kvm::memory_written_by_load(state);
  if (platform_) CKPT_RETURN_IF_ERROR(platform_->load_state(state));
  if (disks_) {
    CKPT_RETURN_IF_ERROR(disks_->load_state(state));
  } else if (find_state_blob(state, "virtio/blk0")) {
    return invalid_argument("the saved state has disks, this machine has none");
  }
  return Status::ok();
}

void KvmMachine::stop_threads() {
  {
    std::lock_guard lock(control_.mutex);
    control_.stop = true;
    control_.run = false;
  }
  control_.cv.notify_all();
  for (const auto& vcpu : vcpus_) vcpu->kick();
  for (const auto& vcpu : vcpus_) vcpu->join();
}

}  // namespace

Result<std::unique_ptr<Machine>> create_kvm_machine(const MachineConfig& config) {
  auto machine = std::make_unique<KvmMachine>(config);
  CKPT_RETURN_IF_ERROR(machine->init());
  return std::unique_ptr<Machine>(std::move(machine));
}

}  // namespace ckpt::vmm::kvm
