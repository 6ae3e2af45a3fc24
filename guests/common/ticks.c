/* ticks: runs the periodic timer at hz=H (default 100) until ticks=N interrupts (default 50)
 * have been counted, reading the cycle counter (TSC / CR16) at each tick it observes.
 *
 * Output (numbers in decimal):
 *   ticks hz=100 target=50 clock=tsc
 *   ticks count=50 first=T1 last=TN delta=TN-T1 per_tick=(TN-T1)/(N-1)
 *   ticks samples 1:T1 13:T13 25:T25 37:T37 50:T50
 * Tk is the counter read when the guest first saw tick k (five samples: ticks 1, N/4, N/2, 3N/4
 * and N, more exactly 1 + (N-1)*i/4). count is the number of ticks counted when the guest
 * stopped the timer (>= N; more than N only if ticks arrived while it was not looking).
 *
 * Memory writer (for live state transfer measurements): with dirty=P (pages per tick) the guest
 * first writes every page of a region of span=M MiB (default 8) starting at 8 MiB, above the
 * image, then writes P pages of it at each tick it observes, cycling through the region, so it
 * dirties P * hz pages per second. It prints one more line after the first:
 *   ticks dirty=P span=M
 * The region must lie inside RAM (M <= RAM in MiB - 8). */
#include "rt.h"

/* The writer's region starts above every guest image (both link scripts end them below 8 MiB). */
#define DIRTY_BASE 0x800000u
#define PAGE_SIZE 4096u

/* Writes one word into each of `count` pages of the region, from page *cursor on, wrapping. */
static void dirty_pages(uint32_t count, uint32_t span_pages, uint32_t *cursor, uint32_t stamp) {
    for (uint32_t i = 0; i < count; i++) {
        volatile uint32_t *word = (volatile uint32_t *)(uintptr_t)(DIRTY_BASE + *cursor * PAGE_SIZE);
        *word = stamp;
        if (++*cursor == span_pages) *cursor = 0;
    }
}

int guest_main(void) {
    uint32_t hz = (uint32_t)cmdline_u64("hz", 100, 19, 10000);
    uint32_t target = (uint32_t)cmdline_u64("ticks", 50, 1, 100000000);
    uint32_t sample_at[5];
    uint64_t sample_val[5] = {0, 0, 0, 0, 0};
    for (int i = 0; i < 5; i++) sample_at[i] = 1 + (uint32_t)(((uint64_t)(target - 1) * (uint64_t)i) / 4);

    uint32_t dirty = (uint32_t)cmdline_u64("dirty", 0, 0, 1u << 20);
    uint32_t span_pages = (uint32_t)cmdline_u64("span", 8, 1, 3064) * (1u << 20) / PAGE_SIZE;
    uint32_t cursor = 0;
    con_printf("ticks hz=%u target=%u clock=%s\n", hz, target, plat_time_name());
    if (dirty) {
        con_printf("ticks dirty=%u span=%u\n", dirty, span_pages / ((1u << 20) / PAGE_SIZE));
        dirty_pages(span_pages, span_pages, &cursor, 1);
    }
    uint32_t base = plat_timer_ticks();
    if (plat_timer_start(hz) != 0) {
        con_printf("ticks error: cannot run the timer at %u Hz\n", hz);
        return EXIT_USAGE;
    }
    uint32_t got = 0, now_ticks = 0;
    uint64_t first = 0, last = 0;
    while (got < target) {
        uint32_t seen = plat_irq_count();
        now_ticks = plat_timer_ticks() - base;
        if (now_ticks == got) {
            plat_wait_irq(seen);
            continue;
        }
        uint64_t t = plat_time_read();
        uint32_t upto = now_ticks < target ? now_ticks : target;
        for (uint32_t k = got + 1; k <= upto; k++) {
            if (k == 1) first = t;
            if (k == target) last = t;
            for (int i = 0; i < 5; i++)
                if (sample_at[i] == k) sample_val[i] = t;
        }
        if (dirty) {
            /* P pages for each tick that passed, at most the whole region. */
            uint64_t pages = (uint64_t)dirty * (now_ticks - got);
            dirty_pages(pages < span_pages ? (uint32_t)pages : span_pages, span_pages, &cursor, now_ticks + 1);
        }
        got = now_ticks;
    }
    plat_timer_stop();
    uint64_t delta = last - first;
    uint64_t per_tick = target > 1 ? delta / (target - 1) : 0;
    con_printf("ticks count=%u first=%llu last=%llu delta=%llu per_tick=%llu\n", got, (unsigned long long)first,
               (unsigned long long)last, (unsigned long long)delta, (unsigned long long)per_tick);
    con_puts("ticks samples");
    for (int i = 0; i < 5; i++) con_printf(" %u:%llu", sample_at[i], (unsigned long long)sample_val[i]);
    con_puts("\n");
    return EXIT_OK;
}
