#ifndef CNEEDLEFUZZER_H
#define CNEEDLEFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this binary was built with libFuzzer linked in (Fuzz/run passes -DNEEDLE_FUZZING), else 0.
int needle_fuzzer_available(void);

/// Hands control to libFuzzer's driver with `callback` as the target; only when needle_fuzzer_available().
int needle_fuzzer_run(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
