/*
 * libFuzzer target: diagnostic-notation parser. For text that parses and
 * encodes: the encoding decodes (simple values allowed), printing that tree
 * and parsing the print gives the same encoding, and encoding is a fixed
 * point.
 */
#include <stdlib.h>
#include <string.h>

#include "wire/diag.h"
#include "wire/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rpci_value *v = NULL;
  size_t off = 0;
  if (rpci_diag_parse((const char *)data, size, &v, &off, NULL)) {
    if (v || off > size) abort();
    return 0;
  }
  rpci_buf c1 = RPCI_BUF_INIT;
  int e = rpci_value_encode(v, &c1);
  rpci_value_free(v);
  if (e) { /* duplicate keys are only found when encoding */
    if (e != RPCI_VERR_DUPLICATE_KEY) abort();
    rpci_buf_free(&c1);
    return 0;
  }
  rpci_vdec_opts o = {.allow_simple = 1};
  rpci_value *v2 = NULL;
  e = rpci_value_decode(c1.data, c1.len, &o, &v2, NULL);
  if (e && e != RPCI_VERR_INVALID_TAG) abort(); /* e.g. 1("x") parses */
  if (!e) {
    rpci_buf d = RPCI_BUF_INIT, c2 = RPCI_BUF_INIT;
    if (rpci_diag_write(v2, &d)) abort();
    rpci_value *v3 = NULL;
    if (rpci_diag_parse((const char *)d.data, d.len, &v3, NULL, NULL)) abort();
    if (rpci_value_encode(v3, &c2)) abort();
    if (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len)) abort();
    rpci_value_free(v3);
    rpci_buf_free(&d);
    rpci_buf_free(&c2);
  }
  rpci_value_free(v2);
  rpci_buf_free(&c1);
  return 0;
}
