#include "daemon/vm_builder.h"

#include <chrono>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "daemon/resume_settings.h"
#include "snapshot/catalog.h"
#include "snapshot/lazy_source.h"
#include "snapshot/restore.h"
#include "snapshot/working_set.h"
#include "vmm/machine_factory.h"
#include "vmm/x86/linux_loader.h"

namespace ckpt::daemon {

namespace {

// The store's name of a disk: the file name the user gave it (basename), so `ckpt inspect` says which it was.
std::string disk_name(const std::string& path, size_t index) {
  size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty()) name = "disk" + std::to_string(index);
  return name.substr(0, 200) + (name.size() > 200 ? "~" + std::to_string(index) : "");
}

// The store's working-set record goes first, and the blocks this guest reaches for first replace it once all is in
// (snapshot/working_set.h). A record that cannot be read or written costs the prefetch, nothing else: logged.
LazyRestore::Options working_set_options(snap::FileSystem& fs, const std::string& store_dir, uint64_t guest_pages) {
  LazyRestore::Options options;
  auto recorded = snap::load_working_set(fs, store_dir, guest_pages);
  if (recorded.is_ok()) {
    options.prefetch_gfns = std::move(*recorded);
  } else {
    CKPT_LOG(kWarn) << recorded.status().to_string() << "; this restore prefetches nothing";
  }
  options.on_filled = [store_dir, guest_pages](std::vector<uint64_t> working_set) {
    std::unique_ptr<snap::FileSystem> own = snap::make_posix_file_system(snap::WriteEngine::kPwrite);
    Status saved = snap::save_working_set(*own, store_dir, guest_pages, working_set);
    if (!saved.is_ok()) {
      CKPT_LOG(kWarn) << "keep the working-set record: " << saved.to_string();
    }
  };
  return options;
}

// Milliseconds since the last lap.
class Laps {
 public:
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace

std::string BuiltVm::Phases::to_string() const {
  char text[200];
  std::snprintf(text, sizeof text, "%.1f ms: chain %.1f, disks %.1f, memory %.1f, machine %.1f, state %.1f", total(),
                chain, disks, memory, machine, state);
  return text;
}

Result<BuiltVm> create_fresh_machine(const DaemonConfig& config) {
  BuiltVm vm;
  vmm::MachineConfig machine_config = config.machine;
  if (machine_config.guest == vmm::GuestKind::kLinux) {
    // The files first: a wrong kernel is named as such, before the backend (or a missing /dev/kvm) is looked at.
    // A refusal is the user's setting (a missing file, a truncated bzImage: no kernel to boot): a config error, exit
    // 2. Only a failing read (EIO) is the machine's.
    const vmm::LinuxGuestConfig& l = machine_config.linux_guest;
    Status usable =
        vmm::x86::check_linux_image({l.kernel, l.initrd, l.cmdline}, machine_config.memory_bytes, machine_config.vcpus);
    if (!usable.is_ok() && usable.code() != StatusCode::kIoError) return invalid_argument(usable.message());
    CKPT_RETURN_IF_ERROR(usable);
  }
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const DiskSetting& disk = config.disks[i];
    CKPT_RETURN_IF_ERROR(create_working_image(disk.path, config.store_dir, i).status());
    std::string path = working_image_path(config.store_dir, i), name = disk_name(disk.path, i);
    machine_config.disks.push_back(vmm::DiskConfig{path, disk.read_only, name});
    CKPT_ASSIGN_OR_RETURN(OpenDisk open, open_disk(name, path, disk.read_only));
    vm.disks.push_back(std::move(open));
  }
  CKPT_ASSIGN_OR_RETURN(vm.machine, vmm::create_machine(machine_config, config.backend));
  CKPT_RETURN_IF_ERROR(vm.machine->load_guest());
  return vm;
}

Status BuiltVm::publish_disks() {
  for (size_t i = 0; i < pending.size(); ++i) {
    CKPT_RETURN_IF_ERROR(pending[i].publish());
    disks[i].path = pending[i].final_path();
  }
  pending.clear();
  return Status::ok();
}

Result<BuiltVm> rebuild_machine(const DaemonConfig& config, snap::FileSystem& fs, const snap::Catalog& catalog,
                                uint64_t epoch, MemoryRestore memory) {
  std::string what = "rebuild the VM from epoch " + std::to_string(epoch);
  const std::string& store_dir = catalog.dir();
  Laps laps;
  BuiltVm::Phases phases;
  auto chain = catalog.chain(epoch);
  if (!chain.is_ok()) return chain.status().with_context(what);
  const snap::EpochMeta& meta = *chain->front();
  phases.chain = laps.lap();

  // The VM is the store's: its size from the epoch (settings the user gave must agree; defaults give way).
  std::string store = "store " + store_dir + " (epoch " + std::to_string(epoch) + ")";
  vmm::MachineConfig machine_config = config.machine;
  CKPT_ASSIGN_OR_RETURN(machine_config.guest, stored_guest_kind(config, meta.states, store));
  uint64_t memory_bytes = meta.header.guest_pages * vmm::guest::kPageSize;
  unsigned vcpus = vcpus_in_state(meta.states);
  if (vcpus == 0) vcpus = machine_config.vcpus;  // no per-vCPU state: load_state below says what is missing
  CKPT_RETURN_IF_ERROR(check_size_settings(config, memory_bytes, vcpus, store));
  if (memory_bytes != machine_config.memory_bytes || vcpus != machine_config.vcpus) {
    CKPT_LOG(kInfo) << store << " holds a " << (memory_bytes >> 20) << " MiB guest with " << vcpus
                    << " vCPUs: using that (memory-mib and vcpus the user did not set take the store's)";
    machine_config.memory_bytes = memory_bytes;
    machine_config.vcpus = vcpus;
  }
  // The disks: the store's, rebuilt from the chain into new working images.
  if (config.explicit_settings.count("disk") && config.disks.size() != meta.disks.size()) {
    return invalid_argument(config.explicit_settings.at("disk") + ": " + std::to_string(config.disks.size()) +
                            " disks given, but " + store + " holds a guest with " + std::to_string(meta.disks.size()) +
                            " (on resume the disks are the store's; leave disk unset)");
  }
  std::vector<PendingImage> images;
  for (const snap::DiskSpace& disk : meta.disks) {
    size_t index = disk.id - 1;
    auto image = rebuild_working_image(fs, catalog, epoch, disk.id, store_dir, index);
    if (!image.is_ok()) return image.status().with_context(what);
    machine_config.disks.push_back(vmm::DiskConfig{image->path(), disk.read_only, disk.name});
    images.push_back(std::move(*image));
  }
  phases.disks = laps.lap();
  BuiltVm vm;
  std::unique_ptr<snap::LazySource> source;
  if (memory == MemoryRestore::kLazy) {
    auto opened = snap::LazySource::open(fs, catalog, epoch);
    if (opened.is_ok()) {
      source = std::move(*opened);
    } else if (opened.status().code() == StatusCode::kIoError) {  // EMFILE on a very long chain, say
      CKPT_LOG(kWarn) << what << ": a lazy restore cannot hold the chain's files open ("
                      << opened.status().to_string() << "); restoring every page first instead";
    } else {
      return opened.status().with_context(what);
    }
  }
  machine_config.lazy_memory = source != nullptr;
  phases.memory = laps.lap();
  auto created = vmm::create_machine(machine_config, config.backend);
  if (!created.is_ok() && source && (created.status().code() == StatusCode::kPermission ||
                                     created.status().code() == StatusCode::kUnsupported)) {
    CKPT_LOG(kWarn) << what << ": no lazy restore here (" << created.status().to_string()
                    << "); restoring every page first instead";
    source.reset();
    machine_config.lazy_memory = false;
    created = vmm::create_machine(machine_config, config.backend);
  }
  CKPT_RETURN_IF_ERROR(created.status());
  vm.machine = std::move(*created);
  auto& machine = vm.machine;
  if (source) {
    // Serving from here on: whatever reads guest memory below (the workload check, load_state's writes) faults.
    auto lazy = LazyRestore::start(std::move(source), machine->missing_pages(),
                                   working_set_options(fs, store_dir, meta.header.guest_pages));
    if (!lazy.is_ok()) return lazy.status().with_context(what);
    vm.lazy = std::move(*lazy);
    phases.machine = laps.lap();
  } else {
    phases.machine = laps.lap();
    // A new machine's memory is all holes: zero pages need no write, and pwrite fills the rest faster than stores.
    auto restored = snap::restore_to_zeroed_fd(fs, catalog, epoch, machine->memory_fd(), memory_bytes,
                                               "the guest memory of the rebuilt VM");
    if (!restored.is_ok()) return restored.status().with_context(what);
    phases.memory += laps.lap();
  }
  // The workload is what the guest reads from its control blocks, now restored: the store's, whatever the settings
  // say. The machine has not run and nothing has been written, so refusing here changes nothing.
  if (machine_config.guest == vmm::GuestKind::kBuiltin) {
    vmm::guest::WorkloadControl stored{};
    std::memcpy(&stored, machine->host_memory().data() + vmm::guest::kControlGpa, sizeof stored);
    CKPT_RETURN_IF_ERROR(check_workload_settings(config, stored, store));
  }
  std::vector<vmm::StateBlob> state;
  for (const snap::StateBlob& blob : meta.states) state.push_back({blob.name, blob.data});
  Status loaded = machine->load_state(state);
  if (!loaded.is_ok()) return loaded.with_context(what);
  phases.state = laps.lap();
  for (size_t i = 0; i < images.size(); ++i) {
    const snap::DiskSpace& disk = meta.disks[i];
    CKPT_ASSIGN_OR_RETURN(OpenDisk open, open_disk(disk.name, images[i].path(), disk.read_only));
    vm.disks.push_back(std::move(open));
  }
  vm.pending = std::move(images);
  vm.phases = phases;
  CKPT_LOG(kInfo) << what << (vm.lazy ? " (memory served lazily)" : " (every page in)") << " in "
                  << phases.to_string();
  return vm;
}

}  // namespace ckpt::daemon
