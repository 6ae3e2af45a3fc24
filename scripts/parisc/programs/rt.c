/* tiny freestanding runtime: string/memory routines (compiled with -fno-builtin) */
typedef unsigned long size_t;
void *memcpy(void *d, const void *s, size_t n) {
  unsigned char *dp = d; const unsigned char *sp = s;
  if ((((unsigned long)dp | (unsigned long)sp) & 3) == 0) {
    while (n >= 16) { unsigned *dw=(unsigned*)dp; const unsigned *sw=(const unsigned*)sp;
      dw[0]=sw[0]; dw[1]=sw[1]; dw[2]=sw[2]; dw[3]=sw[3]; dp+=16; sp+=16; n-=16; }
    while (n >= 4) { *(unsigned*)dp = *(const unsigned*)sp; dp+=4; sp+=4; n-=4; }
  }
  while (n--) *dp++ = *sp++;
  return d;
}
void *memmove(void *d, const void *s, size_t n) {
  unsigned char *dp = d; const unsigned char *sp = s;
  if (dp < sp) while (n--) *dp++ = *sp++;
  else { dp += n; sp += n; while (n--) *--dp = *--sp; }
  return d;
}
void *memset(void *d, int c, size_t n) {
  unsigned char *p = d; unsigned w = (unsigned char)c; w |= w << 8; w |= w << 16;
  while (n && ((unsigned long)p & 3)) { *p++ = c; n--; }
  while (n >= 4) { *(unsigned*)p = w; p += 4; n -= 4; }
  while (n--) *p++ = c;
  return d;
}
int memcmp(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++) if (*x != *y) return *x - *y;
  return 0;
}
size_t strlen(const char *s) { const char *p = s; while (*p) p++; return p - s; }
int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) { a++; b++; }
  return (unsigned char)*a - (unsigned char)*b;
}
int strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) { if (*a != *b) return (unsigned char)*a - (unsigned char)*b; if (!*a) break; }
  return 0;
}
char *strcpy(char *d, const char *s) { char *r = d; while ((*d++ = *s++)); return r; }
char *strncpy(char *d, const char *s, size_t n) { size_t i=0; for (; i<n && s[i]; i++) d[i]=s[i]; for (; i<n; i++) d[i]=0; return d; }
char *strchr(const char *s, int c) { for (;; s++) { if (*s == (char)c) return (char*)s; if (!*s) return 0; } }
char *strcat(char *d, const char *s) { strcpy(d + strlen(d), s); return d; }
void plat_exit(int) __attribute__((noreturn));
void abort(void) { plat_exit(134); }
void exit(int c) { plat_exit(c); }
