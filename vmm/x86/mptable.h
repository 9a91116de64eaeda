// An Intel MultiProcessor Specification 1.4 table, so that Linux finds every vCPU and the IOAPIC without ACPI.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"

namespace ckpt::vmm::x86 {

constexpr unsigned kMaxMpVcpus = 32;
constexpr uint32_t kIoapicAddress = 0xfec00000;  // KVM's in-kernel IOAPIC
constexpr uint32_t kLapicAddress = 0xfee00000;
constexpr unsigned kIsaIrqs = 16;

// Writes, in the EBDA at kEbdaGpa: the floating pointer ("_MP_") and right after it the configuration table
// ("PCMP") with one processor per vCPU (APIC id = index, vCPU 0 the BSP), one ISA bus, the IOAPIC (id = vcpus),
// ISA IRQs 0..15 on IOAPIC pins 0..15 (KVM's default GSI routing), ExtINT on LINT0 and NMI on LINT1. Points the
// BIOS data area's EBDA segment (0x40e) at it. `memory` must reach 1 MiB.
Status write_mptable(std::span<uint8_t> memory, unsigned vcpus);

}  // namespace ckpt::vmm::x86
