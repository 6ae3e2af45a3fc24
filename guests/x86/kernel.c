/* x86 guest kernel, CPL0 part: TSS with an all-ports I/O bitmap, IDT, 8259 remap, the interrupt
 * handlers, exception reports, and the jump to the workload at CPL3 (default) or CPL0 ("ring0").
 *
 * On Lockstep's KVM host CPL0 code is interpreted (~650 ns per instruction), so everything here
 * is short: the interrupt handlers are a handful of instructions (GCC `interrupt` functions save
 * only the registers they use), and the workload itself runs natively at CPL3. */
#include <stddef.h>

#include "../common/rt.h"
#include "x86.h"

/* ---- state shared with the CPL3 platform code ---- */
volatile uint8_t x86_rx_ring[RX_RING_SIZE];
volatile uint32_t x86_rx_head, x86_rx_tail;
volatile uint32_t x86_rx_stopped;
volatile uint32_t x86_irq_count;
volatile uint32_t x86_timer_ticks;
volatile int32_t x86_blk_irq = -1;
volatile uint16_t x86_pic_mask = 0xfffb; /* everything masked but the cascade (IRQ2) */
int x86_ring0;
const char *x86_boot_cmdline = "";

/* ---- from boot.S ---- */
extern uint32_t x86_boot_magic, x86_boot_info;
extern uint64_t x86_gdt[];
extern const uint64_t x86_exception_stubs[32];
extern char x86_trap_stack_top[], x86_user_stack_top[];
void x86_bp_wait(void);
__attribute__((noreturn)) void x86_enter_user(uint64_t rip, uint64_t rsp);

/* ---- TSS: RSP0 for traps from CPL3, I/O bitmap allowing every port (KVM honours the bitmap for
 * CPL3 IN/OUT even though it ignores IOPL). ---- */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

static struct {
    struct tss64 tss;
    uint8_t iomap[8192]; /* zero: every port allowed (.bss, zeroed by the ELF loader) */
    uint8_t iomap_end;   /* 0xff terminator */
} __attribute__((packed, aligned(4096))) tss;

struct idt_gate {
    uint16_t offset0, selector;
    uint8_t ist, type;
    uint16_t offset1;
    uint32_t offset2, reserved;
};
static struct idt_gate idt[256] __attribute__((aligned(16)));

static void set_gate(int vector, uint64_t handler, int dpl) {
    struct idt_gate *g = &idt[vector];
    g->offset0 = (uint16_t)handler;
    g->selector = SEL_KCODE;
    g->ist = 0;
    g->type = (uint8_t)(0x8e | dpl << 5); /* present 64-bit interrupt gate (IF cleared on entry) */
    g->offset1 = (uint16_t)(handler >> 16);
    g->offset2 = (uint32_t)(handler >> 32);
    g->reserved = 0;
}

void x86_pic_set_mask(uint16_t mask) {
    x86_pic_mask = mask;
    outb(PIC1_DATA, (uint8_t)mask);
    outb(PIC2_DATA, (uint8_t)(mask >> 8));
}

/* ---- interrupt handlers (vectors 0x20-0x2f) ---- */
struct iframe;

static inline __attribute__((always_inline)) void eoi(int irq) {
    if (irq >= 8) outb(PIC2_CMD, PIC_EOI);
    outb(PIC1_CMD, PIC_EOI);
}

/* IRQ0: the PIT. */
__attribute__((interrupt)) static void irq_timer(struct iframe *f) {
    (void)f;
    x86_timer_ticks++;
    x86_irq_count++;
    eoi(0);
}

/* IRQ4: COM1 receive. Drains the UART's FIFO into the ring, which deasserts the interrupt. If
 * the ring fills first, the rest stays in the FIFO and the receive interrupt is turned off until
 * plat_console_getc has made room: no byte is dropped. */
__attribute__((interrupt)) static void irq_com1(struct iframe *f) {
    (void)f;
    while (inb(COM1 + 5) & 1) {
        uint32_t head = x86_rx_head;
        if (head - x86_rx_tail >= RX_RING_SIZE) {
            x86_rx_stopped = 1;
            outb(COM1 + 1, 0x00); /* IER: no receive interrupt until the ring has room */
            break;
        }
        x86_rx_ring[head % RX_RING_SIZE] = inb(COM1);
        x86_rx_head = head + 1;
    }
    x86_irq_count++;
    eoi(4);
}

