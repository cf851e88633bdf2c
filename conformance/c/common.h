/*
 * Shared helpers of the C conformance server and client driver
 * (conformance/README.md): the payload pattern, the CBOR messages of the
 * service and the values.json vectors.
 *
 * RPC goes through the public API (rpcnet/rpcnet.h, the shared library).
 * C has no public value API, so messages are built and read with the
 * library's internal value codec (wire/value.h) and values.json is read with
 * its JSON parser (wire/json.h), both from the white-box static library
 * rpcnet_internal.
 */
#ifndef CONFORMANCE_C_COMMON_H
#define CONFORMANCE_C_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"
#include "wire/json.h"
#include "wire/value.h"

#define M_EMPTY "conformance.Empty"
#define M_UNARY "conformance.Unary"
#define M_CLIENT_STREAM "conformance.ClientStream"
#define M_SERVER_STREAM "conformance.ServerStream"
#define M_BIDI "conformance.Bidi"
#define M_SLEEP "conformance.Sleep"
#define M_ECHO_VALUE "conformance.EchoValue"
#define M_ECHO_METADATA "conformance.EchoMetadata"

/* n bytes of the payload pattern (byte i is i % 251), malloc'd (never NULL
 * for n == 0; NULL when out of memory). */
uint8_t *cf_payload(size_t n);
/* Non-zero when p[0..n) is the payload pattern. */
int cf_payload_ok(const uint8_t *p, size_t n);

/* ---- message building: a map with text keys -------------------------- */

/* A new empty map, or NULL. */
rpci_value *cf_map(void);
/* Appends key: value; each returns 0 or -1 (out of memory). */
int cf_put_uint(rpci_value *map, const char *key, uint64_t n);
int cf_put_bytes(rpci_value *map, const char *key, const void *p, size_t len);
int cf_put_text(rpci_value *map, const char *key, const char *s);
/* Appends key: [] and returns the array, or NULL. */
rpci_value *cf_put_array(rpci_value *map, const char *key);
/* Appends an unsigned integer to an array; 0 or -1. */
int cf_push_uint(rpci_value *arr, uint64_t n);
/* Encodes v into a malloc'd buffer (*len its length) and frees v; NULL on
 * error (v freed too). */
uint8_t *cf_encode_free(rpci_value *v, size_t *len);
/* A map {key: n bytes of payload}, encoded (see cf_encode_free). */
uint8_t *cf_payload_msg(const char *key, size_t n, size_t *len);

/* ---- message reading --------------------------------------------------- */

/* Decodes p[0..n) and requires a map; NULL otherwise (err: a static reason). */
rpci_value *cf_decode_map(const void *p, size_t n, const char **err);
/* The unsigned integer at key; 0 when present, -1 when absent or another
 * kind. */
int cf_get_uint(const rpci_value *map, const char *key, uint64_t *out);
/* The byte string at key, or NULL. */
const rpci_value *cf_get_bytes(const rpci_value *map, const char *key);

/* ---- vectors ------------------------------------------------------------ */

typedef struct cf_vectors {
  rpci_value *root; /* the parsed values.json */
} cf_vectors;

/* Reads and parses path; 0, or -1 with a message on stderr. */
int cf_vectors_load(cf_vectors *vs, const char *path);
void cf_vectors_free(cf_vectors *vs);
/* The vectors array (NULL when missing). */
const rpci_value *cf_vectors_list(const cf_vectors *vs);
/* The vector named name, or NULL. */
const rpci_value *cf_vectors_find(const cf_vectors *vs, const char *name, size_t len);
/* A text field of a vector as a NUL-terminated string, or NULL. */
const char *cf_text_field(const rpci_value *obj, const char *key);
/* The bytes a vector's decoding must encode to (canonical, else hex),
 * malloc'd; NULL when missing or bad hex. */
uint8_t *cf_vector_canonical(const rpci_value *vec, size_t *len);
/* The vector's input bytes (hex), malloc'd; NULL when missing or bad hex. */
uint8_t *cf_vector_input(const rpci_value *vec, size_t *len);

/* Lowercase hex of p[0..n), at most max input bytes then "...";
 * malloc'd (NULL when out of memory). */
char *cf_hex(const uint8_t *p, size_t n, size_t max);

#endif
