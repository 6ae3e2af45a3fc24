/* Host-side check of the portable virtio-mmio block driver (common/blk.c) and the disk workload
 * (common/disk.c) against a small software model of a virtio-mmio v2 block device.
 *
 * Built as an ordinary hosted program twice: natively (little-endian x86-64) and for hppa
 * (big-endian), run under qemu-hppa-static. The model decodes every register and ring field
 * byte by byte as little-endian, so on hppa it checks the driver's byte swapping, which QEMU's
 * hppa machine (no virtio-mmio) cannot. `make -C guests check` runs it.
 *
 * usage: blk_model [FAIL_N] -- the model completes the first FAIL_N requests with
 * VIRTIO_BLK_S_IOERR; prints the disk guest's output and exits with its status. */
#include "../common/rt.h"

int putchar(int c);
int atoi(const char *s);
__attribute__((noreturn)) void exit(int status);

#define BASE 0xf1000000u
#define CAPACITY 2048
static uint8_t disk[CAPACITY * 512];
static uint32_t fail_remaining;

static struct {
    uint32_t status, features_sel, driver_features[2], queue_num, ready, isr;
    uint64_t desc, avail, used;
    uint16_t last_avail;
} dev;

static uint32_t irq_count;
static const char *cmdline = "virtio_mmio.device=512@0xf1000000:1 blocks=100 seed=7";

const char *plat_arch_name(void) { return "model"; }
const char *plat_cmdline(void) { return cmdline; }
void plat_console_putc(int c) { putchar(c); }
uint32_t plat_irq_count(void) { return irq_count; }
void plat_wait_irq(uint32_t seen) {
    if (irq_count == seen) {
        putchar('!'); /* the driver waited although no completion can come: a driver bug */
        exit(99);
    }
}
int plat_irq_attach_block(uint32_t irq) { return irq == 1 ? 0 : -1; }
void plat_exit(int status) { exit(status); }
uint8_t plat_mmio_read8(uintptr_t addr) { return (uint8_t)(plat_mmio_read32(addr & ~3u) >> 8 * (addr & 3)); }

/* Little-endian guest memory accessors, independent of the host byte order. */
static uint8_t *mem(uint64_t a) { return (uint8_t *)(uintptr_t)a; }
static uint16_t ld16(uint64_t a) { return (uint16_t)(mem(a)[0] | mem(a)[1] << 8); }
static uint32_t ld32(uint64_t a) { return ld16(a) | (uint32_t)ld16(a + 2) << 16; }
static uint64_t ld64(uint64_t a) { return ld32(a) | (uint64_t)ld32(a + 4) << 32; }
static void st16(uint64_t a, uint16_t v) { mem(a)[0] = (uint8_t)v; mem(a)[1] = (uint8_t)(v >> 8); }
static void st32(uint64_t a, uint32_t v) { st16(a, (uint16_t)v); st16(a + 2, (uint16_t)(v >> 16)); }

static void fail(const char *why) {
    con_printf("model: %s\n", why);
    exit(98);
}

