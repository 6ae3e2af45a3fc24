/* disk: writes blocks=N sectors (default 64) from sector 0 with the xorshift32 pattern of
 * seed=S (default 1; the same byte stream as the cpu guest's buffer), reads them back, verifies
 * them and prints the SHA-256 of what it read:
 *   disk capacity=<sectors> blocks=64 seed=1
 *   disk write ok
 *   disk read ok
 *   disk verify ok sha256=<64 hex digits>
 * Exit status: 0 ok, 1 verification failed, 2 bad token or blocks > capacity, 3 no usable
 * device, 4 a request still failed after retries. */
#include "rt.h"

#define CHUNK 8 /* sectors per blk_rw call */
static uint8_t wbuf[CHUNK * 512] __attribute__((aligned(16)));
static uint8_t rbuf[CHUNK * 512] __attribute__((aligned(16)));

int guest_main(void) {
    uint64_t blocks = cmdline_u64("blocks", 64, 1, 1u << 24);
    uint32_t seed = (uint32_t)cmdline_u64("seed", 1, 1, 0xffffffffu);
    struct blk_info info;
    if (blk_open(&info) != 0) {
        con_puts("disk error: no usable disk\n");
        return EXIT_NODEV;
    }
    con_printf("disk capacity=%llu blocks=%llu seed=%u\n", (unsigned long long)info.capacity,
               (unsigned long long)blocks, seed);
    if (blocks > info.capacity) {
        con_puts("disk error: blocks exceeds the capacity\n");
        return EXIT_USAGE;
    }

    uint32_t state = seed;
    for (uint64_t s = 0; s < blocks; s += CHUNK) {
        uint32_t n = blocks - s < CHUNK ? (uint32_t)(blocks - s) : CHUNK;
        fill_pattern(wbuf, n * 512, &state);
        if (blk_rw(1, s, wbuf, n) != 0) {
            con_puts("disk error: write failed\n");
            return EXIT_IOERR;
        }
    }
    con_puts("disk write ok\n");

    struct sha256 h;
    sha256_init(&h);
    state = seed;
    int bad = 0;
    for (uint64_t s = 0; s < blocks; s += CHUNK) {
        uint32_t n = blocks - s < CHUNK ? (uint32_t)(blocks - s) : CHUNK;
        if (blk_rw(0, s, rbuf, n) != 0) {
            con_puts("disk error: read failed\n");
            return EXIT_IOERR;
        }
        sha256_update(&h, rbuf, n * 512);
        fill_pattern(wbuf, n * 512, &state);
        if (!bad) {
            for (uint32_t i = 0; i < n * 512; i++) {
                if (rbuf[i] != wbuf[i]) {
                    con_printf("disk verify failed sector=%llu offset=%u expected=0x%02x got=0x%02x\n",
                               (unsigned long long)(s + i / 512), i % 512, wbuf[i], rbuf[i]);
                    bad = 1;
                    break;
                }
            }
        }
    }
    con_puts("disk read ok\n");
    uint8_t digest[32];
    sha256_final(&h, digest);
    con_puts(bad ? "disk verify FAILED sha256=" : "disk verify ok sha256=");
    con_hex(digest, sizeof digest);
    con_puts("\n");
    return bad ? EXIT_FAIL : EXIT_OK;
}
