// The built-in guests: one x86-64 long-mode program that runs the workload named by its control block
// (vmm/guest/guest_abi.h is the contract, docs/workloads.md the prose, vmm/guest/workload.cpp the C++ twin).
//
// The bytes between ckpt_guest_code_start and ckpt_guest_code_end are copied to guest physical kCodeGpa, so they
// must be self-contained: only relative jumps between local labels and register-relative memory operands, no
// absolute addresses, no calls, no stack. `objdump -dr` on the object shows no relocations in this section.
// The section is read-only data rather than text: the host never executes it in place (tests copy it first).
//
// Registers. At entry: RDI = control block address, RSI = status slot address (identity-mapped GPAs).
//   R15  control block address (read-only parameters are reloaded from it on every use)
//   RBX  status slot address
//   R12  completed iterations                 = WorkloadCpuState::iterations
//   R13  xorshift64 state                     = WorkloadCpuState::prng
//   R14  sweep position                       = WorkloadCpuState::sweep_position
//   RBP  writes done in the current iteration = WorkloadCpuState::writes_done_in_iteration
//   RCX  `pause` loops left in the post-iteration delay
//   RAX, RDX  scratch (dead at .Lwrite)
// The loop keeps its whole state in registers and never writes memory other than workload pages and its status
// slot, so saving and restoring the vCPU's registers resumes it exactly, even mid-iteration or mid-delay.
// At .Lwrite (top of the write loop) R12/R13/R14/RBP are exactly the C++ model's WorkloadCpuState.

        .equ CTL_KIND, 0                  // u32 WorkloadKind
        .equ CTL_VCPU_INDEX, 4            // u32
        .equ CTL_SEED, 8
        .equ CTL_REGION_GPA, 16
        .equ CTL_REGION_PAGES, 24
        .equ CTL_WRITES_PER_ITERATION, 32
        .equ CTL_HOT_PAGES, 40
        .equ CTL_DELAY_LOOPS, 48
        .equ CTL_MAX_ITERATIONS, 56

        .equ KIND_RANDOM_WRITER, 1
        .equ KIND_HOT_SET, 2
        .equ KIND_SWEEP, 3
        .equ PAGE_SHIFT, 12

        .section .rodata.ckpt_guest_code, "a", @progbits
        .balign 16
        .globl ckpt_guest_code_start
        .globl ckpt_guest_code_end
        .globl ckpt_guest_entry
        .code64

ckpt_guest_code_start:
ckpt_guest_entry:
        mov     %rdi, %r15
        mov     %rsi, %rbx
        xor     %r12d, %r12d
        xor     %r14d, %r14d
        xor     %ebp, %ebp
        xor     %ecx, %ecx

        // R13 = (seed ^ ((vcpu_index + 1) * kSeedMix)) | 1; the | 1 keeps xorshift64 away from its fixed point 0.
        mov     CTL_VCPU_INDEX(%r15), %eax          // zero-extends to RAX
        inc     %rax
        movabs  $0x9E3779B97F4A7C15, %rdx
        imul    %rdx, %rax
        xor     CTL_SEED(%r15), %rax
        or      $1, %rax
        mov     %rax, %r13

        // An idle, unknown or malformed workload halts before writing anything (a zero divisor would #DE).
        cmpq    $0, CTL_REGION_PAGES(%r15)
        je      .Lhalt
        cmpq    $0, CTL_WRITES_PER_ITERATION(%r15)
        je      .Lhalt
        mov     CTL_KIND(%r15), %eax
        cmp     $KIND_RANDOM_WRITER, %eax
        je      .Lwrite
        cmp     $KIND_SWEEP, %eax
        je      .Lwrite
        cmp     $KIND_HOT_SET, %eax
        jne     .Lhalt
        mov     CTL_HOT_PAGES(%r15), %rax
        test    %rax, %rax
        je      .Lhalt
        cmp     CTL_REGION_PAGES(%r15), %rax
        ja      .Lhalt

// One page write per pass: choose the page index into RDX, then store the iteration being worked on (R12 + 1).
.Lwrite:
        cmpl    $KIND_SWEEP, CTL_KIND(%r15)
        je      .Lsweep

        // xorshift64 (13, 7, 17) on R13; the new state is the random value.
        mov     %r13, %rax
        shl     $13, %rax
        xor     %rax, %r13
        mov     %r13, %rax
        shr     $7, %rax
        xor     %rax, %r13
        mov     %r13, %rax
        shl     $17, %rax
        xor     %rax, %r13

        mov     %r13, %rax
        mov     CTL_REGION_PAGES(%r15), %rcx
        cmpl    $KIND_HOT_SET, CTL_KIND(%r15)
        jne     .Lmodulo                            // random writer: page = r % region_pages
        shr     $4, %rax                            // hot set: page = (r >> 4) % (hot or region pages)
        test    $15, %r13b
        je      .Lmodulo                            // 1 in 16: anywhere in the region
        mov     CTL_HOT_PAGES(%r15), %rcx           // 15 in 16: in the hot set
.Lmodulo:
        xor     %edx, %edx
        div     %rcx                                // RDX = RAX % RCX
        jmp     .Lstore

.Lsweep:
        mov     %r14, %rdx                          // page = R14; R14 = (R14 + 1) % region_pages
        inc     %r14
        cmp     CTL_REGION_PAGES(%r15), %r14
        jb      .Lstore
        xor     %r14d, %r14d

.Lstore:
        shl     $PAGE_SHIFT, %rdx
        add     CTL_REGION_GPA(%r15), %rdx
        lea     1(%r12), %rax
        mov     %rax, (%rdx)                        // u64 iteration number at offset 0 of the page
        inc     %rbp
        cmp     CTL_WRITES_PER_ITERATION(%r15), %rbp
        jb      .Lwrite

        // Iteration complete. The status slot is written only after every write of the iteration, so a paused
        // guest's pages all hold values <= status + 1.
        inc     %r12
        mov     %r12, (%rbx)
        xor     %ebp, %ebp

        mov     CTL_DELAY_LOOPS(%r15), %rcx
.Ldelay:
        test    %rcx, %rcx
        je      .Ldelay_done
        pause
        dec     %rcx
        jmp     .Ldelay
.Ldelay_done:

        mov     CTL_MAX_ITERATIONS(%r15), %rax
        test    %rax, %rax
        je      .Lwrite                             // 0: run forever
        cmp     %rax, %r12
        jb      .Lwrite

// Halt forever: a wakeup (NMI, SMI, a VMM that re-enters after KVM_EXIT_HLT) lands on the jmp and halts again.
.Lhalt:
        hlt
        jmp     .Lhalt

ckpt_guest_code_end:

        .section .note.GNU-stack, "", @progbits
