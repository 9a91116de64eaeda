// The ACPI fixed hardware the platform implements, in one place for both sides: the FADT and DSDT that tell the
// guest about it (vmm/x86/acpi.h) and the device model that answers the ports (vmm/kvm/platform_io.h). Register
// layouts are the ACPI 6.5 spec's, chapter 4.8.
#pragma once

#include <cstdint>

namespace ckpt::vmm::x86::acpi_hw {

// The PM1a register blocks in I/O space. No PM1b blocks, no PM2, no PM timer, no GPE blocks.
constexpr uint16_t kPm1EventPort = 0x600;    // PM1a_EVT_BLK: PM1_STS (2 bytes), then PM1_EN (2 bytes)
constexpr uint8_t kPm1EventBytes = 4;
constexpr uint16_t kPm1StatusPort = kPm1EventPort;
constexpr uint16_t kPm1EnablePort = kPm1EventPort + kPm1EventBytes / 2;
constexpr uint16_t kPm1ControlPort = 0x604;  // PM1a_CNT_BLK: PM1_CNT
constexpr uint8_t kPm1ControlBytes = 2;
static_assert(kPm1EventPort + kPm1EventBytes == kPm1ControlPort, "one contiguous block, 0x600..0x605");

// PM1_CNT bits (4.8.3.2.1).
constexpr uint16_t kSciEn = 1u << 0;   // the hardware is in ACPI mode: always, there is no SMI to switch it
constexpr uint16_t kBmRld = 1u << 1;   // read/write, no effect here
constexpr uint16_t kGblRls = 1u << 2;  // write-only
constexpr unsigned kSlpTypShift = 10;
constexpr uint16_t kSlpTypMask = 7u << kSlpTypShift;
constexpr uint16_t kSlpEn = 1u << 13;  // write-only: enter the sleep state in SLP_TYP

// The SLP_TYP value \_S5 (soft off) names in the DSDT, and the device powers off on. Any value would do; 5 reads
// as what it means. There is no \_S1..\_S4, so the guest never asks for another sleeping state.
constexpr uint8_t kS5SleepType = 5;

// The System Control Interrupt: ISA IRQ 9 (the usual choice; no ISA device here uses it), level, active high.
// Nothing raises it yet: PM1_STS is always zero and there are no GPEs.
constexpr uint8_t kSciIrq = 9;

// The FADT's RESET_REG: the PCI reset control register, a byte at 0xcf9, which the platform already treats as a
// reset when bit 2 (RST_CPU) is written; 0x06 is SYS_RST | RST_CPU, what Linux writes there itself.
constexpr uint16_t kResetPort = 0xcf9;
constexpr uint8_t kResetValue = 0x06;

}  // namespace ckpt::vmm::x86::acpi_hw
