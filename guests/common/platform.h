/* The platform API: what each architecture (guests/x86, guests/parisc) provides to the portable
 * runtime and workloads in guests/common. See guests/README.md for the full description. */
#ifndef GUESTS_PLATFORM_H
#define GUESTS_PLATFORM_H

#include <stdint.h>

/* ---- identity ---- */
/* "x86" or "parisc". */
const char *plat_arch_name(void);
/* The boot command line (never NULL; may be empty). Tokens are separated by spaces. */
const char *plat_cmdline(void);
/* The platforms keep at most CMDLINE_MAX - 1 bytes of the boot command line; a longer one sets
 * plat_cmdline_truncated() and the runtime stops with EXIT_USAGE rather than run on a cut one. */
#define CMDLINE_MAX 1024
int plat_cmdline_truncated(void);

/* ---- console (16550 UART: COM1 on x86, LASI UART on PA-RISC) ---- */
/* Writes one byte, polling the UART until it accepts it. No newline translation. */
void plat_console_putc(int c);
/* Enables interrupt-driven input: received bytes go into a ring buffer from the UART interrupt. */
void plat_console_input_enable(void);
/* The next received byte, or -1 if the ring buffer is empty. Never blocks. */
int plat_console_getc(void);

/* ---- time ---- */
/* The free-running cycle counter: the TSC (x86) or CR16 extended to 64 bits in software
 * (PA-RISC; the extension is correct if it is read at least once per 2^32 cycles). */
uint64_t plat_time_read(void);
/* "tsc" or "cr16". */
const char *plat_time_name(void);

/* ---- periodic timer (8254 PIT channel 0 on IRQ0; PA-RISC interval timer, EIRR bit 0) ---- */
/* Starts the timer at `hz` interrupts per second. Returns 0, or -1 if the rate is impossible. */
int plat_timer_start(uint32_t hz);
void plat_timer_stop(void);
/* The number of timer interrupts taken since boot. */
uint32_t plat_timer_ticks(void);

/* ---- interrupts and idling ---- */
/* Incremented by every interrupt the kernel takes (timer, console, disk). */
uint32_t plat_irq_count(void);
/* Idles until an interrupt has been taken after the caller read plat_irq_count() == seen.
 * Returns at once if one already was. Spurious returns are allowed: callers re-check.
 * x86 CPL3: `int3` trap into the kernel (sti; hlt); x86 CPL0: cli; check; sti; hlt.
 * PA-RISC: `diag 0x100` in a restartable window (see guests/parisc/entry.S). */
void plat_wait_irq(uint32_t seen);

/* ---- MMIO and device interrupts (used by the portable virtio-mmio driver) ---- */
/* 32-bit little-endian device register access (byte swap on big-endian PA-RISC). */
uint32_t plat_mmio_read32(uintptr_t addr);
void plat_mmio_write32(uintptr_t addr, uint32_t value);
/* 8-bit device register access (virtio config space). */
uint8_t plat_mmio_read8(uintptr_t addr);
/* Routes the device interrupt `irq` (x86: 8259 line; PA-RISC: EIRR bit number) to
 * virtio_blk_interrupt() and unmasks it. Returns 0, or -1 if `irq` cannot be used. */
int plat_irq_attach_block(uint32_t irq);
/* Orders the CPU's memory accesses against device accesses (a compiler barrier on both
 * architectures here: x86 is TSO, and the PA-RISC machines have no caches or reordering). */
static inline void plat_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- exit ---- */
/* Stops the machine with `status` (0 = success). x86: isa-debug-exit at port 0xf4, so QEMU exits
 * with (status << 1) | 1 and Lockstep with status. PA-RISC: status 0 -> HALT word 0xfffdead0; otherwise the
 * Lockstep debug-exit register if announced, else "exit status N" on the console and HALT. */
__attribute__((noreturn)) void plat_exit(int status);

/* ---- provided by guests/common for the platform layers ---- */
/* The portable entry point: the architecture calls it once the machine is set up (at CPL3 or
 * CPL0 on x86, PL0 on PA-RISC), with interrupts enabled. Never returns. */
__attribute__((noreturn)) void runtime_main(void);
/* The workload (one per guest ELF): returns the exit status. */
int guest_main(void);
/* The virtio-blk interrupt handler: acknowledges the device. Called from the kernel's interrupt
 * path (x86: at CPL0, so it is short). */
void virtio_blk_interrupt(void);

#endif
