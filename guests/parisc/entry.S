/* PA-RISC 1.1 guest kernel: entry, interruption vector table, register save/restore, and the
 * restartable idle window.
 *
 * Entry is as SeaBIOS-hppa calls a -kernel ELF (and as Lockstep's emulator does): a plain C call
 * at PL0 in real mode (PSW system mask Q=1, I=0), r26 = PAGE0->mem_free, r25 = the command line,
 * r2 = return into the firmware. We never return. */

	.section .text.start, "ax", @progbits
	.globl	_start
_start:
	ldil	L%__stack_bottom, %r30		/* the stack grows upwards */
	ldo	R%__stack_bottom+64(%r30), %r30	/* room for the 48-byte frame marker */
	ldil	L%$global$, %r27		/* data is addressed relative to $global$ */
	ldo	R%$global$(%r27), %r27
	copy	%r25, %r26			/* parisc_main(cmdline) */
	bl	parisc_main, %r2
	nop
	.globl	parisc_halt
parisc_halt:
	.word	0xfffdead0			/* QEMU/Lockstep HALT */
1:	b,n	1b

/* parisc_wait_irq(seen), the body of plat_wait_irq: executes `diag 0x100` ("wait for
 * interrupt" in Lockstep; a no-op in QEMU) unless parisc_irq_count != seen. Interrupts stay
 * enabled. If an interrupt is taken anywhere from parisc_wait_start up to and including the diag,
 * the trap handler resumes at parisc_wait_end instead, so a wake-up can never be lost between
 * the check and the diag. */
	.text
	.globl	plat_wait_irq
	.globl	parisc_wait_start, parisc_wait_diag, parisc_wait_end
plat_wait_irq:
parisc_wait_start:
	ldil	L%parisc_irq_count, %r1
	ldw	R%parisc_irq_count(%r1), %r28
	cmpb,<>,n %r28, %r26, parisc_wait_end	/* taken (forward): the diag is nullified */
parisc_wait_diag:
	diag	0x100
parisc_wait_end:
	bv,n	%r0(%r2)

/* ---- Interruption vector table: IVA + 32 * n, 2 KiB aligned ---- */
	.align	2048
	.globl	parisc_ivt
parisc_ivt:
	.macro	VEC n
	mtctl	%r1, %cr24			/* TR0 <- r1 */
	ldi	\n, %r1
	mtctl	%r1, %cr25			/* TR1 <- interruption number */
	b	trap_common
	nop
	nop
	nop
	nop
	.endm
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	VEC	\n
	.endr

/* The frame (struct parisc_frame in kernel.c): gr[32], sar, iasq[2], iaoq[2], ipsw, iir, isr, ior.
 * Interruptions do not nest (the PSW has I = 0 in the handler), so one static frame is enough. */
trap_common:
	ldil	L%parisc_frame, %r1
	ldo	R%parisc_frame(%r1), %r1
	stw	%r2, 8(%r1)
	mfctl	%cr24, %r2
	stw	%r2, 4(%r1)			/* the interrupted r1 */
	stw	%r3, 12(%r1)
	stw	%r4, 16(%r1)
	stw	%r5, 20(%r1)
	stw	%r6, 24(%r1)
	stw	%r7, 28(%r1)
	stw	%r8, 32(%r1)
	stw	%r9, 36(%r1)
	stw	%r10, 40(%r1)
	stw	%r11, 44(%r1)
	stw	%r12, 48(%r1)
	stw	%r13, 52(%r1)
	stw	%r14, 56(%r1)
	stw	%r15, 60(%r1)
	stw	%r16, 64(%r1)
	stw	%r17, 68(%r1)
	stw	%r18, 72(%r1)
	stw	%r19, 76(%r1)
	stw	%r20, 80(%r1)
	stw	%r21, 84(%r1)
	stw	%r22, 88(%r1)
	stw	%r23, 92(%r1)
	stw	%r24, 96(%r1)
	stw	%r25, 100(%r1)
	stw	%r26, 104(%r1)
	stw	%r27, 108(%r1)
	stw	%r28, 112(%r1)
	stw	%r29, 116(%r1)
	stw	%r30, 120(%r1)
	stw	%r31, 124(%r1)
	mfctl	%cr11, %r2			/* SAR */
	stw	%r2, 128(%r1)
	mfctl	%cr17, %r2			/* IIASQ front */
	stw	%r2, 132(%r1)
	mtctl	%r0, %cr17			/* advance the queue */
	mfctl	%cr17, %r2			/* IIASQ back */
	stw	%r2, 136(%r1)
	mfctl	%cr18, %r2			/* IIAOQ front */
	stw	%r2, 140(%r1)
	mtctl	%r0, %cr18
	mfctl	%cr18, %r2			/* IIAOQ back */
	stw	%r2, 144(%r1)
	mfctl	%cr22, %r2			/* IPSW */
	stw	%r2, 148(%r1)
	mfctl	%cr19, %r2			/* IIR */
	stw	%r2, 152(%r1)
	mfctl	%cr20, %r2			/* ISR */
	stw	%r2, 156(%r1)
	mfctl	%cr21, %r2			/* IOR */
	stw	%r2, 160(%r1)
	ldil	L%parisc_istack, %r30		/* C on the interrupt stack */
	ldo	R%parisc_istack+64(%r30), %r30
	ldil	L%$global$, %r27
	ldo	R%$global$(%r27), %r27
	mfctl	%cr25, %r26			/* parisc_trap(n, frame) */
	bl	parisc_trap, %r2
	copy	%r1, %r25
	ldil	L%parisc_frame, %r1
	ldo	R%parisc_frame(%r1), %r1
	ldw	128(%r1), %r2
	mtctl	%r2, %cr11
	ldw	132(%r1), %r2			/* push front, then back */
	mtctl	%r2, %cr17
	ldw	136(%r1), %r2
	mtctl	%r2, %cr17
	ldw	140(%r1), %r2
	mtctl	%r2, %cr18
	ldw	144(%r1), %r2
	mtctl	%r2, %cr18
	ldw	148(%r1), %r2
	mtctl	%r2, %cr22
	ldw	8(%r1), %r2
	ldw	12(%r1), %r3
	ldw	16(%r1), %r4
	ldw	20(%r1), %r5
	ldw	24(%r1), %r6
	ldw	28(%r1), %r7
	ldw	32(%r1), %r8
	ldw	36(%r1), %r9
	ldw	40(%r1), %r10
	ldw	44(%r1), %r11
	ldw	48(%r1), %r12
	ldw	52(%r1), %r13
	ldw	56(%r1), %r14
	ldw	60(%r1), %r15
	ldw	64(%r1), %r16
	ldw	68(%r1), %r17
	ldw	72(%r1), %r18
	ldw	76(%r1), %r19
	ldw	80(%r1), %r20
	ldw	84(%r1), %r21
	ldw	88(%r1), %r22
	ldw	92(%r1), %r23
	ldw	96(%r1), %r24
	ldw	100(%r1), %r25
	ldw	104(%r1), %r26
	ldw	108(%r1), %r27
	ldw	112(%r1), %r28
	ldw	116(%r1), %r29
	ldw	120(%r1), %r30
	ldw	124(%r1), %r31
	ldw	4(%r1), %r1
	rfi
	nop

	.bss
	.align	64
	.globl	parisc_frame
parisc_frame:
	.block	256
	.align	64
	.globl	parisc_istack
parisc_istack:
	.block	16384
