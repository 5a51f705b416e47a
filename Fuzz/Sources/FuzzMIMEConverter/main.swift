import FuzzSupport

// The entry point: SwiftPM links an executable's `main` to this file's code, which hands over to libFuzzer;
// libFuzzer then calls this target's `LLVMFuzzerTestOneInput` for every input.
exit(runLibFuzzer(CommandLine.argc, CommandLine.unsafeArgv))
