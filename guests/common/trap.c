/* trap: a test guest that takes an unexpected exception on purpose, to check the kernel's
 * exception report and exit status (64 + vector / interruption number).
 *   trap=div0 (default)  integer division by zero: x86 #DE (vector 0, status 64);
 *                        PA-RISC conditional trap in the $$divU millicode (13, status 77)
 *   trap=ud              x86 ud2: #UD (6, status 70)
 *   trap=gp              x86 load from a non-canonical address: #GP (13, status 77)
 *   trap=pf              x86 load from 0x100000000 (unmapped): #PF (14, status 78)
 *   trap=break           PA-RISC break 0,0: interruption 9 (status 73)
 *   trap=ill             PA-RISC undefined opcode 0xfc000000 (stored as data): illegal
 *                        instruction, interruption 8 (status 72)
 * Prints "trap <kind>" first; the kernel then prints its report, e.g.
 *   exception vector=0 (#DE) error=0x0 rip=0x... cs=0x2b ...      (x86)
 *   trap n=13 (conditional) iaoq=0x...,0x... iir=0x... ...        (PA-RISC) */
#include "rt.h"

static volatile uint32_t zero;

int guest_main(void) {
    size_t len;
    const char *v = cmdline_value(plat_cmdline(), "trap", 0, &len);
    if (!v) {
        v = "div0";
        len = 4;
    }
    con_puts("trap ");
    con_write(v, len);
    con_puts("\n");
#define IS(s) (len == sizeof(s) - 1 && strncmp(v, s, len) == 0)
    if (IS("div0")) {
        volatile uint32_t q = 1234u / zero;
        (void)q;
    }
#if defined(__x86_64__)
    else if (IS("ud")) __asm__ volatile("ud2");
    else if (IS("gp")) (void)*(volatile uint64_t *)0x8000000000000000ull;
    else if (IS("pf")) (void)*(volatile uint64_t *)0x100000000ull;
#elif defined(__hppa__)
    else if (IS("break")) __asm__ volatile("break 0,0");
    else if (IS("ill")) __asm__ volatile(".word 0xfc000000");
#endif
    else {
        con_puts("trap error: unknown kind for this architecture\n");
        return EXIT_USAGE;
    }
    con_puts("trap error: no exception was taken\n");
    return EXIT_FAIL;
}
