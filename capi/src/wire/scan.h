/*
 * Incremental CBOR item scanner: finds where one data item ends in a byte
 * stream that arrives in pieces, checking well-formedness and limits on the
 * way, without keeping or interpreting the bytes. The frame reader uses it
 * to know when a header or status map is complete before decoding it.
 *
 * Design notes
 * - Constant memory: a head accumulator and a fixed stack of open
 *   containers (RPCI_VALUE_MAX_DEPTH); no allocation, no recursion.
 * - Depth is counted exactly as the value decoder counts it (arrays, maps
 *   and tags), so both reject the same inputs.
 * - `limit` bounds the item's total size: a head claiming a string or a
 *   count that cannot fit in what is left of the limit fails at once.
 * - The scanner never consumes bytes past the end of the item.
 */
#ifndef RPCI_WIRE_SCAN_H
#define RPCI_WIRE_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "wire/value.h"

enum rpci_scan_result {
  RPCI_SCAN_MORE = 0, /* item not complete yet: feed more */
  RPCI_SCAN_DONE = 1, /* item complete */
  RPCI_SCAN_MALFORMED = -1,
  RPCI_SCAN_TOO_LARGE = -2, /* over `limit` bytes */
  RPCI_SCAN_DEPTH = -3
};

typedef struct rpci_scan {
  size_t limit; /* maximum item size in bytes */
  size_t total; /* bytes consumed so far */
  uint8_t head[9];
  uint8_t head_len;
  uint64_t skip;   /* string payload bytes still to pass */
  int chunk_major; /* -1, or the major type of an open indefinite string */
  int depth;
  struct {
    uint64_t remaining; /* items still expected (definite) */
    uint8_t indef;
    uint8_t is_map;
    uint8_t odd; /* indefinite map: a key without its value so far */
  } stack[RPCI_VALUE_MAX_DEPTH];
  int done;
} rpci_scan;

void rpci_scan_init(rpci_scan *s, size_t limit);

/* Consumes bytes of in[0..len) up to the end of the item; *consumed receives
 * how many. Returns an rpci_scan_result; after an error or DONE the scanner
 * must be re-initialised before reuse. */
int rpci_scan_feed(rpci_scan *s, const uint8_t *in, size_t len, size_t *consumed);

#endif
