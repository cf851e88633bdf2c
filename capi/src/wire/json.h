/*
 * JSON (RFC 8259) <-> value tree. Used by the `rpcnet cbor` tool and by the
 * C tests to read the conformance/vectors files: the one JSON parser of the
 * project.
 *
 * Design notes
 * - The parser is strict RFC 8259: one value, whitespace around it, no
 *   comments, no trailing commas, strings valid UTF-8 (escapes included:
 *   an unpaired surrogate is an error), duplicate object keys an error. It
 *   recurses at most RPCI_VALUE_MAX_DEPTH containers deep and never reads
 *   past its input.
 * - Numbers: an integer literal (no fraction, no exponent) in
 *   [-2^64, 2^64-1] becomes an integer, any other number a float (nearest
 *   double; a number beyond the float64 range is an error, so JSON never
 *   yields an infinity). -0 is the integer 0; -0.0 the float -0.0.
 * - The writer follows RFC 8949 section 6.1: byte strings become base64url
 *   strings without padding, tags are dropped (content kept), NaN,
 *   infinities, undefined and simple values become null, map keys that are
 *   not text become their diagnostic notation. It is deterministic.
 */
#ifndef RPCI_WIRE_JSON_H
#define RPCI_WIRE_JSON_H

#include <stddef.h>

#include "wire/buf.h"
#include "wire/value.h"

/* Parses s[0..len). Returns RPCI_VERR_OK with *out a new tree, or an error
 * (MALFORMED, TRAILING, DEPTH, UTF8, DUPLICATE_KEY, NOMEM) with *err_off
 * and *err_msg (both may be NULL). */
int rpci_json_parse(const char *s, size_t len, rpci_value **out, size_t *err_off,
                    const char **err_msg);

/* Appends v as JSON; pretty: newlines and two-space indentation. Returns 0
 * or -1 (out of memory, or nesting beyond RPCI_VALUE_MAX_DEPTH). */
int rpci_json_write(const rpci_value *v, rpci_buf *out, int pretty);

#endif
