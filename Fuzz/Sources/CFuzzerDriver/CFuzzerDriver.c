#include "CFuzzerDriver.h"

#include <stddef.h>
#include <stdint.h>

// Both are libFuzzer's interface (https://llvm.org/docs/LibFuzzer.html): the first is in its runtime, the
// second is defined by the fuzz target, in Swift, with @_cdecl.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int petrel_run_fuzzer(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
