/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A multiboot "kernel" for test_cpu.py: QEMU's -kernel loader starts it in
 * 32-bit protected mode; it identity-maps the first GiB with 2 MiB pages,
 * enters long mode, loads FS/GS/KERNEL_GS_BASE and every general register
 * with a distinct value and halts with interrupts off, so that the boot
 * vCPU is saved in 64-bit mode (QEMU then writes x86-64 NT_PRSTATUS notes).
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
