/*
 * Value codec: CBOR bytes <-> a C value tree, with the mapping of
 * docs/wire-format.md section "Values".
 *
 * Design notes
 * - A tree is a rpci_value; containers hold their children inline in one
 *   malloc'd array (maps as key, value, key, value ...). A tree owns all of
 *   its memory; rpci_value_free releases a whole tree.
 * - The decoder works on a complete buffer, never reads past it and never
 *   recurses: it keeps an explicit stack of at most max_depth open
 *   containers (arrays, maps and tags). A claimed length or count is checked
 *   against the bytes that remain before anything is allocated, and
 *   container storage grows geometrically as children actually arrive, so
 *   memory stays proportional to the input, never to a claim.
 * - Duplicate map keys are detected by comparing the keys' canonical
 *   encodings (so 1 and 1.0 are different keys; 24 and 0x1818 the same).
 * - The encoder emits RFC 8949 section 4.2.1 core deterministic encoding:
 *   shortest heads, definite lengths, map keys sorted by the bytewise order
 *   of their encodings, floats in the shortest exact width, NaN as f97e00.
 *   It recurses, but refuses trees deeper than RPCI_VALUE_MAX_DEPTH.
 * - Decoded trees never contain undefined or other simple values unless
 *   the caller allows them (allow_simple, for diagnostic tools).
 */
#ifndef RPCI_WIRE_VALUE_H
#define RPCI_WIRE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

/* Containers (arrays, maps, tags) may nest at most this deep. */
#define RPCI_VALUE_MAX_DEPTH 64

typedef enum rpci_vkind {
  RPCI_V_NULL = 0,
  RPCI_V_BOOL,
  RPCI_V_UINT,      /* u.uint */
  RPCI_V_NINT,      /* the integer -1 - u.uint */
  RPCI_V_FLOAT,     /* u.f */
  RPCI_V_BYTES,     /* u.str */
  RPCI_V_TEXT,      /* u.str, valid UTF-8 */
  RPCI_V_ARRAY,     /* u.arr */
  RPCI_V_MAP,       /* u.arr, items[2i] key, items[2i+1] value; n = 2*pairs */
  RPCI_V_TAG,       /* u.tag */
  RPCI_V_UNDEFINED, /* only with allow_simple */
  RPCI_V_SIMPLE     /* u.simple; only with allow_simple */
} rpci_vkind;

typedef struct rpci_value rpci_value;
struct rpci_value {
  rpci_vkind kind;
  union {
    int boolean;
    uint64_t uint;
    double f;
    struct {
      uint8_t *p; /* malloc'd, NUL-terminated, never NULL once set */
      size_t len;
    } str;
    struct {
      rpci_value *items;
      size_t n;   /* items: elements (array), keys + values (map) */
      size_t cap; /* allocated slots in items */
    } arr;
    struct {
      uint64_t tag;
      rpci_value *content; /* malloc'd */
    } tag;
    uint8_t simple;
  } u;
};

/* Errors. Their names (rpci_verr_name) are the ones used in the test
 * vectors and are stable. */
enum rpci_verr {
  RPCI_VERR_OK = 0,
  RPCI_VERR_MALFORMED,     /* "malformed": not well-formed CBOR */
  RPCI_VERR_TRUNCATED,     /* "truncated": input ends inside an item, or a
                              length/count claims more than remains */
  RPCI_VERR_TRAILING,      /* "trailing": bytes after the one item */
  RPCI_VERR_DEPTH,         /* "depth": containers nested too deep */
  RPCI_VERR_UTF8,          /* "utf8": text string not valid UTF-8 */
  RPCI_VERR_DUPLICATE_KEY, /* "duplicate_key" */
  RPCI_VERR_UNSUPPORTED,   /* "unsupported": undefined or a simple value */
  RPCI_VERR_INVALID_TAG,   /* "invalid_tag": tag 0/1/2/3 with wrong content */
  RPCI_VERR_NOMEM          /* "nomem" */
};

/* The stable name of an error ("malformed", ...), "ok" for 0. */
const char *rpci_verr_name(int err);
/* The error with that name, or -1. */
int rpci_verr_from_name(const char *name);

typedef struct rpci_vdec_opts {
  int max_depth;    /* 0 (or more than the maximum): RPCI_VALUE_MAX_DEPTH */
  int allow_simple; /* accept undefined and simple(n) */
} rpci_vdec_opts;

/* Decodes exactly one item filling in[0..len). On success *out receives a
 * new tree (free with rpci_value_free). On error *out is NULL and *err_off
 * (may be NULL) receives the offset where the problem was found. */
int rpci_value_decode(const uint8_t *in, size_t len, const rpci_vdec_opts *opts, rpci_value **out,
                      size_t *err_off);
/* Decodes the first item of in[0..len) (a CBOR sequence); *used receives
 * its length on success, the error offset on failure. */
int rpci_value_decode_one(const uint8_t *in, size_t len, const rpci_vdec_opts *opts,
                          rpci_value **out, size_t *used);

/* Appends the deterministic encoding of v. Returns RPCI_VERR_OK, or DEPTH,
 * UTF8 (a text string that is not UTF-8), DUPLICATE_KEY (two keys with the
 * same encoding), MALFORMED (a map with an odd item count) or NOMEM; on error out may hold a
 * partial encoding. */
int rpci_value_encode(const rpci_value *v, rpci_buf *out);

/* Tree building. A value made by rpci_value_new is zeroed (RPCI_V_NULL). */
rpci_value *rpci_value_new(void);
/* Releases v's children and resets it to RPCI_V_NULL (v itself stays). */
void rpci_value_clear(rpci_value *v);
/* rpci_value_clear + free(v). NULL is fine. */
void rpci_value_free(rpci_value *v);
/* Sets v (which must be cleared) to a copy of p[0..len) as BYTES or TEXT
 * (kind chosen by the caller, text is not checked). Returns 0 or -1. */
int rpci_value_set_str(rpci_value *v, rpci_vkind kind, const void *p, size_t len);
/* Sets v to the integer sign * mag style value: neg ? -1 - n : n. */
void rpci_value_set_int(rpci_value *v, int neg, uint64_t n);
/* Appends a zeroed slot to an ARRAY or MAP (for a map, call twice: key then
 * value) and returns it, or
 * NULL when out of memory. The pointer is valid until the next append to
 * the same container. */
rpci_value *rpci_value_append(rpci_value *container);
/* For a TAG value: allocates the (NULL) content slot and returns it. */
rpci_value *rpci_value_tag_content(rpci_value *v, uint64_t tag);

/* Map lookup by text key / unsigned key; NULL when absent or not a map. */
const rpci_value *rpci_value_map_get(const rpci_value *map, const char *key);
const rpci_value *rpci_value_map_get_uint(const rpci_value *map, uint64_t key);

/* Structural equality: same kinds and contents; floats compare by value
 * with NaN equal to NaN and -0.0 different from 0.0; maps compare as sets
 * of pairs (in any order; meant for maps with unique keys). */
int rpci_value_equal(const rpci_value *a, const rpci_value *b);

#endif
