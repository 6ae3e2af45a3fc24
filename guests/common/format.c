/* Console output and a small printf. */
#include "rt.h"

void con_putc(int c) { plat_console_putc(c); }

void con_write(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) plat_console_putc((unsigned char)s[i]);
}

void con_puts(const char *s) {
    while (*s) plat_console_putc((unsigned char)*s++);
}

void con_hex(const uint8_t *bytes, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        plat_console_putc(digits[bytes[i] >> 4]);
        plat_console_putc(digits[bytes[i] & 15]);
    }
}

/* Digits of `v` in `base`, least significant first; returns the count. 32-bit division when the
 * value fits, so PA-RISC uses the millicode instead of the slow 64-bit helper. */
static int to_digits(uint64_t v, unsigned base, int upper, char *out) {
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        if (v >> 32) {
            out[n++] = digits[v % base];
            v /= base;
        } else {
            uint32_t w = (uint32_t)v;
            out[n++] = digits[w % base];
            v = w / base;
        }
    } while (v);
    return n;
}

static void put_padded(const char *rev, int n, int neg, int width, char pad) {
    int len = n + neg;
    if (pad == '0' && neg) plat_console_putc('-');
    for (; len < width; len++) plat_console_putc(pad);
    if (pad != '0' && neg) plat_console_putc('-');
    while (n) plat_console_putc(rev[--n]);
}

void con_vprintf(const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            plat_console_putc((unsigned char)*fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        if (*fmt == 'z') {
            longs = sizeof(size_t) == 8 ? 2 : 0;
            fmt++;
        }
        char buf[24];
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs >= 2 ? va_arg(ap, long long) : longs == 1 ? va_arg(ap, long) : va_arg(ap, int);
            uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
            put_padded(buf, to_digits(mag, 10, 0, buf), v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = longs >= 2 ? va_arg(ap, unsigned long long)
                         : longs == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
            unsigned base = *fmt == 'u' ? 10 : 16;
            put_padded(buf, to_digits(v, base, *fmt == 'X', buf), 0, width, pad);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            plat_console_putc('0');
            plat_console_putc('x');
            put_padded(buf, to_digits(v, 16, 0, buf), 0, width, pad);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            int n = (int)strlen(s);
            for (; n < width; n++) plat_console_putc(' ');
            con_puts(s);
            break;
        }
        case 'c':
            plat_console_putc(va_arg(ap, int));
            break;
        case '%':
            plat_console_putc('%');
            break;
        case 0:
            return;
        default:
            plat_console_putc('%');
            plat_console_putc((unsigned char)*fmt);
            break;
        }
    }
}

void con_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    con_vprintf(fmt, ap);
    va_end(ap);
}
