/* hello: one line naming the architecture. */
#include "rt.h"

int guest_main(void) {
    con_printf("Hello from %s\n", plat_arch_name());
    return EXIT_OK;
}
