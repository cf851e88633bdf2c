/*
 * UTF-8 validation (RFC 3629): the one check behind "text strings must be
 * valid UTF-8" everywhere in the wire code.
 *
 * Design notes: pure, no allocation. Rejects overlong forms, surrogates
 * (U+D800..U+DFFF), code points above U+10FFFF and truncated sequences.
 * NUL bytes are valid UTF-8 and accepted.
 */
#ifndef RPCI_WIRE_UTF8_H
#define RPCI_WIRE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 when s[0..len) is valid UTF-8, else 0. */
int rpci_utf8_valid(const uint8_t *s, size_t len);

/* Decodes one code point at s[0..len): returns its byte length (1..4) and
 * sets *cp, or 0 when the sequence is invalid or truncated. */
size_t rpci_utf8_next(const uint8_t *s, size_t len, uint32_t *cp);

/* Writes cp (<= 0x10FFFF, not a surrogate) as UTF-8; returns 1..4, 0 when
 * cp is not a scalar value. */
size_t rpci_utf8_put(uint8_t out[4], uint32_t cp);

#endif
