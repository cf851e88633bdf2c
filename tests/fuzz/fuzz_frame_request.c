/* libFuzzer target: request-direction frame reader (see fuzz_frame.h). */
#include "fuzz_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_frames(RPCI_DIR_REQUEST, data, size);
  return 0;
}
