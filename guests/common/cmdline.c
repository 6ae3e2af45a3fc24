/* Command-line tokens: `key=value` pairs and bare words, separated by spaces (or tabs).
 * Unknown tokens are ignored: QEMU's Multiboot loader prepends the kernel file name, and the
 * hypervisors append device announcements. */
#include "rt.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Advances to the next token: sets *start and returns its length (0 at the end). */
static size_t next_token(const char **cursor, const char **start) {
    const char *p = *cursor;
    while (*p && is_space(*p)) p++;
    const char *s = p;
    while (*p && !is_space(*p)) p++;
    *start = s;
    *cursor = p;
    return (size_t)(p - s);
}

int cmdline_has(const char *cmdline, const char *word) {
    size_t wlen = strlen(word);
    const char *cursor = cmdline, *tok;
    size_t len;
    while ((len = next_token(&cursor, &tok)) != 0)
        if (len == wlen && strncmp(tok, word, wlen) == 0) return 1;
    return 0;
}

const char *cmdline_value(const char *cmdline, const char *key, unsigned index, size_t *vlen) {
    size_t klen = strlen(key);
    const char *cursor = cmdline, *tok;
    size_t len;
    while ((len = next_token(&cursor, &tok)) != 0) {
        if (len > klen && tok[klen] == '=' && strncmp(tok, key, klen) == 0) {
            if (index-- == 0) {
                *vlen = len - klen - 1;
                return tok + klen + 1;
            }
        }
    }
    return NULL;
}

int parse_u64(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    unsigned base = 10;
    size_t i = 0;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i >= len) return -1;
    for (; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        uint64_t next = v * base + d;
        if (next / base != v) return -1; /* overflow */
        v = next;
    }
    *out = v;
    return 0;
}

uint64_t cmdline_u64(const char *key, uint64_t dflt, uint64_t min, uint64_t max) {
    size_t len;
    const char *v = cmdline_value(plat_cmdline(), key, 0, &len);
    if (!v) return dflt;
    uint64_t n;
    if (parse_u64(v, len, &n) != 0 || n < min || n > max) {
        con_printf("error: bad %s=", key);
        con_write(v, len);
        con_printf(" (want a number in %llu..%llu)\n", (unsigned long long)min, (unsigned long long)max);
        plat_exit(EXIT_USAGE);
    }
    return n;
}

/* SIZE@ADDR:IRQ, e.g. 512@0xfeb00000:5 or 4K@0xd0000000:7. */
int cmdline_virtio_mmio(const char *cmdline, unsigned index, struct mmio_device *dev) {
    size_t len;
    const char *v = cmdline_value(cmdline, "virtio_mmio.device", index, &len);
    if (!v) return -1;
    size_t at = 0, colon = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '@' && !at) at = i;
        if (v[i] == ':') colon = i;
    }
    if (!at || colon <= at + 1 || colon + 1 >= len) return -2;
    size_t size_len = at;
    uint64_t mult = 1;
    char suffix = v[size_len - 1];
    if (suffix == 'K' || suffix == 'k') mult = 1024;
    if (suffix == 'M' || suffix == 'm') mult = 1024 * 1024;
    if (mult != 1) size_len--;
    uint64_t size, addr, irq;
    if (parse_u64(v, size_len, &size) || parse_u64(v + at + 1, colon - at - 1, &addr) ||
        parse_u64(v + colon + 1, len - colon - 1, &irq) || irq > 0xffffffffu)
        return -2;
    dev->size = size * mult;
    dev->addr = addr;
    dev->irq = (uint32_t)irq;
    return 0;
}
