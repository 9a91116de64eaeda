#include "daemon/vm_builder.h"

#include "common/log.h"
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

  vmm::MachineConfig machine_config = config.machine;
  uint64_t memory_bytes = meta.header.guest_pages * 4096;
  if (memory_bytes != machine_config.memory_bytes) {
    CKPT_LOG(kWarn) << "epoch " << epoch << " holds a " << (memory_bytes >> 20) << " MiB guest; memory-mib says "
                    << (machine_config.memory_bytes >> 20) << " MiB: using the epoch's size";
    machine_config.memory_bytes = memory_bytes;
  }
  CKPT_ASSIGN_OR_RETURN(auto machine, vmm::create_machine(machine_config, config.backend));
  snap::RestoreOptions options;
  options.memory_is_zeroed = true;  // a new machine's memory is all holes
  auto restored = snap::restore_to_memory(fs, catalog, epoch, machine->host_memory(), options);
  if (!restored.is_ok()) return restored.status().with_context(what);
  std::vector<vmm::StateBlob> state;
  for (const snap::StateBlob& blob : meta.states) state.push_back({blob.name, blob.data});
  Status loaded = machine->load_state(state);
  if (!loaded.is_ok()) return loaded.with_context(what);
  return machine;
}

}  // namespace ckpt::daemon
