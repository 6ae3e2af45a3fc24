/* FP-free replacements for the libgcc DImode helpers (Debian's hppa libgcc.a builds them with
 * XMPYU and FP loads/stores). Shift-and-add / shift-and-subtract only: no $$mulI, no FP, no
 * __clzdi2. Compiled with -mdisable-fpregs and linked before -lgcc. */
typedef unsigned long long u64;
typedef long long s64;

u64 __muldi3(u64 a, u64 b);
u64 __udivmoddi4(u64 n, u64 d, u64 *rem);
u64 __udivdi3(u64 n, u64 d);
u64 __umoddi3(u64 n, u64 d);
s64 __divdi3(s64 a, s64 b);
s64 __moddi3(s64 a, s64 b);

u64 __muldi3(u64 a, u64 b) {
    u64 r = 0;
    while (b) {
        if (b & 1) r += a;
        a <<= 1;
        b >>= 1;
    }
    return r;
}

u64 __udivmoddi4(u64 n, u64 d, u64 *rem) {
    if (d == 0) { /* like the millicode: trap on division by zero */
        __builtin_trap();
    }
    u64 q = 0;
    if (d <= n) {
        int shift = 0;
        while (!(d >> 63) && (d << 1) <= n) {
            d <<= 1;
            shift++;
        }
        for (; shift >= 0; shift--) {
            q <<= 1;
            if (n >= d) {
                n -= d;
                q |= 1;
            }
            d >>= 1;
        }
    }
    if (rem) *rem = n;
    return q;
}

u64 __udivdi3(u64 n, u64 d) { return __udivmoddi4(n, d, 0); }

u64 __umoddi3(u64 n, u64 d) {
    u64 r;
    __udivmoddi4(n, d, &r);
    return r;
}

s64 __divdi3(s64 a, s64 b) {
    int neg = (a < 0) != (b < 0);
    u64 q = __udivmoddi4(a < 0 ? -(u64)a : (u64)a, b < 0 ? -(u64)b : (u64)b, 0);
    /* Negate as unsigned: -(s64)q overflows for q = 2^63 (INT64_MIN / 1). */
    return (s64)(neg ? 0 - q : q);
}

s64 __moddi3(s64 a, s64 b) {
    u64 r;
    __udivmoddi4(a < 0 ? -(u64)a : (u64)a, b < 0 ? -(u64)b : (u64)b, &r);
    return (s64)(a < 0 ? 0 - r : r);
}
