/* PA-RISC guest kernel and platform API. Everything runs at PL0 in real mode (physical =
 * virtual), on qemu-system-hppa's B160L machine and on Lockstep's emulator.
 *
 * Devices:
 *   LASI 16550 UART at 0xffd05800 (byte registers): polled output; input by interrupt through the
 *     LASI interrupt controller at 0xffd00000 (IMR bit 5 = UART; IAR = IO_EIR address + EIRR bit),
 *     which writes the bit number to the CPU's IO_EIR register at 0xfffb0000.
 *   Interval timer: CR16 counter (250 MHz) and comparator; EIRR/EIEM bit 0.
 *   HALT word 0xfffdead0 stops the machine.
 *   Lockstep only, when announced on the command line: a virtio-mmio block device
 *     (virtio_mmio.device=SIZE@ADDR:BIT, BIT = its EIRR bit) and a debug-exit register
 *     (lockstep.debugexit=ADDR: a 32-bit store of v exits with status (v << 1) | 1). */
#include "../common/rt.h"

#define LASI_HPA 0xffd00000u
#define LASI_IMR (LASI_HPA + 0x04)
#define LASI_IAR (LASI_HPA + 0x10)
#define LASI_IRQ_UART 5
#define UART_BASE 0xffd05800u
#define IO_EIR 0xfffb0000u /* CPU_HPA: a 32-bit store of n sets EIRR bit n */
#define CR16_HZ 250000000u

/* EIRR/EIEM bits, numbered from the most significant bit as PA-RISC does. */
#define EIRR_BIT(n) (0x80000000u >> (n))
#define EIRR_TIMER 0
#define EIRR_UART 2

#define PSW_N 0x00200000u

