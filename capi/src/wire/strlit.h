/*
 * JSON-style string literals, shared by the JSON reader and the diagnostic
 * notation parser: escapes (\" \\ \/ \b \f \n \r \t \uXXXX with surrogate
 * pairs) decoded to UTF-8.
 *
 * Design notes: pure function over a bounded input; never reads past len.
 */
#ifndef RPCI_WIRE_STRLIT_H
#define RPCI_WIRE_STRLIT_H

#include <stddef.h>

#include "wire/buf.h"

enum {
  RPCI_STRLIT_JSON = 1 /* strict JSON: no raw control characters, no \' */
};

/* Parses the body of a string literal from s[*pos] (just after the opening
 * quote) through its closing quote, appending the decoded UTF-8 bytes to
 * acc and advancing *pos past the quote. Returns 0, or an RPCI_VERR_* code
 * (value.h) with *why set to a static message. The result is checked to be
 * valid UTF-8. */
int rpci_strlit_parse(const char *s, size_t len, size_t *pos, int flags, rpci_buf *acc,
                      const char **why);

#endif
