/* Entry points of the workload guest, the ELF notes that name them, and the GDT.
 *
 * vs_entry64 (VS_ELFNOTE_ENTRY64, also e_entry): the vmshift monitor starts every vCPU
 * here at once, in long mode with its identity map, RDI = struct hvm_start_info,
 * RSI = vCPU index, RSP = that vCPU's stack.
 * vs_pvh_entry32 (Xen PVH note): QEMU -kernel and `vmshift run --boot pvh` start the
 * single vCPU here in 32-bit protected mode, paging off, EBX = hvm_start_info, no stack;
 * it builds its own long mode and joins vs_entry64. */
#include "boot.h"

#define PTE_PRESENT_RW 0x03
#define PDE_2M         0x83      /* present, writable, page size */
#define CR4_PAE        0x20
#define CR0_PE_PG      0x80000001
#define MSR_EFER       0xc0000080
#define EFER_LME       0x100

/* ---- ELF notes (PT_NOTE, see linker.ld), 4-byte aligned as loaders expect ---- */
    .section .note.vmshift, "a", @note
    .balign 4
    .long 4                             /* namesz: "Xen\0" */
    .long 4                             /* descsz */
    .long VS_NOTE_XEN_PHYS32_ENTRY
    .asciz "Xen"
    .long vs_pvh_entry32

    .long 8                             /* namesz: "vmshift\0" */
    .long 8                             /* descsz */
    .long VS_NOTE_VMSHIFT_ENTRY64
    .asciz "vmshift"
    .quad vs_entry64

/* ---- 32-bit PVH entry ---- */
    .section .text.entry, "ax"
    .code32
    .globl vs_pvh_entry32
vs_pvh_entry32:
    cli
    cld
    /* EBX (start_info) is preserved throughout. In 32-bit mode lgdt reads only the
     * low 32 bits of the base, which is fine: the GDT is below 2 MiB. */
    lgdt    vs_gdt_desc

    /* The page tables live in .pvhbss, which no loader is trusted to have zeroed. */
    mov     $vs_pvh_pml4, %edi
    mov     $((2 + VS_PVH_MAP_GIB) * 4096 / 4), %ecx
    xor     %eax, %eax
    rep stosl

    movl    $(vs_pvh_pdpt + PTE_PRESENT_RW), vs_pvh_pml4

    /* PDPT[i] -> page directory i, one per GiB. */
    mov     $vs_pvh_pdpt, %edi
    mov     $(vs_pvh_pd + PTE_PRESENT_RW), %eax
    mov     $VS_PVH_MAP_GIB, %ecx
1:  mov     %eax, (%edi)
    add     $4096, %eax
    add     $8, %edi
    loop    1b

    /* PD entry n maps the 2 MiB page at n << 21: low dword (n << 21) | flags,
     * high dword n >> 11. */
    mov     $vs_pvh_pd, %edi
    xor     %edx, %edx
2:  mov     %edx, %eax
    shl     $21, %eax
    or      $PDE_2M, %eax
    mov     %eax, (%edi)
    mov     %edx, %eax
    shr     $11, %eax
    mov     %eax, 4(%edi)
    add     $8, %edi
    inc     %edx
    cmp     $(VS_PVH_MAP_GIB * 512), %edx
    jne     2b

    mov     %cr4, %eax
    or      $CR4_PAE, %eax
    mov     %eax, %cr4
    mov     $vs_pvh_pml4, %eax
    mov     %eax, %cr3
    mov     $MSR_EFER, %ecx
    rdmsr
    or      $EFER_LME, %eax
    wrmsr
    mov     %cr0, %eax
    or      $CR0_PE_PG, %eax
    mov     %eax, %cr0
    ljmp    $VS_GDT_CODE64, $pvh_long_mode

    .code64
pvh_long_mode:
    movb    $1, vs_booted_pvh(%rip)
    lea     vs_pvh_stack_top(%rip), %rsp
    mov     %ebx, %edi                  /* zero-extends */
    xor     %esi, %esi                  /* the only vCPU is vCPU 0 */
    jmp     vs_entry64

/* ---- 64-bit entry, common to both boot paths ---- */
    .globl vs_entry64
vs_entry64:
    cli
    cld
    /* Switch to our own GDT so nothing of the monitor's boot memory stays in use. */
    lgdt    vs_gdt_desc(%rip)
    pushq   $VS_GDT_CODE64
    lea     1f(%rip), %rax
    pushq   %rax
    lretq
1:  mov     $VS_GDT_DATA, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    xor     %eax, %eax
    mov     %eax, %fs
    mov     %eax, %gs
    and     $-16, %rsp                  /* SysV alignment at the call */

    /* Only vCPU 0 clears .bss; the others wait in guest_main (on vs_init_state, in
     * .data) until vCPU 0 has set up the shared state, so they never see it cleared
     * under them. */
    test    %esi, %esi
    jnz     2f
    mov     %rdi, %rbx
    lea     __bss_start(%rip), %rdi
    lea     __bss_end(%rip), %rcx
    sub     %rdi, %rcx
    shr     $3, %rcx
    xor     %eax, %eax
    rep stosq
    mov     %rbx, %rdi
    xor     %esi, %esi
2:  call    guest_main
3:  cli
    hlt
    jmp     3b

/* ---- Interrupt and exception entry (guest/irq.c builds the IDT from these) ----
 * One stub per vector, 16 bytes apart from vs_isr_stubs: it pushes a zero where the CPU
 * pushes no error code, then the vector, and joins isr_common. That saves every general
 * register (the guest has no other state: -mgeneral-regs-only), calls vs_irq_dispatch
 * with the frame (struct vs_irq_frame), restores and returns. In 64-bit mode the CPU
 * aligns RSP to 16 before its 5-word frame; 2 + 15 more words keep it aligned for the call. */
    .text
    .balign 16
    .globl vs_isr_stubs
vs_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if vec == 8 || vec == 10 || vec == 11 || vec == 12 || vec == 13 || vec == 14 || vec == 17 || vec == 21 || vec == 29 || vec == 30
    pushq   $vec                        /* the CPU pushed the error code */
    .else
    pushq   $0
    pushq   $vec
    .endif
    jmp     isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push    %rax
    push    %rbx
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    mov     %rsp, %rdi
    cld
    call    vs_irq_dispatch
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rbx
    pop     %rax
    add     $16, %rsp                   /* vector and error code */
    iretq

/* ---- GDT: null, 64-bit code, flat data (accessed bits preset: no writes to it) ---- */
    .section .rodata
    .balign 16
vs_gdt:
    .quad 0
    .quad 0x00af9b000000ffff            /* VS_GDT_CODE64 */
    .quad 0x00cf93000000ffff            /* VS_GDT_DATA */
vs_gdt_end:
vs_gdt_desc:
    .word vs_gdt_end - vs_gdt - 1
    .quad vs_gdt

/* ---- Boot flags in .data: see boot.h ---- */
    .section .data
    .balign 4
    .globl vs_init_state
vs_init_state:
    .long VS_INIT_WAIT
    .globl vs_booted_pvh
vs_booted_pvh:
    .byte 0

/* ---- PVH page tables and vCPU 0's PVH stack, outside the .bss vCPU 0 clears ---- */
    .section .pvhbss, "aw", @nobits
    .balign 4096
vs_pvh_pml4:
    .skip 4096
vs_pvh_pdpt:
    .skip 4096
vs_pvh_pd:
    .skip 4096 * VS_PVH_MAP_GIB
    .skip VS_PVH_STACK_SIZE
vs_pvh_stack_top:

    .section .note.GNU-stack, "", @progbits
