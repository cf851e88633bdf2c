/*
 * libFuzzer target: JSON reader/writer. For text that parses: the tree
 * encodes and decodes to an equal tree, the JSON written for it parses back
 * to the same encoding (JSON trees hold no bytes, tags or non-finite
 * floats, so the writer loses nothing), and the output is deterministic.
 */
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"
#include "wire/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rpci_value *v = NULL;
  size_t off = 0;
  if (rpci_json_parse((const char *)data, size, &v, &off, NULL)) {
    if (v || off > size) abort();
    return 0;
  }
  rpci_buf c1 = RPCI_BUF_INIT, j = RPCI_BUF_INIT, c2 = RPCI_BUF_INIT, j2 = RPCI_BUF_INIT;
  if (rpci_value_encode(v, &c1)) abort();
  rpci_value *v2 = NULL;
  if (rpci_value_decode(c1.data, c1.len, NULL, &v2, NULL)) abort();
  if (!rpci_value_equal(v, v2)) abort();
  if (rpci_json_write(v2, &j, 0)) abort();
  rpci_value *v3 = NULL;
  if (rpci_json_parse((const char *)j.data, j.len, &v3, NULL, NULL)) abort();
  if (rpci_value_encode(v3, &c2)) abort();
  if (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len)) abort();
  if (rpci_json_write(v3, &j2, 0)) abort();
  if (j.len != j2.len || memcmp(j.data, j2.data, j.len)) abort();
  rpci_value_free(v);
  rpci_value_free(v2);
  rpci_value_free(v3);
  rpci_buf_free(&c1);
  rpci_buf_free(&c2);
  rpci_buf_free(&j);
  rpci_buf_free(&j2);
  return 0;
}
