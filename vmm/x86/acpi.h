// The ACPI tables a Linux guest boots with (ACPI 6.x): RSDP -> XSDT -> FADT (-> FACS, DSDT) and MADT. They tell
// the guest about its CPUs and IOAPIC (as the MP table does for acpi=off), the PM1 registers and reset register of
// the platform (vmm/x86/acpi_hw.h), the \_S5 state that powers it off, and the virtio-mmio devices: Debian's
// kernels find virtio-mmio only through ACPI (device "LNRO0005"), not through the command line or a device tree.
// The FADT is a full one, not hardware-reduced, so that Linux keeps using the PIC, the PIT and the legacy devices
// as it does without ACPI.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "vmm/x86/layout.h"

namespace ckpt::vmm::x86 {

// One virtio-mmio device as the guest sees it: a register window and an edge-triggered, active-high interrupt.
struct VirtioMmioDevice {
  uint64_t base = 0;   // guest-physical, inside [kVirtioMmioGpa, kVirtioMmioEndGpa)
  uint64_t bytes = 0;  // the window's size
  uint32_t gsi = 0;    // an IOAPIC pin in [kVirtioMmioFirstGsi, kIoapicPins)
};

// Device `i` of the layout's numbering (window i, GSI 16 + i), the usual way to fill a device list.
constexpr VirtioMmioDevice virtio_mmio_device(unsigned i) {
  return {virtio_mmio_window(i), kVirtioMmioWindowBytes, virtio_mmio_gsi(i)};
}

// Refuses a list the tables cannot describe: more than kMaxVirtioMmioDevices, an empty window, a window outside
// the virtio-mmio area, a GSI outside 16..23, two devices sharing a window byte or a GSI. Names the device.
Status check_virtio_mmio_devices(std::span<const VirtioMmioDevice> devices);

// Writes every table into [kAcpiRsdpGpa, kAcpiEndGpa) of `memory` (which must reach 1 MiB), zeroing the rest of
// that range, for `vcpus` (1..32) CPUs and `devices` (in DSDT order; _UID is the index). Returns the RSDP's
// guest-physical address, for boot_params.acpi_rsdp_addr.
Result<uint64_t> write_acpi_tables(std::span<uint8_t> memory, unsigned vcpus,
                                   std::span<const VirtioMmioDevice> devices);

}  // namespace ckpt::vmm::x86
