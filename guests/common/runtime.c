/* The portable entry point: runs the workload and exits with its status. */
#include "rt.h"

void runtime_main(void) {
    if (plat_cmdline_truncated()) {
        con_printf("error: the command line is longer than %u bytes\n", (unsigned)(CMDLINE_MAX - 1));
        plat_exit(EXIT_USAGE);
    }
    int status = guest_main();
    plat_exit(status);
}
