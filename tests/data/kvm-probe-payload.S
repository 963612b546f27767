/*
 * The test guest that vsh.kvm.host runs under KVM to decide whether KVM can
 * run an ordinary 64-bit guest.  It is a 64 KiB firmware image for QEMU's
 * `pc` machine (-bios): the CPU starts in real mode at the reset vector and
 * walks the same road an ordinary x86-64 OS walks, printing one progress byte
 * to isa-debugcon (port 0xe9) after each step:
 *
 *   '1' reset vector reached (real mode, code in ROM)
 *   '2' code copied to RAM at 0x7000 and running there
 *   '3' 32-bit protected mode (flat segments from a GDT)
 *   '4' PAE page tables built, EFER.LME set through rdmsr/wrmsr
 *   '5' paging on (long mode, compatibility submode)
 *   '6' 64-bit mode
 *   '7' an exception (int3) delivered through a 64-bit IDT
 *   '8' back from the handler through iretq
 *   '9' RAM written and read back through the page tables
 *   '*' then writes 0x2a, computed with 64-bit shifts, to isa-debug-exit
 *       (port 0xf4): QEMU exits with status (0x2a << 1) | 1 = 85.
 *
 * vsh embeds the assembled bytes (vsh/kvm/host/kvmprobe.py, PAYLOAD_HEX);
 * tests/unit/test_host.py re-assembles this file with GNU as and compares.
 * Build: as --32 -o p.o kvm-probe-payload.S && objcopy -O binary -j .text p.o p.bin
 */
        .code16
        .org 0
start:
        cli
        movb    $'1', %al
        outb    %al, $0xe9
        xorw    %ax, %ax
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7000, %sp
        movw    %cs, %ax
        movw    %ax, %ds
        movw    $body, %si
        movw    $0x7000, %di
        movw    $(body_end - body), %cx
        cld
        rep movsb
        ljmp    $0, $0x7000

body:
        .set    B, body - 0x7000        /* link offset: label - B = RAM address */
        xorw    %ax, %ax
        movw    %ax, %ds
        movb    $'2', %al
        outb    %al, $0xe9
        lgdtl   gdtr - B
        movl    %cr0, %eax
        orl     $1, %eax                /* CR0.PE */
        movl    %eax, %cr0
        ljmpl   $0x18, $(pm32 - B)

        .code32
pm32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movb    $'3', %al
        outb    %al, $0xe9
        movl    $0x1000, %edi           /* PML4 0x1000, PDPT 0x2000, PD 0x3000 */
        xorl    %eax, %eax
        movl    $0x0c00, %ecx
        rep stosl
        movl    $0x2003, 0x1000
        movl    $0x3003, 0x2000
        movl    $0x0083, 0x3000         /* one 2 MiB identity page, present+rw */
        movl    %cr4, %eax
        orl     $0x20, %eax             /* CR4.PAE */
        movl    %eax, %cr4
        movl    $0x1000, %eax
        movl    %eax, %cr3
        movl    $0xc0000080, %ecx       /* EFER */
        rdmsr
        orl     $0x100, %eax            /* EFER.LME */
        wrmsr
        movb    $'4', %al
        outb    %al, $0xe9
        movl    %cr0, %eax
        orl     $0x80000000, %eax       /* CR0.PG */
        movl    %eax, %cr0
        movb    $'5', %al
        outb    %al, $0xe9
        ljmpl   $0x08, $(long64 - B)

        .code64
long64:
        movb    $'6', %al
        outb    %al, $0xe9
        movq    $0x9000, %rsp
        leaq    handler - B, %rax       /* IDT at 0x4000, vector 3 */
        movq    $0x4000, %rdi
        movw    %ax, 48(%rdi)
        movw    $0x08, 50(%rdi)
        movw    $0x8e00, 52(%rdi)       /* present, DPL 0, 64-bit interrupt gate */
        shrq    $16, %rax
        movw    %ax, 54(%rdi)
        shrq    $16, %rax
        movl    %eax, 56(%rdi)
        movl    $0, 60(%rdi)
        lidtq   idtr - B
        int3
        movb    $'8', %al
        outb    %al, $0xe9
        movq    $0x100000, %rdi
        movq    $0x1234567890, %rax
        movq    %rax, (%rdi)
        cmpq    (%rdi), %rax
        jne     1f
        movb    $'9', %al
        outb    %al, $0xe9
        movq    $0x2a, %rax
        shlq    $32, %rax
        shrq    $32, %rax               /* 0x2a only if the shifts were 64-bit */
        outb    %al, $0xe9
        outb    %al, $0xf4
1:      hlt
        jmp     1b
handler:
        movb    $'7', %al
        outb    %al, $0xe9
        iretq

        .balign 8
gdt:    .quad   0
        .quad   0x00209a0000000000      /* 0x08: 64-bit code */
        .quad   0x00cf92000000ffff      /* 0x10: flat data */
        .quad   0x00cf9a000000ffff      /* 0x18: flat 32-bit code */
idtr:   .word   255
        .quad   0x4000
gdtr:   .word   31
        .long   gdt - B
body_end:

        .code16
        .org    0xfff0
        ljmp    $0xf000, $start
        .org    0x10000
