/* Portable runtime helpers shared by every guest: strings, console formatting, command-line
 * tokens, SHA-256, deterministic pseudo-random data, exit codes. */
#ifndef GUESTS_RT_H
#define GUESTS_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "platform.h"

/* ---- exit statuses (see guests/README.md; Lockstep exits with status, QEMU x86 with (status << 1) | 1) ---- */
enum {
    EXIT_OK = 0,        /* the workload succeeded */
    EXIT_FAIL = 1,      /* the workload ran and found a wrong result (e.g. disk verify) */
    EXIT_USAGE = 2,     /* a malformed or out-of-range command-line token */
    EXIT_NODEV = 3,     /* a needed device is absent or unusable */
    EXIT_IOERR = 4,     /* a device request failed after retries */
    EXIT_TRAP = 64,     /* 64 + vector/interruption number: unexpected exception */
};

/* ---- string.c ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* ---- format.c: console output ---- */
void con_putc(int c);
void con_write(const char *s, size_t n);
void con_puts(const char *s);               /* no newline added */
/* printf subset: %s %c %d %i %u %x %X %p %%, length modifiers l, ll, z; flags 0 and width.
 * Output is exactly what is formatted ("\n" is one byte; no CR is added). */
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void con_vprintf(const char *fmt, va_list ap);
/* Lower-case hex of `n` bytes. */
void con_hex(const uint8_t *bytes, size_t n);

/* ---- cmdline.c: `key=value` and bare tokens, separated by spaces ---- */
/* True if the command line contains exactly the token `word` (e.g. "ring0"). */
int cmdline_has(const char *cmdline, const char *word);
/* Finds `key=` and returns a pointer to its value (ends at a space or NUL) and its length. The
 * first occurrence wins unless `index` > 0 (0-based repeat). NULL if absent. */
const char *cmdline_value(const char *cmdline, const char *key, unsigned index, size_t *len);
/* Parses an unsigned number (decimal or 0x hex) of exactly `len` characters. 0 on success. */
int parse_u64(const char *s, size_t len, uint64_t *out);
/* The value of `key=N` in [min, max], or `dflt` if absent. Prints an error and exits with
 * EXIT_USAGE if the value is malformed or out of range. */
uint64_t cmdline_u64(const char *key, uint64_t dflt, uint64_t min, uint64_t max);

/* A virtio-mmio device announced as `virtio_mmio.device=SIZE@ADDR:IRQ` (Linux syntax; SIZE may
 * have a K/M suffix). Returns 0 and fills the fields for the index-th token, -1 if there is no
 * such token, -2 if it is malformed. */
struct mmio_device { uint64_t size, addr; uint32_t irq; };
int cmdline_virtio_mmio(const char *cmdline, unsigned index, struct mmio_device *dev);

/* ---- sha256.c (FIPS 180-4; byte-oriented, so identical on both byte orders) ---- */
struct sha256 { uint32_t h[8]; uint64_t length; uint8_t block[64]; uint32_t used; };
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t digest[32]);

/* ---- random.c: xorshift32, the pattern generator of the cpu and disk guests ---- */
static inline uint32_t xorshift32(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}
/* Fills `n` bytes from the generator, least significant byte of each word first. */
void fill_pattern(uint8_t *buf, size_t n, uint32_t *state);

/* ---- blk.c: virtio-mmio block device (virtio 1.x, MMIO transport version 2) ---- */
struct blk_info { uint64_t capacity; uintptr_t base; uint32_t irq; };
/* Finds and initialises the first virtio block device announced on the command line.
 * 0 on success; a negative value after printing why (no token, no device, legacy device...). */
int blk_open(struct blk_info *info);
/* Reads or writes `count` 512-byte sectors at `sector`. Retries a request completed with an
 * error status up to BLK_RETRIES times. 0 on success, or the last virtio status (> 0). */
#define BLK_RETRIES 3
int blk_rw(int write, uint64_t sector, void *buf, uint32_t count);
/* The number of retried requests since blk_open. */
uint32_t blk_retries(void);

#endif
