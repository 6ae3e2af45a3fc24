/* A portable virtio-mmio block driver: virtio 1.x over MMIO transport version 2, one split
 * virtqueue, one request in flight, completion by interrupt. Device registers and ring fields are
 * little-endian; plat_mmio_* and the le*() helpers convert on big-endian PA-RISC.
 * Spec: Virtual I/O Device (VIRTIO) Version 1.1, sections 2.6 (split virtqueues), 4.2 (MMIO),
 * 5.2 (block device). */
#include "rt.h"

enum {
    REG_MAGIC = 0x000, REG_VERSION = 0x004, REG_DEVICE_ID = 0x008,
    REG_DEVICE_FEATURES = 0x010, REG_DEVICE_FEATURES_SEL = 0x014,
    REG_DRIVER_FEATURES = 0x020, REG_DRIVER_FEATURES_SEL = 0x024,
    REG_QUEUE_SEL = 0x030, REG_QUEUE_NUM_MAX = 0x034, REG_QUEUE_NUM = 0x038,
    REG_QUEUE_READY = 0x044, REG_QUEUE_NOTIFY = 0x050,
    REG_INTERRUPT_STATUS = 0x060, REG_INTERRUPT_ACK = 0x064, REG_STATUS = 0x070,
    REG_QUEUE_DESC_LOW = 0x080, REG_QUEUE_DESC_HIGH = 0x084,
    REG_QUEUE_DRIVER_LOW = 0x090, REG_QUEUE_DRIVER_HIGH = 0x094,
    REG_QUEUE_DEVICE_LOW = 0x0a0, REG_QUEUE_DEVICE_HIGH = 0x0a4,
    REG_CONFIG = 0x100,
};
enum { ST_ACKNOWLEDGE = 1, ST_DRIVER = 2, ST_DRIVER_OK = 4, ST_FEATURES_OK = 8, ST_FAILED = 128 };
enum { DESC_F_NEXT = 1, DESC_F_WRITE = 2 };
enum { BLK_T_IN = 0, BLK_T_OUT = 1 };
#define VIRTIO_MAGIC 0x74726976u /* "virt" */
#define QSIZE 8
#define MAX_SECTORS_PER_REQUEST 8

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
static inline uint16_t le16(uint16_t v) { return (uint16_t)(v >> 8 | v << 8); }
static inline uint32_t le32(uint32_t v) { return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24; }
static inline uint64_t le64(uint64_t v) {
    return (uint64_t)le32((uint32_t)v) << 32 | le32((uint32_t)(v >> 32));
}
#else
static inline uint16_t le16(uint16_t v) { return v; }
static inline uint32_t le32(uint32_t v) { return v; }
static inline uint64_t le64(uint64_t v) { return v; }
#endif

struct vq_desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct vq_avail { uint16_t flags, idx, ring[QSIZE], used_event; };
struct vq_used_elem { uint32_t id, len; };
struct vq_used { uint16_t flags, idx; struct vq_used_elem ring[QSIZE]; uint16_t avail_event; };
struct blk_req_header { uint32_t type, reserved; uint64_t sector; };

static struct {
    struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
    struct vq_avail avail __attribute__((aligned(4)));
    struct vq_used used __attribute__((aligned(8)));
    struct blk_req_header header __attribute__((aligned(16)));
    volatile uint8_t status;
} vq __attribute__((aligned(4096)));

static uintptr_t blk_base;     /* 0 until a device is set up; read by the interrupt handler */
static uint16_t avail_idx, used_seen;
static uint16_t queue_size;    /* the size negotiated with the device (at most QSIZE) */
static uint32_t retry_count;
static int verbose;

static uint32_t rd(uint32_t reg) { return plat_mmio_read32(blk_base + reg); }
static void wr(uint32_t reg, uint32_t v) { plat_mmio_write32(blk_base + reg, v); }
static void wr64(uint32_t low, const volatile void *p) {
    uint64_t a = (uintptr_t)p;
    wr(low, (uint32_t)a);
    wr(low + 4, (uint32_t)(a >> 32));
}

void virtio_blk_interrupt(void) {
    uintptr_t base = blk_base;
    if (!base) return;
    uint32_t isr = plat_mmio_read32(base + REG_INTERRUPT_STATUS);
    plat_mmio_write32(base + REG_INTERRUPT_ACK, isr);
}

uint32_t blk_retries(void) { return retry_count; }

