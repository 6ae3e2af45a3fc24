/* echo: reads console lines (ended by CR, LF or CR LF) and answers each with a running count,
 * its length and the line reversed; the line "quit" ends the guest with status 0.
 *   echo ready
 *   echo n=1 len=5 rev=olleh
 *   echo bye n=1
 * Input is not echoed as it is typed. Lines longer than 256 bytes are answered with their full
 * length and the reverse of their first 256 bytes. */
#include "rt.h"

#define LINE_MAX 256

int guest_main(void) {
    static char line[LINE_MAX];
    uint32_t len = 0, count = 0;
    int prev_cr = 0;
    con_puts("echo ready\n");
    plat_console_input_enable();
    for (;;) {
        uint32_t seen = plat_irq_count();
        int c = plat_console_getc();
        if (c < 0) {
            plat_wait_irq(seen);
            continue;
        }
        if (c == '\n' && prev_cr) {
            prev_cr = 0;
            continue;
        }
        prev_cr = c == '\r';
        if (c != '\r' && c != '\n') {
            if (len < LINE_MAX) line[len] = (char)c;
            len++;
            continue;
        }
        if (len == 4 && strncmp(line, "quit", 4) == 0) {
            con_printf("echo bye n=%u\n", count);
            return EXIT_OK;
        }
        count++;
        con_printf("echo n=%u len=%u rev=", count, len);
        for (uint32_t i = len < LINE_MAX ? len : LINE_MAX; i > 0; i--) con_putc((unsigned char)line[i - 1]);
        con_putc('\n');
        len = 0;
    }
}
