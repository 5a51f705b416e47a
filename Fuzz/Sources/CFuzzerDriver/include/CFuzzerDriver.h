#ifndef PETREL_CFUZZERDRIVER_H
#define PETREL_CFUZZERDRIVER_H

/// Hands the process over to libFuzzer (linked by `-sanitize=fuzzer`), running the target's
/// `LLVMFuzzerTestOneInput`. SwiftPM points `main` at `<Module>_main` of an executable target; each fuzz
/// target defines that symbol and calls this, so the fuzzer runs whichever `main` the linker picks.
int petrel_run_fuzzer(int argc, char **argv);

#endif