/* Sets up the device at `base`; returns 0 or prints why not and returns a negative value. */
static int setup(uintptr_t base, struct blk_info *info) {
    blk_base = base;
    wr(REG_STATUS, 0); /* reset */
    wr(REG_STATUS, ST_ACKNOWLEDGE);
    wr(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);
    wr(REG_DEVICE_FEATURES_SEL, 1);
    uint32_t high = rd(REG_DEVICE_FEATURES);
    if (!(high & 1)) { /* VIRTIO_F_VERSION_1 (bit 32) */
        con_printf("blk: device at %p does not offer VIRTIO_F_VERSION_1\n", (void *)base);
        goto fail;
    }
    wr(REG_DRIVER_FEATURES_SEL, 0);
    wr(REG_DRIVER_FEATURES, 0);
    wr(REG_DRIVER_FEATURES_SEL, 1);
    wr(REG_DRIVER_FEATURES, 1);
    wr(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
    if (!(rd(REG_STATUS) & ST_FEATURES_OK)) {
        con_printf("blk: device at %p refused the features\n", (void *)base);
        goto fail;
    }
    wr(REG_QUEUE_SEL, 0);
    if (rd(REG_QUEUE_READY) != 0) {
        con_printf("blk: queue 0 at %p is already live\n", (void *)base);
        goto fail;
    }
    uint32_t max = rd(REG_QUEUE_NUM_MAX);
    if (max < 3) {
        con_printf("blk: queue 0 at %p has %u entries (need 3)\n", (void *)base, max);
        goto fail;
    }
    queue_size = (uint16_t)(max < QSIZE ? max : QSIZE);
    wr(REG_QUEUE_NUM, queue_size);
    wr64(REG_QUEUE_DESC_LOW, vq.desc);
    wr64(REG_QUEUE_DRIVER_LOW, &vq.avail);
    wr64(REG_QUEUE_DEVICE_LOW, &vq.used);
    wr(REG_QUEUE_READY, 1);
    uint32_t cap_lo = rd(REG_CONFIG), cap_hi = rd(REG_CONFIG + 4);
    info->capacity = (uint64_t)cap_hi << 32 | cap_lo;
    info->base = base;
    avail_idx = 0;
    used_seen = 0;
    vq.avail.flags = 0;
    vq.avail.idx = 0;
    if (plat_irq_attach_block(info->irq) != 0) {
        con_printf("blk: cannot use interrupt %u\n", info->irq);
        goto fail;
    }
    wr(REG_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    return 0;
fail:
    wr(REG_STATUS, ST_FAILED);
    blk_base = 0;
    return -3;
}

int blk_open(struct blk_info *info) {
    const char *cmdline = plat_cmdline();
    verbose = cmdline_has(cmdline, "verbose");
    struct mmio_device dev;
    int found = 0;
    for (unsigned i = 0;; i++) {
        int r = cmdline_virtio_mmio(cmdline, i, &dev);
        if (r == -1) break;
        if (r == -2) {
            con_printf("blk: malformed virtio_mmio.device token #%u\n", i);
            return -2;
        }
        found++;
        uintptr_t base = (uintptr_t)dev.addr;
        if (dev.size < 0x200 || plat_mmio_read32(base + REG_MAGIC) != VIRTIO_MAGIC) {
            con_printf("blk: no virtio-mmio device at %p\n", (void *)base);
            continue;
        }
        uint32_t version = plat_mmio_read32(base + REG_VERSION);
        uint32_t id = plat_mmio_read32(base + REG_DEVICE_ID);
        if (id != 2) continue; /* 0: empty slot; other: not a block device */
        if (version != 2) {
            con_printf("blk: virtio-mmio device at %p has transport version %u (need 2)\n", (void *)base, version);
            continue;
        }
        info->irq = dev.irq;
        return setup(base, info);
    }
    if (found)
        con_printf("blk: no usable virtio block device among %d announced\n", found);
    else
        con_puts("blk: no virtio-mmio device announced (virtio_mmio.device=SIZE@ADDR:IRQ)\n");
    return -1;
}

/* Submits one request and waits for its completion; returns the virtio status byte. */
static uint8_t submit(int write, uint64_t sector, void *buf, uint32_t count) {
    vq.header.type = le32(write ? BLK_T_OUT : BLK_T_IN);
    vq.header.reserved = 0;
    vq.header.sector = le64(sector);
    vq.status = 0xff;
    vq.desc[0].addr = le64((uintptr_t)&vq.header);
    vq.desc[0].len = le32(sizeof vq.header);
    vq.desc[0].flags = le16(DESC_F_NEXT);
    vq.desc[0].next = le16(1);
    vq.desc[1].addr = le64((uintptr_t)buf);
    vq.desc[1].len = le32(count * 512);
    vq.desc[1].flags = le16(DESC_F_NEXT | (write ? 0 : DESC_F_WRITE));
    vq.desc[1].next = le16(2);
    vq.desc[2].addr = le64((uintptr_t)&vq.status);
    vq.desc[2].len = le32(1);
    vq.desc[2].flags = le16(DESC_F_WRITE);
    vq.desc[2].next = 0;
    vq.avail.ring[avail_idx % queue_size] = le16(0);
    plat_barrier();
    avail_idx++;
    vq.avail.idx = le16(avail_idx);
    plat_barrier();
    wr(REG_QUEUE_NOTIFY, 0);
    for (;;) {
        uint32_t seen = plat_irq_count();
        plat_barrier();
        if (le16(*(volatile uint16_t *)&vq.used.idx) != used_seen) break;
        plat_wait_irq(seen);
    }
    plat_barrier();
    used_seen++;
    return vq.status;
}

int blk_rw(int write, uint64_t sector, void *buf, uint32_t count) {
    if (!blk_base) return 0xff;
    uint8_t *p = buf;
    while (count) {
        uint32_t n = count < MAX_SECTORS_PER_REQUEST ? count : MAX_SECTORS_PER_REQUEST;
        uint8_t status = 0;
        for (int attempt = 0; attempt <= BLK_RETRIES; attempt++) {
            status = submit(write, sector, p, n);
            if (status == 0) break;
            if (attempt < BLK_RETRIES) {
                retry_count++;
                if (verbose)
                    con_printf("blk: %s sector=%llu count=%u status=%u, retrying\n", write ? "write" : "read",
                               (unsigned long long)sector, n, status);
            }
        }
        if (status != 0) {
            con_printf("blk: %s sector=%llu count=%u failed with status %u after %d attempts\n",
                       write ? "write" : "read", (unsigned long long)sector, n, status, BLK_RETRIES + 1);
            return status;
        }
        sector += n;
        p += n * 512;
        count -= n;
    }
    return 0;
}
