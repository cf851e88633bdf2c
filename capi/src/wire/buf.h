/*
 * rpci_buf: a growable byte buffer, the one output type of every encoder.
 *
 * Design notes: plain value type with no locking; whoever holds it owns it.
 * Growth is geometric so appends are amortised O(1). All functions return
 * 0 on success and -1 when memory cannot be had (the buffer is then
 * unchanged).
 */
#ifndef RPCI_WIRE_BUF_H
#define RPCI_WIRE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct rpci_buf {
  uint8_t *data; /* malloc'd, or NULL while cap == 0 */
  size_t len;
  size_t cap;
} rpci_buf;

#define RPCI_BUF_INIT \
  { NULL, 0, 0 }

/* Ensures room for `extra` more bytes. Returns 0 or -1 (out of memory). */
int rpci_buf_reserve(rpci_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or -1. */
int rpci_buf_append(rpci_buf *b, const void *p, size_t n);
/* Appends one byte. Returns 0 or -1. */
int rpci_buf_push(rpci_buf *b, uint8_t byte);
/* Hands the storage to the caller (who frees it with free()) and resets b. */
uint8_t *rpci_buf_detach(rpci_buf *b, size_t *len);
/* Frees the storage and resets b. */
void rpci_buf_free(rpci_buf *b);

#endif