#define mtctl(v, cr) __asm__ volatile("mtctl %0, %%cr" #cr ::"r"(v) : "memory")
#define mfctl(cr)                                                         \
    ({                                                                    \
        uint32_t v_;                                                      \
        __asm__ volatile("mfctl %%cr" #cr ", %0" : "=r"(v_)::"memory");   \
        v_;                                                               \
    })
#define ssm(imm) __asm__ volatile("ssm " #imm ", %%r0" ::: "memory")
#define rsm(imm) __asm__ volatile("rsm " #imm ", %%r0" ::: "memory")

struct parisc_frame {
    uint32_t gr[32], sar, iasq[2], iaoq[2], ipsw, iir, isr, ior;
};

extern char parisc_ivt[], parisc_wait_start[], parisc_wait_diag[], parisc_wait_end[];
__attribute__((noreturn)) void parisc_halt(void);

volatile uint32_t parisc_irq_count; /* read by plat_wait_irq in entry.S */
static volatile uint32_t timer_ticks;
static uint32_t timer_period, timer_next;
static uint32_t eiem;
static int blk_eirr_bit = -1;
static uintptr_t debugexit_addr;

/* Console input ring, filled by the UART interrupt and drained by plat_console_getc. When it is
 * full the rest stays in the UART's FIFO with the receive interrupt off (rx_stopped) until
 * plat_console_getc has emptied half of it: input is never dropped. */
#define RX_RING_SIZE 1024
static volatile uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head, rx_tail, rx_stopped;

static char cmdline[CMDLINE_MAX];
static int cmdline_truncated;

static inline uint8_t uart_read(unsigned reg) { return *(volatile uint8_t *)(UART_BASE + reg); }
static inline void uart_write(unsigned reg, uint8_t v) { *(volatile uint8_t *)(UART_BASE + reg) = v; }
static inline void write32(uintptr_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }

const char *plat_arch_name(void) { return "parisc"; }
const char *plat_cmdline(void) { return cmdline; }
int plat_cmdline_truncated(void) { return cmdline_truncated; }
const char *plat_time_name(void) { return "cr16"; }

/* ---- console ---- */
/* Bytes the transmit FIFO still takes before LSR must be polled again: once LSR.THRE is seen,
 * the 16-byte FIFO is empty (the FIFOs are on), so one poll covers 16 bytes. */
static unsigned tx_room;

void plat_console_putc(int c) {
    if (tx_room == 0) {
        while (!(uart_read(5) & 0x20)) {
        }
        tx_room = 16;
    }
    tx_room--;
    uart_write(0, (uint8_t)c);
}

void plat_console_input_enable(void) {
    write32(LASI_IAR, IO_EIR + EIRR_UART);
    write32(LASI_IMR, 1u << LASI_IRQ_UART);
    rsm(1);
    eiem |= EIRR_BIT(EIRR_UART);
    mtctl(eiem, 15);
    ssm(1);
    uart_write(1, 0x01); /* IER: received data available */
}

int plat_console_getc(void) {
    uint32_t tail = rx_tail;
    if (tail == rx_head) return -1;
    int c = rx_ring[tail % RX_RING_SIZE];
    plat_barrier();
    rx_tail = tail + 1;
    /* Resume the receive interrupt the handler stopped on a full ring, once it is half empty. */
    if (rx_stopped && rx_head - (tail + 1) <= RX_RING_SIZE / 2) {
        rx_stopped = 0;
        uart_write(1, 0x01);
    }
    return c;
}

/* Drains the UART's FIFO into the ring; on a full ring, leaves the rest in the FIFO and turns
 * the receive interrupt off. */
static void uart_receive(void) {
    while (uart_read(5) & 1) {
        uint32_t head = rx_head;
        if (head - rx_tail >= RX_RING_SIZE) {
            rx_stopped = 1;
            uart_write(1, 0x00); /* IER: no receive interrupt until the ring has room */
            return;
        }
        rx_ring[head % RX_RING_SIZE] = uart_read(0);
        rx_head = head + 1;
    }
}

/* ---- time and timer ---- */
static uint32_t time_high, time_last;

uint64_t plat_time_read(void) {
    uint32_t now = mfctl(16);
    if (now < time_last) time_high++;
    time_last = now;
    return (uint64_t)time_high << 32 | now;
}

/* Arms the comparator for the next tick; if that moment is already (nearly) past, skips ahead so
 * the comparator is never set behind the counter (QEMU would wait for the 2^32 wrap). */
static void timer_arm(void) {
    uint32_t now = mfctl(16);
    if ((int32_t)(timer_next - now) < 2000) timer_next = now + timer_period;
    mtctl(timer_next, 16);
}

int plat_timer_start(uint32_t hz) {
    if (hz == 0 || hz > CR16_HZ / 10000) return -1;
    rsm(1);
    timer_period = CR16_HZ / hz;
    timer_next = mfctl(16) + timer_period;
    timer_arm();
    eiem |= EIRR_BIT(EIRR_TIMER);
    mtctl(eiem, 15);
    ssm(1);
    return 0;
}

void plat_timer_stop(void) {
    rsm(1);
    eiem &= ~EIRR_BIT(EIRR_TIMER);
    mtctl(eiem, 15);
    mtctl(EIRR_BIT(EIRR_TIMER), 23);
    ssm(1);
}

uint32_t plat_timer_ticks(void) { return timer_ticks; }
uint32_t plat_irq_count(void) { return parisc_irq_count; }

/* ---- MMIO (virtio registers are little-endian) ---- */
static inline uint32_t swap32(uint32_t v) {
    return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}
uint32_t plat_mmio_read32(uintptr_t addr) { return swap32(*(volatile uint32_t *)addr); }
void plat_mmio_write32(uintptr_t addr, uint32_t value) { *(volatile uint32_t *)addr = swap32(value); }
uint8_t plat_mmio_read8(uintptr_t addr) { return *(volatile uint8_t *)addr; }

int plat_irq_attach_block(uint32_t bit) {
    if (bit == 0 || bit > 31 || bit == EIRR_TIMER || bit == EIRR_UART) return -1;
    blk_eirr_bit = (int)bit;
    rsm(1);
    eiem |= EIRR_BIT(bit);
    mtctl(eiem, 15);
    ssm(1);
    return 0;
}

/* ---- exit ---- */
void plat_exit(int status) {
    if (status != 0) {
        if (debugexit_addr) write32(debugexit_addr, (uint32_t)status);
        con_printf("exit status %d\n", status);
    }
    parisc_halt();
}

/* ---- interruptions ---- */
static const char *trap_name(int n) {
    switch (n) {
    case 1: return "HPMC";
    case 3: return "recovery counter";
    case 4: return "external interrupt";
    case 6: return "ITLB miss";
    case 8: return "illegal instruction";
    case 9: return "break";
    case 10: return "privileged operation";
    case 11: return "privileged register";
    case 12: return "overflow";
    case 13: return "conditional";
    case 15: return "DTLB miss";
    case 18: return "data memory protection";
    case 28: return "unaligned data reference";
    default: return "other";
    }
}

void parisc_trap(int n, struct parisc_frame *f);
void parisc_trap(int n, struct parisc_frame *f) {
    if (n != 4) {
        con_printf("trap n=%d (%s) iaoq=0x%08x,0x%08x iir=0x%08x isr=0x%08x ior=0x%08x ipsw=0x%08x\n", n,
                   trap_name(n), f->iaoq[0], f->iaoq[1], f->iir, f->isr, f->ior, f->ipsw);
        plat_exit(EXIT_TRAP + (n & 31));
    }
    uint32_t eirr = mfctl(23);
    mtctl(eirr, 23); /* write-one-to-clear, before draining the sources */
    if (eirr & EIRR_BIT(EIRR_TIMER)) {
        timer_ticks++;
        timer_next += timer_period;
        timer_arm();
    }
    if (eirr & EIRR_BIT(EIRR_UART)) uart_receive();
    if (blk_eirr_bit >= 0 && (eirr & EIRR_BIT(blk_eirr_bit))) virtio_blk_interrupt();
    parisc_irq_count++;
    /* Interrupted inside the idle window: resume after the diag instead. */
    uint32_t pc = f->iaoq[0] & ~3u;
    if (pc >= (uintptr_t)parisc_wait_start && pc <= (uintptr_t)parisc_wait_diag) {
        f->iaoq[0] = (uintptr_t)parisc_wait_end;
        f->iaoq[1] = (uintptr_t)parisc_wait_end + 4;
        f->ipsw &= ~PSW_N;
    }
}

/* Turns the UART's FIFOs on (trigger level 1), so that a host feeding the UART only as fast as
 * the guest reads (Lockstep) delivers 16 bytes at a time and putc polls LSR once per 16 bytes.
 * Input typed before this waits in the holding register, and QEMU clears it when the FIFOs are
 * enabled (Lockstep keeps it) and refills it as soon as it is read: so every byte waiting goes
 * into the ring first, until none has come for 100 us; if the ring fills, the FIFOs stay off. */
static void console_fifo_on(void) {
    uint64_t quiet_since = 0;
    int took = 0;
    for (;;) {
        if (uart_read(5) & 1) {
            if (rx_head - rx_tail >= RX_RING_SIZE) return;
            rx_ring[rx_head % RX_RING_SIZE] = uart_read(0);
            rx_head++;
            took = 1;
            quiet_since = plat_time_read();
        } else if (!took || plat_time_read() - quiet_since > CR16_HZ / 10000) {
            break;
        }
    }
    uart_write(2, 0x01);
}

/* ---- boot ---- */
__attribute__((noreturn)) void parisc_main(const char *boot_cmdline);
void parisc_main(const char *boot_cmdline) {
    size_t i = 0;
    if (boot_cmdline)
        for (; boot_cmdline[i] && i < CMDLINE_MAX - 1; i++) cmdline[i] = boot_cmdline[i];
    cmdline[i] = 0;
    cmdline_truncated = boot_cmdline && boot_cmdline[i] != 0;

    size_t len;
    const char *v = cmdline_value(cmdline, "lockstep.debugexit", 0, &len);
    uint64_t addr;
    if (v && parse_u64(v, len, &addr) == 0 && addr && addr <= 0xfffffffcu && (addr & 3) == 0)
        debugexit_addr = (uintptr_t)addr;

    uart_write(1, 0x00); /* IER: no interrupts yet */
    console_fifo_on();
    uart_write(3, 0x03); /* 8N1 */
    uart_write(4, 0x0b); /* DTR | RTS | OUT2 */

    mtctl(parisc_ivt, 14); /* IVA */
    eiem = 0;
    mtctl(eiem, 15);
    mtctl(0xffffffffu, 23); /* drop anything the firmware left pending */
    ssm(1);                 /* PSW.I: sources are enabled one by one through EIEM */

    if (v && !debugexit_addr) {
        con_puts("error: bad lockstep.debugexit=");
        con_write(v, len);
        con_puts("\n");
        plat_exit(EXIT_USAGE);
    }
    runtime_main();
}
