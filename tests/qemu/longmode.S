/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A multiboot "kernel" for test_cpu.py: QEMU's -kernel loader starts it in
 * 32-bit protected mode; it identity-maps the first GiB with 2 MiB pages,
 * enters long mode, loads FS/GS/KERNEL_GS_BASE and every general register
 * with a distinct value and halts with interrupts off, so that the boot
 * vCPU is saved in 64-bit mode (QEMU then writes x86-64 NT_PRSTATUS notes).
 * First, when the guest has a vmcoreinfo device, it publishes a VMCOREINFO
 * ELF note through it (fw_cfg DMA), as a Linux kernel does.
 * Built by the test with: as --32; ld -m elf_i386 -Ttext 0x100000. */
    .text
    .code32
    .globl _start
    .align 4
mb_header:
    .long 0x1BADB002
    .long 0
    .long -0x1BADB002
_start:
    cli
    cld
    /* find "etc/vmcoreinfo" in fw_cfg's file directory (key 0x19); if the
     * guest has a vmcoreinfo device, point it at our note (fw_cfg DMA
     * write of the 16-byte FWCfgVMCoreInfo) */
    mov $0x510, %dx
    mov $0x19, %ax
    out %ax, %dx
    mov $0x511, %dx
    xor %ebx, %ebx
    mov $4, %ecx
3:  shl $8, %ebx
    in %dx, %al
    movzbl %al, %eax
    or %eax, %ebx
    loop 3b
4:  test %ebx, %ebx
    jz 6f
    mov $entry, %edi
    mov $64, %ecx
    rep insb
    mov $entry + 8, %esi
    mov $vmci_name, %edi
    mov $15, %ecx
    repe cmpsb
    je 5f
    dec %ebx
    jmp 4b
5:  movzwl entry + 4, %eax
    xchg %al, %ah
    shl $16, %eax
    or $0x18, %eax          /* select + write */
    bswap %eax
    mov %eax, dma_ctl
    movl $0x10000000, dma_len
    movl $0, dma_addr
    mov $vmci_buf, %eax
    bswap %eax
    mov %eax, dma_addr + 4
    mov $0x514, %dx
    xor %eax, %eax
    out %eax, %dx
    mov $dma_ctl, %eax
    bswap %eax
    mov $0x518, %dx
    out %eax, %dx
6:
    mov $0x200000, %edi
    xor %eax, %eax
    mov $3072, %ecx
    rep stosl
    movl $0x201003, 0x200000
    movl $0x202003, 0x201000
    mov $0x202000, %edi
    mov $0x83, %eax
    mov $512, %ecx
1:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0x200000, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt gdtr
    ljmp $0x08, $long_entry
    .code64
long_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    xor %edx, %edx
    mov $0xC0000100, %ecx
    mov $0x12345000, %eax
    wrmsr
    mov $0xC0000101, %ecx
    mov $0x23456000, %eax
    wrmsr
    mov $0xC0000102, %ecx
    mov $0x34567000, %eax
    wrmsr
    movabs $0x1111111111111111, %rax
    movabs $0x2222222222222222, %rbx
    movabs $0x3333333333333333, %rcx
    movabs $0x4444444444444444, %rdx
    movabs $0x5555555555555555, %rsi
    movabs $0x6666666666666666, %rdi
    movabs $0x7777777777777777, %rbp
    movabs $0x8888888888888888, %r8
    movabs $0x9999999999999999, %r9
    movabs $0xaaaaaaaaaaaaaaaa, %r10
    movabs $0xbbbbbbbbbbbbbbbb, %r11
    movabs $0xcccccccccccccccc, %r12
    movabs $0xdddddddddddddddd, %r13
    movabs $0xeeeeeeeeeeeeeeee, %r14
    movabs $0xffffffff81234567, %r15
    mov $0x3ff000, %rsp
    cmp %rax, %rbx
2:  hlt
    jmp 2b
    .align 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
gdtr:
    .word gdtr - gdt - 1
    .long gdt
    .align 8
dma_ctl:
    .long 0
dma_len:
    .long 0
dma_addr:
    .long 0, 0
vmci_buf:
    .word 0, 1              /* host format, guest format 1: ELF note */
    .long note_end - note
    .long note, 0
vmci_name:
    .asciz "etc/vmcoreinfo"
    .align 4
note:
    .long 11, desc_end - desc, 0
    .asciz "VMCOREINFO"
    .align 4
desc:
    .ascii "OSRELEASE=mrimg-test\nPAGESIZE=4096\nNUMBER(phys_base)=0x1000000\nCRASHTIME=1\n"
desc_end:
    .align 4
note_end:
entry:
    .fill 64, 1, 0
