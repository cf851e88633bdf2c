/* rpci_buf: see buf.h. */
#include "wire/buf.h"

#include <stdlib.h>
#include <string.h>

int rpci_buf_reserve(rpci_buf *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int rpci_buf_append(rpci_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (rpci_buf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int rpci_buf_push(rpci_buf *b, uint8_t byte) { return rpci_buf_append(b, &byte, 1); }

uint8_t *rpci_buf_detach(rpci_buf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void rpci_buf_free(rpci_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
