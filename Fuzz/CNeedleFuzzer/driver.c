// SwiftPM gives an executable target its own entry point, so libFuzzer's main() cannot be used; the
// fuzzer is started from Swift through LLVMFuzzerRunDriver instead. In a plain build there is no libFuzzer
// and the executables replay saved inputs.
#include "CNeedleFuzzer.h"

#ifdef NEEDLE_FUZZING
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int needle_fuzzer_available(void) { return 1; }

int needle_fuzzer_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
#else
int needle_fuzzer_available(void) { return 0; }

int needle_fuzzer_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    (void)argc; (void)argv; (void)callback;
    return -1;
}
#endif
