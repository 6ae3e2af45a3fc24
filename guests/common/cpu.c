/* cpu: CPU-bound SHA-256 chain. A 16 KiB buffer is filled from xorshift32(seed=S, default 1);
 * then for rounds=N rounds (default 64): digest = SHA-256(digest || buffer), starting from 32
 * zero bytes. Prints one line, identical on every architecture:
 *   cpu rounds=64 seed=1 buffer=16384 sha256=<64 hex digits> */
#include "rt.h"

#define BUFFER_SIZE 16384
static uint8_t buffer[BUFFER_SIZE];

int guest_main(void) {
    uint32_t rounds = (uint32_t)cmdline_u64("rounds", 64, 1, 0xffffffffu);
    uint32_t seed = (uint32_t)cmdline_u64("seed", 1, 1, 0xffffffffu);
    uint32_t state = seed;
    fill_pattern(buffer, BUFFER_SIZE, &state);
    uint8_t digest[32];
    memset(digest, 0, sizeof digest);
    for (uint32_t r = 0; r < rounds; r++) {
        struct sha256 s;
        sha256_init(&s);
        sha256_update(&s, digest, sizeof digest);
        sha256_update(&s, buffer, BUFFER_SIZE);
        sha256_final(&s, digest);
    }
    con_printf("cpu rounds=%u seed=%u buffer=%u sha256=", rounds, seed, BUFFER_SIZE);
    con_hex(digest, sizeof digest);
    con_puts("\n");
    return EXIT_OK;
}
