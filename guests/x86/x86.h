/* x86 guest layer: shared between the CPL0 kernel (kernel.c, boot.S) and the CPL3 platform
 * code (platform.c). Every page is user-accessible, so CPL3 code reads these globals directly. */
#ifndef GUESTS_X86_H
#define GUESTS_X86_H

#include <stdint.h>

#define COM1 0x3f8
#define COM1_IRQ 4
#define DEBUG_EXIT_PORT 0xf4
#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1
#define PIC_EOI 0x20
#define IRQ_BASE_VECTOR 0x20

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x20
#define SEL_UCODE 0x28
#define SEL_TSS 0x30

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* Console input ring: filled by the IRQ4 handler (CPL0), drained by plat_console_getc (CPL3).
 * When the ring is full the handler leaves the rest in the UART's FIFO and turns the UART's
 * receive interrupt off (x86_rx_stopped); plat_console_getc turns it back on once the ring is
 * half empty. Input is never dropped: the UART holds what the ring cannot, and the host holds
 * what the UART cannot. */
#define RX_RING_SIZE 1024
extern volatile uint8_t x86_rx_ring[RX_RING_SIZE];
extern volatile uint32_t x86_rx_head, x86_rx_tail;
extern volatile uint32_t x86_rx_stopped;

extern volatile uint32_t x86_irq_count;   /* every interrupt */
extern volatile uint32_t x86_timer_ticks; /* IRQ0 */
extern volatile int32_t x86_blk_irq;      /* the virtio-mmio line, -1 if none */
extern int x86_ring0;                     /* the workload runs at CPL0 ("ring0" token) */
extern const char *x86_boot_cmdline;      /* Multiboot command line (physical = virtual) */

/* Writes the 8259 mask registers from a 16-bit mask (bit n = IRQ n masked). */
void x86_pic_set_mask(uint16_t mask);
extern volatile uint16_t x86_pic_mask;

/* Entered once the kernel is set up, at CPL3 (iretq) or CPL0 ("ring0"), interrupts enabled. */
__attribute__((noreturn)) void x86_workload_entry(void);

#endif