/* Runs every request the driver made available, then raises the interrupt. */
static void process_queue(void) {
    if (!dev.ready || !(dev.status & 4)) fail("notify before DRIVER_OK");
    uint16_t avail_idx = ld16(dev.avail + 2);
    while (dev.last_avail != avail_idx) {
        uint16_t head = ld16(dev.avail + 4 + 2 * (dev.last_avail % dev.queue_num));
        uint64_t d = dev.desc + 16 * head;
        if (!(ld16(d + 12) & 1) || ld32(d + 8) != 16) fail("bad header descriptor");
        uint64_t hdr = ld64(d);
        uint32_t type = ld32(hdr);
        uint64_t sector = ld64(hdr + 8);
        d = dev.desc + 16 * ld16(d + 14);
        uint64_t buf = ld64(d);
        uint32_t len = ld32(d + 8);
        uint16_t flags = ld16(d + 12);
        if (!(flags & 1) || len % 512) fail("bad data descriptor");
        if ((type == 0) != ((flags & 2) != 0)) fail("data descriptor direction does not match the request");
        d = dev.desc + 16 * ld16(d + 14);
        if (ld32(d + 8) != 1 || !(ld16(d + 12) & 2)) fail("bad status descriptor");
        uint8_t status = 0;
        if (fail_remaining) {
            fail_remaining--;
            status = 1; /* VIRTIO_BLK_S_IOERR */
        } else if (sector + len / 512 > CAPACITY) {
            status = 1;
        } else if (type == 1) {
            for (uint32_t i = 0; i < len; i++) disk[sector * 512 + i] = mem(buf)[i];
        } else if (type == 0) {
            for (uint32_t i = 0; i < len; i++) mem(buf)[i] = disk[sector * 512 + i];
        } else {
            status = 2;
        }
        mem(ld64(d))[0] = status;
        uint16_t used_idx = ld16(dev.used + 2);
        uint64_t e = dev.used + 4 + 8 * (used_idx % dev.queue_num);
        st32(e, head);
        st32(e + 4, type == 0 ? len + 1 : 1);
        st16(dev.used + 2, (uint16_t)(used_idx + 1));
        dev.last_avail++;
    }
    dev.isr |= 1;
    irq_count++;
    virtio_blk_interrupt(); /* what the kernel's interrupt path does */
    if (dev.isr) fail("interrupt not acknowledged");
}

uint32_t plat_mmio_read32(uintptr_t addr) {
    switch (addr - BASE) {
    case 0x000: return 0x74726976;
    case 0x004: return 2;
    case 0x008: return 2;
    case 0x00c: return 0x554d4551;
    case 0x010: return dev.features_sel == 1 ? 1 : 0; /* VIRTIO_F_VERSION_1 only */
    case 0x034: return 16;
    case 0x044: return dev.ready;
    case 0x060: return dev.isr;
    case 0x070: return dev.status;
    case 0x0fc: return 0;
    case 0x100: return CAPACITY;
    case 0x104: return 0;
    default: fail("read of an unexpected register"); return 0;
    }
}

void plat_mmio_write32(uintptr_t addr, uint32_t v) {
    switch (addr - BASE) {
    case 0x014: dev.features_sel = v; break;
    case 0x020: dev.driver_features[dev.features_sel & 1] = v; break;
    case 0x024: dev.features_sel = v; break;
    case 0x030: if (v != 0) fail("queue other than 0"); break;
    case 0x038: dev.queue_num = v; break;
    case 0x044: dev.ready = v; break;
    case 0x050: process_queue(); break;
    case 0x064: dev.isr &= ~v; break;
    case 0x070:
        if (v == 0) dev = (__typeof__(dev)){0};
        if ((v & 8) && dev.driver_features[1] != 1) fail("FEATURES_OK without VERSION_1");
        dev.status = v;
        break;
    case 0x080: dev.desc = (dev.desc & ~0xffffffffull) | v; break;
    case 0x084: dev.desc = (dev.desc & 0xffffffffu) | (uint64_t)v << 32; break;
    case 0x090: dev.avail = (dev.avail & ~0xffffffffull) | v; break;
    case 0x094: dev.avail = (dev.avail & 0xffffffffu) | (uint64_t)v << 32; break;
    case 0x0a0: dev.used = (dev.used & ~0xffffffffull) | v; break;
    case 0x0a4: dev.used = (dev.used & 0xffffffffu) | (uint64_t)v << 32; break;
    default: fail("write to an unexpected register");
    }
}

int main(int argc, char **argv) {
    if (argc > 1) {
        fail_remaining = (uint32_t)atoi(argv[1]);
        cmdline = "virtio_mmio.device=512@0xf1000000:1 blocks=100 seed=7 verbose";
    }
    int status = guest_main();
    if (status != 0) return status;
    /* The image must hold the seed-7 pattern the disk guest wrote. */
    uint32_t state = 7;
    static uint8_t want[100 * 512];
    fill_pattern(want, sizeof want, &state);
    for (unsigned i = 0; i < sizeof want; i++)
        if (disk[i] != want[i]) fail("the model disk does not hold the written pattern");
    return status;
}
