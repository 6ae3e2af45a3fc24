// libFuzzer's entry point for programs that have their own main (from compiler-rt's
// FuzzerInterface.h): Swift cannot declare a C function it links against without a header.
#ifndef LOCKSTEP_CFUZZ_H
#define LOCKSTEP_CFUZZ_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
