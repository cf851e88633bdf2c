/*
 * CBOR primitives: item heads and floats (RFC 8949 sections 3 and 4.2.1).
 *
 * Design notes
 * - Pure functions on caller-provided memory: no allocation, no state.
 * - Heads are always written in the shortest form (core deterministic
 *   encoding); the parser accepts every well-formed head, long forms too.
 * - A parser never reads past the `len` bytes it is given: it reports how
 *   many bytes the head needs (rpci_head_size) before looking at them.
 * - Floats are written in the shortest of binary16/32/64 that keeps the
 *   exact value; every NaN is written as f97e00.
 */
#ifndef RPCI_WIRE_PRIM_H
#define RPCI_WIRE_PRIM_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

enum {
  RPCI_MT_UINT = 0,
  RPCI_MT_NINT = 1,
  RPCI_MT_BYTES = 2,
  RPCI_MT_TEXT = 3,
  RPCI_MT_ARRAY = 4,
  RPCI_MT_MAP = 5,
  RPCI_MT_TAG = 6,
  RPCI_MT_SIMPLE = 7
};

#define RPCI_AI_INDEF 31

/* A parsed head. For major type 7, `arg` holds the simple value (ai < 24 or
 * ai == 24) or the raw float bits (ai 25, 26, 27). */
typedef struct rpci_head {
  uint8_t major; /* 0..7 */
  uint8_t ai;    /* additional information, 0..27 or 31 */
  uint8_t size;  /* bytes in the head, 1..9 */
  uint8_t indef; /* ai == 31 */
  uint64_t arg;  /* argument (length, count, value, tag, simple, bits) */
} rpci_head;

/* Size of the head that starts with initial byte ib: 1..9, or 0 when the
 * additional information is reserved (28..30): not well-formed. */
size_t rpci_head_size(uint8_t ib);

/* Parses a head from in[0..len). Returns 1 and fills h when complete; 0 when
 * more bytes are needed (len < rpci_head_size(in[0]) or len == 0); -1 when
 * not well-formed: reserved ai 28..30, ai 31 on major 0, 1 or 6, or a
 * two-byte simple value below 32. */
int rpci_head_parse(const uint8_t *in, size_t len, rpci_head *h);

/* Writes the shortest head for (major, arg) into out[9]; returns 1..9. */
size_t rpci_head_write(uint8_t out[9], int major, uint64_t arg);
/* Appends the shortest head. Returns 0 or -1 (out of memory). */
int rpci_head_append(rpci_buf *b, int major, uint64_t arg);

/* binary16 bits to double, exactly. */
double rpci_half_to_double(uint16_t h);
/* Appends the shortest exact float encoding of d (NaN as f97e00). */
int rpci_float_append(rpci_buf *b, double d);

#endif
