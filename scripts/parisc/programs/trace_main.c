/* A short driver for instruction-by-instruction comparison with qemu-hppa: the millicode-heavy
 * tests (multiply, divide, 64-bit), a jump-table switch, function pointers and strings. */
void plat_putc(char c);
unsigned muldiv_test(void); unsigned long long ll_test(void); int switch_test(void);
int fptr_test(void); int str_test(void);
static void putx(unsigned v) { for (int i = 28; i >= 0; i -= 4) plat_putc("0123456789abcdef"[(v >> i) & 15]); }
int main(void) {
  unsigned long long l = ll_test();
  putx(muldiv_test()); plat_putc(' '); putx((unsigned)(l >> 32)); putx((unsigned)l); plat_putc(' ');
  putx(switch_test()); plat_putc(' '); putx(fptr_test()); plat_putc(' '); putx(str_test());
  plat_putc('\n');
  return 0;
}
