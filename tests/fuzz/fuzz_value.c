/*
 * libFuzzer target: value decoder. For every input that decodes (strict,
 * and again with simple values allowed):
 *  - encode(decode(x)) decodes, equals the first tree, and re-encodes to
 *    the same bytes (a fixed point: the output is canonical);
 *  - the diagnostic notation of the tree parses back to the same encoding;
 *  - the JSON writer does not fail.
 * Inputs that fail must fail without output and within the input.
 */
#include <stdlib.h>
#include <string.h>

#include "wire/diag.h"
#include "wire/json.h"
#include "wire/value.h"

static void check(const uint8_t *data, size_t size, int allow_simple) {
  rpci_vdec_opts o = {.allow_simple = allow_simple};
  rpci_value *v = NULL;
  size_t off = 0;
  int e = rpci_value_decode(data, size, &o, &v, &off);
  if (off > size) abort();
  if (e) {
    if (v) abort();
    return;
  }
  rpci_buf c1 = RPCI_BUF_INIT, c2 = RPCI_BUF_INIT, d = RPCI_BUF_INIT, j = RPCI_BUF_INIT;
  if (rpci_value_encode(v, &c1)) abort();
  rpci_value *v2 = NULL;
  if (rpci_value_decode(c1.data, c1.len, &o, &v2, NULL)) abort();
  if (!rpci_value_equal(v, v2)) abort();
  if (rpci_value_encode(v2, &c2)) abort();
  if (c1.len != c2.len || memcmp(c1.data, c2.data, c1.len)) abort();
  /* diagnostic notation round trip */
  if (rpci_diag_write(v2, &d)) abort();
  rpci_value *pv = NULL;
  if (rpci_diag_parse((const char *)d.data, d.len, &pv, NULL, NULL)) abort();
  rpci_buf c3 = RPCI_BUF_INIT;
  if (rpci_value_encode(pv, &c3)) abort();
  if (c3.len != c1.len || memcmp(c3.data, c1.data, c1.len)) abort();
  if (rpci_json_write(v2, &j, 1)) abort();
  rpci_value_free(pv);
  rpci_value_free(v);
  rpci_value_free(v2);
  rpci_buf_free(&c1);
  rpci_buf_free(&c2);
  rpci_buf_free(&c3);
  rpci_buf_free(&d);
  rpci_buf_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size, 0);
  check(data, size, 1);
  /* the first item of a CBOR sequence */
  rpci_value *v = NULL;
  size_t used = 0;
  if (rpci_value_decode_one(data, size, NULL, &v, &used) == 0 && used > size) abort();
  rpci_value_free(v);
  return 0;
}
