/* x86 guest kernel: Multiboot v1 header, 32-bit entry stub, switch to long mode, static page
 * tables and GDT, exception stubs, the int3 "wait for interrupt" trap, the jump to CPL3.
 *
 * The image is linked as x86-64 at 1 MiB and converted to ELF32 (objcopy -O elf32-i386), as
 * QEMU's -kernel Multiboot loader requires; the loader enters _start in 32-bit protected mode,
 * paging off, EAX = 0x2BADB002, EBX = the Multiboot information (physical address). */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules; bit 1: memory information */

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x20
#define SEL_UCODE 0x28

	.section .multiboot, "a"
	.balign 4
multiboot_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

/* ------------------------------------------------------------------------------------------ */
	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	movl	%eax, x86_boot_magic
	movl	%ebx, x86_boot_info
	lgdt	gdt_desc
	movl	%cr4, %eax
	orl	$0x20, %eax		/* CR4.PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx	/* IA32_EFER */
	rdmsr
	orl	$0x100, %eax		/* EFER.LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* CR0.PG | CR0.PE */
	movl	%eax, %cr0
	ljmp	$SEL_KCODE, $long_mode

	.code64
long_mode:
	movw	$SEL_KDATA, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	xorl	%eax, %eax
	movw	%ax, %fs
	movw	%ax, %gs
	leaq	boot_stack_top(%rip), %rsp
	call	x86_kernel_main
1:	hlt
	jmp	1b

/* x86_enter_user(rip, rsp): iretq to CPL3 with IF set. */
	.globl	x86_enter_user
x86_enter_user:
	pushq	$(SEL_UDATA | 3)
	pushq	%rsi
	pushq	$0x202
	pushq	$(SEL_UCODE | 3)
	pushq	%rdi
	iretq

/* #BP (vector 3, gate DPL 3): the CPL3 workload's only system call, "wait for an interrupt".
 * EAX = the interrupt count the caller has seen. If an interrupt was taken since, return at once;
 * otherwise sti; hlt (the sti shadow makes the pair atomic) and return after the interrupt.
 * Five instructions at CPL0. */
	.globl	x86_bp_wait
x86_bp_wait:
	cmpl	x86_irq_count(%rip), %eax
	jne	1f
	sti
	hlt
1:	iretq

/* Exception stubs: push a zero error code where the CPU pushes none, then the vector. */
	.macro	EXC_NOERR n
	.balign	16
exc_\n:
	pushq	$0
	pushq	$\n
	jmp	exc_common
	.endm
	.macro	EXC_ERR n
	.balign	16
exc_\n:
	pushq	$\n
	jmp	exc_common
	.endm

	.irp	n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
	EXC_NOERR \n
	.endr
	.irp	n, 8,10,11,12,13,14,17,21,29,30
	EXC_ERR \n
	.endr

/* Saves the general registers below the CPU frame and calls x86_exception(frame); no return. */
exc_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	x86_exception
1:	cli
	hlt
	jmp	1b

	.section .rodata
	.balign	8
	.globl	x86_exception_stubs
x86_exception_stubs:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad	exc_\n
	.endr

/* ------------------------------------------------------------------------------------------ */
	.section .data
	.balign	4
	.globl	x86_boot_magic, x86_boot_info
x86_boot_magic:	.long 0
x86_boot_info:	.long 0

/* GDT, STAR-compatible: 0x08 kernel code64, 0x10 kernel data, 0x18 user code32, 0x20 user data,
 * 0x28 user code64, 0x30 the 64-bit TSS (16 bytes, filled in by x86_kernel_main). */
	.balign	16
	.globl	x86_gdt
x86_gdt:
	.quad	0
	.quad	0x00af9a000000ffff
	.quad	0x00cf92000000ffff
	.quad	0x00cffa000000ffff
	.quad	0x00cff2000000ffff
	.quad	0x00affa000000ffff
	.quad	0, 0
gdt_end:
	.balign	8
gdt_desc:
	.word	gdt_end - x86_gdt - 1
	.quad	x86_gdt

/* Identity map of the low 4 GiB with 2 MiB pages, present, writable, user-accessible. Static, so
 * no CPL0 instructions are spent building them. */
	.section .data.pagetables, "aw"
	.balign	4096
pml4:
	.quad	pdpt + 0x7
	.fill	511, 8, 0
pdpt:
	.quad	pd + 0x7
	.quad	pd + 0x1000 + 0x7
	.quad	pd + 0x2000 + 0x7
	.quad	pd + 0x3000 + 0x7
	.fill	508, 8, 0
pd:
	.set	addr, 0
	.rept	2048
	.quad	addr + 0x87		/* P | RW | US | PS */
	.set	addr, addr + 0x200000
	.endr

/* ------------------------------------------------------------------------------------------ */
	.section .bss
	.balign	4096
boot_stack:
	.skip	65536
boot_stack_top:
	.globl	x86_trap_stack_top
	.skip	16384
x86_trap_stack_top:
	.globl	x86_user_stack_top
	.skip	65536
x86_user_stack_top:

	.section .note.GNU-stack, "", @progbits
