// The virtual machine as the daemon sees it, whatever runs it: a KVM VM (vmm/kvm/) or the software backend.
// Life cycle: create -> load_guest (or fill memory + load_state) -> start -> { pause -> harvest -> rearm ->
// save_state -> resume }* -> destroy (the destructor). State capture and harvesting are allowed only while paused.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::vmm {

class MissingPages;

enum class TrackingMode {
  kAuto,       // the best the host offers: dirty ring, else clear-log, else dirty-log (KVM); uffd-wp (software)
  kDirtyRing,  // KVM dirty ring per vCPU (ACQ_REL when offered)
  kClearLog,   // KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG (manual protect)
  kDirtyLog,   // KVM_GET_DIRTY_LOG alone
  kUffdWp,     // software backend: userfaultfd write-protect + PAGEMAP_SCAN
  kConservative,  // software backend fallback, chosen explicitly: every page counts as dirty at every harvest
};
std::string_view tracking_mode_name(TrackingMode mode);
bool parse_tracking_mode(std::string_view text, TrackingMode* out);
// "random-writer", "hot-set", "sweep", "idle"
std::string_view workload_kind_name(guest::WorkloadKind kind);
bool parse_workload_kind(std::string_view text, guest::WorkloadKind* out);

struct WorkloadConfig {
  guest::WorkloadKind kind = guest::WorkloadKind::kRandomWriter;
  uint64_t seed = 1;
  uint64_t writes_per_iteration = 64;
  uint64_t hot_pages = 256;     // hot-set only
  uint64_t delay_loops = 1000;  // pause instructions between iterations
  uint64_t max_iterations = 0;  // 0 = forever
};

// What runs in the VM: the built-in workload loops (vmm/guest/), or a Linux kernel booted through the x86 64-bit
// boot protocol (KVM backend only; docs/guest.md).
enum class GuestKind { kBuiltin, kLinux };
std::string_view guest_kind_name(GuestKind kind);  // "builtin", "linux"
bool parse_guest_kind(std::string_view text, GuestKind* out);

// The state blob that marks a Linux guest's epochs (its data: the guest kind's name); the built-in guest's epochs,
// and every epoch written before Linux guests existed, have none.
inline constexpr const char* kGuestKindStateBlob = "guest/kind";

struct LinuxGuestConfig {
  std::string kernel;   // bzImage (or an uncompressed x86-64 ELF vmlinux)
  std::string initrd;   // empty: none
  std::string cmdline;  // the kernel command line
};

// A Linux guest's disk: virtio-blk over virtio-mmio (docs/vmm.md, "Disks"). Disk i is the guest's virtio-mmio
// device i (vda, vdb, ... in order). The machine serves the image file at `path` as it is: the daemon hands it a
// working image, never the file the user named.
struct DiskConfig {
  std::string path;
  bool read_only = false;
  std::string serial;  // what the guest reads as its serial number (20 bytes); empty: the file's name
};

struct MachineConfig {
  GuestKind guest = GuestKind::kBuiltin;
  LinuxGuestConfig linux_guest;  // guest == kLinux only
  std::vector<DiskConfig> disks;  // guest == kLinux only (KVM backend)
  uint64_t memory_bytes = 256ull << 20;
  unsigned vcpus = 1;
  TrackingMode tracking = TrackingMode::kAuto;
  WorkloadConfig workload;
  uint32_t dirty_ring_entries = 4096;  // per vCPU; a power of two; the kernel's minimum is 256 (one page)
  // A lazy restore's machine: guest memory starts out missing, every first access to a page waits until
  // missing_pages() installs it (vmm/uffd/missing_pages.h). Only for a machine that load_state() fills, never
  // load_guest().
  bool lazy_memory = false;
};

// One named piece of machine state ("kvm/vcpu0/regs"), opaque outside the backend that produced it.
struct StateBlob {
  std::string name;
  std::vector<uint8_t> data;
};

