// The declarations in include/CFuzz.h are defined by libFuzzer, linked only into fuzzing builds.
#include "CFuzz.h"