/* Any other line: the virtio-mmio block device if it is the announced one, else just counted. */
static inline __attribute__((always_inline)) void irq_other(int irq) {
    if (irq == x86_blk_irq) virtio_blk_interrupt();
    x86_irq_count++;
    eoi(irq);
}
#define IRQ_OTHER(n) \
    __attribute__((interrupt)) static void irq_##n(struct iframe *f) { (void)f; irq_other(n); }
IRQ_OTHER(1) IRQ_OTHER(2) IRQ_OTHER(3) IRQ_OTHER(5) IRQ_OTHER(6) IRQ_OTHER(7) IRQ_OTHER(8)
IRQ_OTHER(9) IRQ_OTHER(10) IRQ_OTHER(11) IRQ_OTHER(12) IRQ_OTHER(13) IRQ_OTHER(14) IRQ_OTHER(15)

static void (*const irq_handlers[16])(struct iframe *) = {
    irq_timer, irq_1, irq_2, irq_3, irq_com1, irq_5, irq_6, irq_7,
    irq_8, irq_9, irq_10, irq_11, irq_12, irq_13, irq_14, irq_15,
};

/* ---- exceptions: report on COM1, exit through isa-debug-exit with 64 + vector ---- */
struct exc_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

__attribute__((noreturn)) void x86_exception(struct exc_frame *f);
void x86_exception(struct exc_frame *f) {
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    con_printf("exception vector=%llu (%s) error=0x%llx rip=0x%llx cs=0x%llx rflags=0x%llx rsp=0x%llx cr2=0x%llx\n",
               (unsigned long long)f->vector, exc_names[f->vector & 31], (unsigned long long)f->error,
               (unsigned long long)f->rip, (unsigned long long)f->cs, (unsigned long long)f->rflags,
               (unsigned long long)f->rsp, (unsigned long long)cr2);
    int status = EXIT_TRAP + (int)(f->vector & 31);
    outl(DEBUG_EXIT_PORT, (uint32_t)status);
    con_printf("exit status %d\n", status); /* only reached without an isa-debug-exit device */
    for (;;) __asm__ volatile("cli; hlt");
}

/* ---- boot ---- */
struct multiboot_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

__attribute__((noreturn)) void x86_kernel_main(void);
void x86_kernel_main(void) {
    /* TSS and its descriptor (GDT slot 0x30, 16 bytes). */
    tss.tss.rsp[0] = (uint64_t)x86_trap_stack_top;
    tss.tss.iomap_base = offsetof(__typeof__(tss), iomap);
    tss.iomap_end = 0xff;
    uint64_t base = (uint64_t)&tss, limit = sizeof tss - 1;
    x86_gdt[SEL_TSS / 8] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
                           ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    x86_gdt[SEL_TSS / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));

    /* IDT: exceptions 0-31 (#BP callable from CPL3), IRQs 0-15 at 0x20-0x2f. */
    for (int v = 0; v < 32; v++) set_gate(v, x86_exception_stubs[v], 0);
    set_gate(3, (uint64_t)x86_bp_wait, 3);
    for (int i = 0; i < 16; i++) set_gate(IRQ_BASE_VECTOR + i, (uint64_t)irq_handlers[i], 0);
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" ::"m"(idtr));

    /* 8259 pair: ICW1 edge-triggered + ICW4, vectors 0x20/0x28, cascade on IRQ2, 8086 mode. */
    outb(PIC1_CMD, 0x11);
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, IRQ_BASE_VECTOR);
    outb(PIC2_DATA, IRQ_BASE_VECTOR + 8);
    outb(PIC1_DATA, 4);
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 1);
    outb(PIC2_DATA, 1);
    x86_pic_set_mask(x86_pic_mask);

    /* The Multiboot command line (flags bit 2). */
    const struct multiboot_info *mb = (const struct multiboot_info *)(uintptr_t)x86_boot_info;
    if (x86_boot_magic == 0x2badb002 && mb && (mb->flags & 4) && mb->cmdline)
        x86_boot_cmdline = (const char *)(uintptr_t)mb->cmdline;
    x86_ring0 = cmdline_has(x86_boot_cmdline, "ring0");

    if (x86_ring0) {
        __asm__ volatile("sti");
        x86_workload_entry();
    }
    /* The workload starts like a called function: RSP + 8 is 16-byte aligned. */
    x86_enter_user((uint64_t)x86_workload_entry, (uint64_t)x86_user_stack_top - 8);
}