// The blob called `name` in `state`, or nullptr.
inline const StateBlob* find_state_blob(const std::vector<StateBlob>& state, std::string_view name) {
  for (const StateBlob& b : state) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

// Receives what the guest writes to its serial console. Called on vCPU threads, possibly several at once; must not
// block for long (the writing vCPU waits).
class ConsoleSink {
 public:
  virtual ~ConsoleSink() = default;
  virtual void console_output(std::span<const uint8_t> bytes) = 0;
};

// Why a guest stopped running (on its own, or because its memory could not be brought back): the daemon takes no
// further epochs from it, and a restore brings back a running guest.
enum class GuestStopReason {
  kNone,           // running (or never started)
  kTripleFault,    // KVM_EXIT_SHUTDOWN: a triple fault; also how Linux reboots with reboot=t (e.g. after panic=-1)
  kReset,          // the guest asked for a reset (i8042 pulse on port 0x64, or port 0xcf9, also ACPI's reset register)
  kPowerOff,       // the guest powered off: ACPI soft off (S5), as Linux's poweroff does
  kRestoreFailed,  // a lazy restore met a block it could not read or check: the guest must not run on (the daemon
                   // sets this one, not the machine)
};
// "running", "triple-fault", "reset", "poweroff", "restore-failed"
std::string_view guest_stop_reason_name(GuestStopReason reason);

struct GuestStop {
  GuestStopReason reason = GuestStopReason::kNone;
  std::string detail;  // where it happened (vCPU, registers), for status and logs
};

// Counters for status and tests.
struct MachineStats {
  uint64_t ring_full_exits = 0;  // KVM_EXIT_DIRTY_RING_FULL handled (dirty ring only)
};

class Machine {
 public:
  virtual ~Machine() = default;  // stops and joins every vCPU thread

  virtual std::string_view backend_name() const = 0;  // "kvm" or "software"
  virtual TrackingMode tracking_mode() const = 0;     // the mode in use (kAuto resolved)
  virtual const MachineConfig& config() const = 0;

  // Guest memory, [0, memory_bytes). Writes through write_memory() are marked dirty, as the VMM's own writes must
  // be; host_memory() is for bulk loading before start (restore) and for reading while paused.
  virtual std::span<uint8_t> host_memory() = 0;
  // The memfd behind host_memory(), for bulk loading before start: pwrite into it allocates a page without the page
  // fault a store through the mapping costs (10x faster on a fresh memfd here, bench/restore_bench.cpp).
  virtual int memory_fd() const = 0;
  virtual Status write_memory(uint64_t gpa, std::span<const uint8_t> bytes) = 0;

  // Writes the built-in guest (page tables, code, control blocks) and sets every vCPU at its entry point.
  virtual Status load_guest() = 0;
  virtual Status start() = 0;
  // Every vCPU out of guest mode and parked; fails naming the vCPU if one does not stop within `timeout`.
  virtual Status pause(std::chrono::milliseconds timeout) = 0;
  virtual Status resume() = 0;
  // Paused only. The guest frame numbers written since the last harvest, ascending, each once. Destructive: a
  // second harvest without guest execution in between returns nothing (VMM writes aside).
  virtual Result<std::vector<uint64_t>> harvest_dirty() = 0;
  // The gfn ranges (first, count) that may hold data; every page outside them reads as zero because nothing ever
  // touched it. Lets a full snapshot skip reading (and faulting in) untouched memory.
  virtual Result<std::vector<std::pair<uint64_t, uint64_t>>> data_ranges() const = 0;
  // Paused only. Re-protects what harvest_dirty reported so that new writes are logged again. Must follow
  // every harvest before the guest resumes.
  virtual Status rearm() = 0;
  // Disks (config().disks, in order). pause() also quiesces them: every request a disk took from its queue has
  // completed (the data in the image, the guest's memory and interrupt updated) before pause returns, and none is
  // taken until resume; so memory, device state and images agree while paused.
  // Paused only: the 4 KiB blocks of disk `index` written since the last harvest, ascending, each once.
  virtual std::vector<uint64_t> harvest_disk_blocks(size_t index) { (void)index; return {}; }
  // Paused only. The vCPU and VM state, in the backend's documented order.
  virtual Result<std::vector<StateBlob>> save_state() = 0;
  // Before start: makes this machine continue where save_state's machine was (memory is loaded separately).
  virtual Status load_state(const std::vector<StateBlob>& state) = 0;
  // The guest memory (gpa, bytes) the backend itself wrote while load_state ran, beyond the loaded memory: on KVM,
  // the kvmclock wall clock that setting its MSR makes KVM rewrite with the host's time (QEMU's restores do too).
  virtual std::vector<std::pair<uint64_t, uint64_t>> memory_written_by_load() const { return {}; }
  // The first error a vCPU thread hit (a failed KVM_RUN, an unexpected exit); ok while all is well.
  virtual Status vcpu_error() const = 0;
  // Whether the guest stopped on its own (triple fault, reset request); its vCPUs are then parked for good.
  virtual GuestStop guest_stop() const { return {}; }
  // With MachineConfig::lazy_memory: what installs the missing pages (kept usable after the machine is gone).
  virtual std::shared_ptr<MissingPages> missing_pages() const { return nullptr; }

  // The guest's serial console (COM1), where it has one (a Linux guest). The sink gets every byte the guest sends
  // from then on; nullptr detaches. Any thread; the sink must outlive the machine or be detached first.
  virtual bool has_console() const { return false; }
  virtual void set_console_sink(ConsoleSink* sink) { (void)sink; }
  // Queues bytes typed at the console for the guest to read; returns how many were accepted (the queue is bounded;
  // the rest should be offered again later). Any thread.
  virtual size_t console_input(std::span<const uint8_t> bytes) { (void)bytes; return 0; }
  virtual MachineStats stats() const = 0;
};

}  // namespace ckpt::vmm
