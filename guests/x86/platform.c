/* x86 platform API for the workload. Runs at CPL3 (default) or CPL0 ("ring0"): port I/O and
 * MMIO go straight to the devices (the TSS I/O bitmap allows every port); the only trap into the
 * kernel is `int3`, "wait for an interrupt" (see x86_bp_wait in boot.S). */
#include "../common/rt.h"
#include "x86.h"

#define PIT_HZ 1193182u

static char cmdline[CMDLINE_MAX];
static int cmdline_truncated;

const char *plat_arch_name(void) { return "x86"; }
const char *plat_cmdline(void) { return cmdline; }
int plat_cmdline_truncated(void) { return cmdline_truncated; }
const char *plat_time_name(void) { return "tsc"; }

/* Turns the UART's FIFOs on (trigger level 1), so that a host feeding the UART only as fast as
 * the guest reads (Lockstep) delivers 16 bytes at a time and putc polls LSR once per 16 bytes.
 * Input typed before this waits in the holding register, and QEMU clears it when the FIFOs are
 * enabled (Lockstep keeps it) and refills it as soon as it is read: so every byte waiting goes
 * into the ring first, until none has come for 100 us; if the ring fills, the FIFOs stay off. */
static void console_fifo_on(void) {
    uint64_t quiet_since = 0;
    int took = 0;
    for (;;) {
        if (inb(COM1 + 5) & 1) {
            if (x86_rx_head - x86_rx_tail >= RX_RING_SIZE) return;
            x86_rx_ring[x86_rx_head % RX_RING_SIZE] = inb(COM1);
            x86_rx_head++;
            took = 1;
            quiet_since = plat_time_read();
        } else if (!took || plat_time_read() - quiet_since > 100000) { /* TSC ticks: ~100 us */
            break;
        }
    }
    outb(COM1 + 2, 0x01);
}

void x86_workload_entry(void) {
    /* Copy the command line out of the Multiboot area. */
    const char *src = x86_boot_cmdline;
    size_t i = 0;
    for (; src[i] && i < CMDLINE_MAX - 1; i++) cmdline[i] = src[i];
    cmdline[i] = 0;
    cmdline_truncated = src[i] != 0;
    /* COM1: no interrupts yet, FIFOs on (see console_fifo_on), 8N1, DTR|RTS|OUT2. */
    outb(COM1 + 1, 0x00);
    console_fifo_on();
    outb(COM1 + 3, 0x03);
    outb(COM1 + 4, 0x0b);
    runtime_main();
}

/* Bytes the transmit FIFO still takes before LSR must be polled again: once LSR.THRE is seen,
 * the 16-byte FIFO is empty (the FIFOs are on), so one poll covers 16 bytes. */
static unsigned tx_room;

void plat_console_putc(int c) {
    if (tx_room == 0) {
        while (!(inb(COM1 + 5) & 0x20)) {
        }
        tx_room = 16;
    }
    tx_room--;
    outb(COM1, (uint8_t)c);
}

void plat_console_input_enable(void) {
    outb(COM1 + 1, 0x01); /* IER: received data available */
    x86_pic_set_mask(x86_pic_mask & (uint16_t)~(1u << COM1_IRQ));
}

int plat_console_getc(void) {
    uint32_t tail = x86_rx_tail;
    if (tail == x86_rx_head) return -1;
    int c = x86_rx_ring[tail % RX_RING_SIZE];
    plat_barrier();
    x86_rx_tail = tail + 1;
    /* The handler stopped the UART's receive interrupt on a full ring: resume it once the ring is
     * half empty. (Racing the handler is harmless: at worst it stops the interrupt again.) */
    if (x86_rx_stopped && x86_rx_head - (tail + 1) <= RX_RING_SIZE / 2) {
        x86_rx_stopped = 0;
        outb(COM1 + 1, 0x01);
    }
    return c;
}

uint64_t plat_time_read(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

int plat_timer_start(uint32_t hz) {
    if (hz == 0) return -1;
    uint32_t divisor = (PIT_HZ + hz / 2) / hz;
    if (divisor < 2 || divisor > 65535) return -1;
    outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
    outb(0x40, (uint8_t)divisor);
    outb(0x40, (uint8_t)(divisor >> 8));
    x86_pic_set_mask(x86_pic_mask & (uint16_t)~1u);
    return 0;
}

void plat_timer_stop(void) { x86_pic_set_mask(x86_pic_mask | 1u); }

uint32_t plat_timer_ticks(void) { return x86_timer_ticks; }
uint32_t plat_irq_count(void) { return x86_irq_count; }

void plat_wait_irq(uint32_t seen) {
    if (x86_ring0) {
        __asm__ volatile("cli" ::: "memory");
        if (x86_irq_count != seen) {
            __asm__ volatile("sti" ::: "memory");
            return;
        }
        __asm__ volatile("sti; hlt" ::: "memory");
        return;
    }
    __asm__ volatile("int3" ::"a"(seen) : "memory");
}

uint32_t plat_mmio_read32(uintptr_t addr) { return *(volatile uint32_t *)addr; }
void plat_mmio_write32(uintptr_t addr, uint32_t value) { *(volatile uint32_t *)addr = value; }
uint8_t plat_mmio_read8(uintptr_t addr) { return *(volatile uint8_t *)addr; }

int plat_irq_attach_block(uint32_t irq) {
    if (irq > 15 || irq == 0 || irq == 2 || irq == COM1_IRQ) return -1;
    x86_blk_irq = (int32_t)irq;
    uint16_t mask = x86_pic_mask & (uint16_t)~(1u << irq);
    if (irq >= 8) mask &= (uint16_t)~(1u << 2);
    x86_pic_set_mask(mask);
    return 0;
}

void plat_exit(int status) {
    outl(DEBUG_EXIT_PORT, (uint32_t)status);
    /* Still running: there is no isa-debug-exit device. Say so, mask everything and idle. */
    x86_pic_set_mask(0xffff);
    con_printf("exit status %d\n", status);
    for (;;) plat_wait_irq(plat_irq_count());
}
