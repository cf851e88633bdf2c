/* String literals: see strlit.h. */
#include "wire/strlit.h"

#include <stdint.h>
#include <string.h>

#include "wire/utf8.h"
#include "wire/value.h"

static int hex4(const char *s, size_t len, size_t *pos, uint32_t *out) {
  if (len - *pos < 4) return -1;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[*pos + i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v << 4 | (uint32_t)d;
  }
  *pos += 4;
  *out = v;
  return 0;
}

static int fail(const char **why, int code, const char *msg) {
  *why = msg;
  return code;
}

/* One escape after the backslash; *cp receives the code point. */
static int escape(const char *s, size_t len, size_t *pos, int flags, uint32_t *cp,
                  const char **why) {
  if (*pos >= len) return fail(why, RPCI_VERR_MALFORMED, "unterminated string");
  char c = s[(*pos)++];
  static const char from[] = "\"\\/bfnrt'", to[] = "\"\\/\b\f\n\r\t'";
  const char *hit = c ? strchr(from, c) : NULL;
  if (hit && !(c == '\'' && (flags & RPCI_STRLIT_JSON))) {
    *cp = (unsigned char)to[hit - from];
    return 0;
  }
  if (c != 'u') return fail(why, RPCI_VERR_MALFORMED, "bad escape");
  if (hex4(s, len, pos, cp)) return fail(why, RPCI_VERR_MALFORMED, "bad \\u escape");
  if (*cp >= 0xdc00 && *cp <= 0xdfff)
    return fail(why, RPCI_VERR_UTF8, "unpaired surrogate in \\u escape");
  if (*cp >= 0xd800 && *cp <= 0xdbff) {
    uint32_t lo;
    if (len - *pos < 2 || s[*pos] != '\\' || s[*pos + 1] != 'u')
      return fail(why, RPCI_VERR_UTF8, "unpaired surrogate in \\u escape");
    *pos += 2;
    if (hex4(s, len, pos, &lo) || lo < 0xdc00 || lo > 0xdfff)
      return fail(why, RPCI_VERR_UTF8, "unpaired surrogate in \\u escape");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  return 0;
}

int rpci_strlit_parse(const char *s, size_t len, size_t *pos, int flags, rpci_buf *acc,
                      const char **why) {
  size_t start = acc->len;
  for (;;) {
    if (*pos >= len) return fail(why, RPCI_VERR_MALFORMED, "unterminated string");
    unsigned char c = (unsigned char)s[(*pos)++];
    if (c == '"') break;
    if (c < 0x20 && (flags & RPCI_STRLIT_JSON))
      return fail(why, RPCI_VERR_MALFORMED, "control character in string");
    if (c != '\\') {
      if (rpci_buf_push(acc, c)) return fail(why, RPCI_VERR_NOMEM, "out of memory");
      continue;
    }
    uint32_t cp;
    int e = escape(s, len, pos, flags, &cp, why);
    if (e) return e;
    uint8_t u[4];
    if (rpci_buf_append(acc, u, rpci_utf8_put(u, cp)))
      return fail(why, RPCI_VERR_NOMEM, "out of memory");
  }
  if (acc->len > start && !rpci_utf8_valid(acc->data + start, acc->len - start))
    return fail(why, RPCI_VERR_UTF8, "text string is not valid UTF-8");
  return 0;
}
