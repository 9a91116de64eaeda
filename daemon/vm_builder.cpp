#include "daemon/vm_builder.h"

#include <cstring>

#include "common/log.h"
#include "daemon/resume_settings.h"
#include "snapshot/catalog.h"
#include "snapshot/restore.h"
#include "vmm/machine_factory.h"

namespace ckpt::daemon {

Result<std::unique_ptr<vmm::Machine>> create_fresh_machine(const DaemonConfig& config) {
  CKPT_ASSIGN_OR_RETURN(auto machine, vmm::create_machine(config.machine, config.backend));
  CKPT_RETURN_IF_ERROR(machine->load_guest());
  return machine;
}

Result<std::unique_ptr<vmm::Machine>> rebuild_machine(const DaemonConfig& config, snap::FileSystem& fs,
                                                      const std::string& store_dir, uint64_t epoch) {
  std::string what = "rebuild the VM from epoch " + std::to_string(epoch);
  CKPT_ASSIGN_OR_RETURN(snap::Catalog catalog, snap::Catalog::load(fs, store_dir));
  auto chain = catalog.chain(epoch);
  if (!chain.is_ok()) return chain.status().with_context(what);
  const snap::EpochMeta& meta = *chain->front();

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
                    << " vCPUs: using that (memory-mib and vcpus are not set)";
    machine_config.memory_bytes = memory_bytes;
    machine_config.vcpus = vcpus;
  }
  CKPT_ASSIGN_OR_RETURN(auto machine, vmm::create_machine(machine_config, config.backend));
  snap::RestoreOptions options;
  options.memory_is_zeroed = true;  // a new machine's memory is all holes
  auto restored = snap::restore_to_memory(fs, catalog, epoch, machine->host_memory(), options);
  if (!restored.is_ok()) return restored.status().with_context(what);
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
  return machine;
}

}  // namespace ckpt::daemon
