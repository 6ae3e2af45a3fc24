/* The portable entry point: runs the workload and exits with its status. */
#include "rt.h"

void runtime_main(void) {
    int status = guest_main();
    plat_exit(status);
}
