/*
 * CBOR diagnostic notation (RFC 8949 section 8, with the RFC 8610 Appendix G
 * extensions h'' and b64''): print a value tree, and parse text back into
 * one.
 *
 * Design notes
 * - The printer is deterministic: one text per tree. It writes the value,
 *   not the encoding (no encoding indicators): integers in decimal, floats
 *   in the shortest decimal form that reads back exactly (always with a
 *   '.' or an exponent, e.g. 1.0, 1.0e+300, 5.960464477539063e-8),
 *   Infinity, -Infinity, NaN, byte strings as h'..' (lowercase), text
 *   strings ASCII-only with JSON escapes (\u00fc, surrogate pairs above
 *   U+FFFF), tags as N(..), maps in tree order with ": " and ", ".
 * - The parser accepts that output plus indefinite-length forms
 *   ([_ ...], {_ ...}, (_ "a", "b") chunked strings), encoding indicators
 *   after numbers (1.5_1), 0x/0o/0b integers, b64'..', undefined,
 *   simple(n), /comments/ and whitespace. It recurses, but at most
 *   RPCI_VALUE_MAX_DEPTH containers deep, and never reads past its input.
 */
#ifndef RPCI_WIRE_DIAG_H
#define RPCI_WIRE_DIAG_H

#include <stddef.h>

#include "wire/buf.h"
#include "wire/value.h"

/* Appends the diagnostic notation of v (no trailing NUL). Returns 0 or -1
 * (out of memory, or nesting beyond RPCI_VALUE_MAX_DEPTH). */
int rpci_diag_write(const rpci_value *v, rpci_buf *out);

/* Parses one value from s[0..len) (surrounding whitespace allowed). Returns
 * RPCI_VERR_OK with *out a new tree, or an error (MALFORMED for syntax,
 * TRAILING, DEPTH, UTF8, NOMEM) with *err_off the offset and *err_msg a
 * static description (both may be NULL). */
int rpci_diag_parse(const char *s, size_t len, rpci_value **out, size_t *err_off,
                    const char **err_msg);

/* Writes the shortest decimal that reads back as exactly d, in the form the
 * printer uses ("1.0", "1.0e+300", "NaN", "-Infinity"). Returns its length;
 * buf needs 40 bytes. */
size_t rpci_fmt_double(char buf[40], double d);

/* Writes the decimal of the integer neg ? -1 - n : n. buf needs 22 bytes. */
size_t rpci_fmt_int(char buf[24], int neg, uint64_t n);

#endif
