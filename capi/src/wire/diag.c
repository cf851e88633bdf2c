/* Diagnostic notation printer and parser: see diag.h. */
#include "wire/diag.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/strlit.h"
#include "wire/utf8.h"

/* ---- numbers ------------------------------------------------------------ */

size_t rpci_fmt_int(char buf[24], int neg, uint64_t n) {
  char tmp[24];
  size_t k = 0;
  /* -1 - n == -(n + 1); n + 1 may be 2^64, so add one in decimal. */
  do {
    tmp[k++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  if (neg) {
    size_t i = 0;
    while (i < k && tmp[i] == '9') tmp[i++] = '0';
    if (i == k)
      tmp[k++] = '1';
    else
      tmp[i]++;
  }
  size_t o = 0;
  if (neg) buf[o++] = '-';
  while (k) buf[o++] = tmp[--k];
  buf[o] = 0;
  return o;
}

/* e holds "%.*e" of d with p digits. Replaces it with the p-digit
 * neighbour (mantissa +-1) that reads back as d, if there is one. */
static int alt_digits(char e[40], int p, double d) {
  const char *q = e;
  int neg = *q == '-';
  if (neg) q++;
  uint64_t m = 0;
  for (; *q && *q != 'e'; q++)
    if (*q != '.') m = m * 10 + (uint64_t)(*q - '0');
  int x = atoi(q + 1) - (p - 1);
  for (int delta = -1; delta <= 1; delta += 2) {
    char t[48];
    snprintf(t, sizeof t, "%s%llue%d", neg ? "-" : "",
             (unsigned long long)(m + (uint64_t)(int64_t)delta), x);
    if (strtod(t, NULL) == d) {
      /* normalise back to the %e shape: D.DDDe[+-]X */
      char digits[24];
      int nd = snprintf(digits, sizeof digits, "%llu",
                        (unsigned long long)(m + (uint64_t)(int64_t)delta));
      int xe = x + nd - 1;
      size_t o = 0;
      if (neg) e[o++] = '-';
      e[o++] = digits[0];
      if (nd > 1) {
        e[o++] = '.';
        for (int i = 1; i < nd; i++) e[o++] = digits[i];
      }
      snprintf(e + o, 40 - o, "e%+d", xe);
      return 1;
    }
  }
  return 0;
}

size_t rpci_fmt_double(char buf[40], double d) {
  if (isnan(d)) return (size_t)snprintf(buf, 40, "NaN");
  if (isinf(d)) return (size_t)snprintf(buf, 40, d < 0 ? "-Infinity" : "Infinity");
  char e[40];
  int p;
  for (p = 1; p <= 17; p++) {
    snprintf(e, sizeof e, "%.*e", p - 1, d);
    if (strtod(e, NULL) == d) break;
    /* The correctly rounded p digits may miss while a neighbour hits (next
     * to a power of two the doubles below are closer): try M-1 and M+1. */
    if (p >= 2 && alt_digits(e, p, d)) break;
  }
  /* e is [-]D[.DDD]e[+-]XX: split into sign, digits and exponent. */
  const char *q = e;
  int neg = *q == '-';
  if (neg) q++;
  char digits[24];
  size_t nd = 0;
  for (; *q && *q != 'e'; q++)
    if (*q != '.') digits[nd++] = *q;
  digits[nd] = 0;
  int x = atoi(q + 1);
  while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
  size_t o = 0;
  if (neg) buf[o++] = '-';
  if (x >= -5 && x < 16) {
    if (x < 0) {
      buf[o++] = '0';
      buf[o++] = '.';
      for (int i = 0; i < -x - 1; i++) buf[o++] = '0';
      for (size_t i = 0; i < nd; i++) buf[o++] = digits[i];
    } else {
      for (int i = 0; i <= x; i++) buf[o++] = (size_t)i < nd ? digits[i] : '0';
      buf[o++] = '.';
      if ((size_t)x + 1 < nd)
        for (size_t i = (size_t)x + 1; i < nd; i++) buf[o++] = digits[i];
      else
        buf[o++] = '0';
    }
  } else {
    buf[o++] = digits[0];
    buf[o++] = '.';
    if (nd > 1)
      for (size_t i = 1; i < nd; i++) buf[o++] = digits[i];
    else
      buf[o++] = '0';
    o += (size_t)snprintf(buf + o, 40 - o, "e%c%d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  }
  buf[o] = 0;
  return o;
}

/* ---- printer ------------------------------------------------------------ */

static int put(rpci_buf *b, const char *s) { return rpci_buf_append(b, s, strlen(s)); }

static int put_text(rpci_buf *b, const uint8_t *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  if (rpci_buf_push(b, '"')) return -1;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = rpci_utf8_next(s + i, len - i, &cp);
    if (n == 0) { /* not UTF-8 (only in hand-built trees): show the byte */
      cp = s[i];
      n = 1;
    }
    i += n;
    char tmp[16];
    const char *esc = NULL;
    switch (cp) {
      case '"':
        esc = "\\\"";
        break;
      case '\\':
        esc = "\\\\";
        break;
      case '\b':
        esc = "\\b";
        break;
      case '\f':
        esc = "\\f";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      default:
        break;
    }
    if (esc) {
      if (put(b, esc)) return -1;
    } else if (cp >= 0x20 && cp < 0x7f) {
      if (rpci_buf_push(b, (uint8_t)cp)) return -1;
    } else if (cp < 0x10000) {
      snprintf(tmp, sizeof tmp, "\\u%c%c%c%c", hex[cp >> 12], hex[(cp >> 8) & 15],
               hex[(cp >> 4) & 15], hex[cp & 15]);
      if (put(b, tmp)) return -1;
    } else {
      uint32_t v = cp - 0x10000, hi = 0xd800 | (v >> 10), lo = 0xdc00 | (v & 0x3ff);
      snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", (unsigned)hi, (unsigned)lo);
      if (put(b, tmp)) return -1;
    }
  }
  return rpci_buf_push(b, '"');
}

static int write_v(const rpci_value *v, rpci_buf *b, int depth) {
  char tmp[48];
  switch (v->kind) {
    case RPCI_V_NULL:
      return put(b, "null");
    case RPCI_V_UNDEFINED:
      return put(b, "undefined");
    case RPCI_V_BOOL:
      return put(b, v->u.boolean ? "true" : "false");
    case RPCI_V_SIMPLE:
      snprintf(tmp, sizeof tmp, "simple(%u)", (unsigned)v->u.simple);
      return put(b, tmp);
    case RPCI_V_UINT:
    case RPCI_V_NINT:
      rpci_fmt_int(tmp, v->kind == RPCI_V_NINT, v->u.uint);
      return put(b, tmp);
    case RPCI_V_FLOAT:
      rpci_fmt_double(tmp, v->u.f);
      return put(b, tmp);
    case RPCI_V_BYTES: {
      static const char hex[] = "0123456789abcdef";
      if (put(b, "h'")) return -1;
      for (size_t i = 0; i < v->u.str.len; i++) {
        char h2[2] = {hex[v->u.str.p[i] >> 4], hex[v->u.str.p[i] & 15]};
        if (rpci_buf_append(b, h2, 2)) return -1;
      }
      return put(b, "'");
    }
    case RPCI_V_TEXT:
      return put_text(b, v->u.str.p, v->u.str.len);
    case RPCI_V_TAG:
      if (depth >= RPCI_VALUE_MAX_DEPTH) return -1;
      snprintf(tmp, sizeof tmp, "%llu(", (unsigned long long)v->u.tag.tag);
      if (put(b, tmp) || write_v(v->u.tag.content, b, depth + 1)) return -1;
      return put(b, ")");
    case RPCI_V_ARRAY:
    case RPCI_V_MAP: {
      if (depth >= RPCI_VALUE_MAX_DEPTH) return -1;
      int map = v->kind == RPCI_V_MAP;
      if (put(b, map ? "{" : "[")) return -1;
      for (size_t i = 0; i < v->u.arr.n; i++) {
        if (i && put(b, map && i % 2 ? ": " : ", ")) return -1;
        if (write_v(&v->u.arr.items[i], b, depth + 1)) return -1;
      }
      return put(b, map ? "}" : "]");
    }
  }
  return -1;
}

int rpci_diag_write(const rpci_value *v, rpci_buf *out) { return write_v(v, out, 0); }

/* ---- parser ------------------------------------------------------------- */

typedef struct pst {
  const char *s;
  size_t len, pos;
  const char *msg;
} pst;

static int perr(pst *p, int code, const char *msg) {
  if (!p->msg) p->msg = msg;
  return code;
}

static void skip_ws(pst *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      p->pos++;
    } else if (c == '/') { /* comment: /.../ */
      const char *end = memchr(p->s + p->pos + 1, '/', p->len - p->pos - 1);
      if (!end) return;
      p->pos = (size_t)(end - p->s) + 1;
    } else {
      return;
    }
  }
}

static int peek(pst *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static int lit(pst *p, const char *w) {
  size_t n = strlen(w);
  if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0) {
    p->pos += n;
    return 1;
  }
  return 0;
}

static int hexv(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int b64v(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* After the opening quote of h'..' or b64'..'. */
static int parse_bytes(pst *p, int b64, rpci_value *v) {
  rpci_buf acc = RPCI_BUF_INIT;
  int e = 0;
  uint32_t bits = 0;
  int nbits = 0, half = -1;
  for (;;) {
    int c = peek(p);
    if (c < 0) {
      e = perr(p, RPCI_VERR_MALFORMED, "unterminated byte string");
      break;
    }
    p->pos++;
    if (c == '\'') break;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (b64) {
      if (c == '=') continue;
      int d = b64v(c);
      if (d < 0) {
        e = perr(p, RPCI_VERR_MALFORMED, "bad base64 digit");
        break;
      }
      bits = bits << 6 | (uint32_t)d;
      nbits += 6;
      if (nbits >= 8) {
        nbits -= 8;
        if (rpci_buf_push(&acc, (uint8_t)(bits >> nbits))) {
          e = RPCI_VERR_NOMEM;
          break;
        }
      }
    } else {
      int d = hexv(c);
      if (d < 0) {
        e = perr(p, RPCI_VERR_MALFORMED, "bad hex digit");
        break;
      }
      if (half < 0) {
        half = d;
      } else {
        if (rpci_buf_push(&acc, (uint8_t)(half << 4 | d))) {
          e = RPCI_VERR_NOMEM;
          break;
        }
        half = -1;
      }
    }
  }
  if (!e && half >= 0) e = perr(p, RPCI_VERR_MALFORMED, "odd number of hex digits");
  if (!e && rpci_value_set_str(v, RPCI_V_BYTES, acc.data, acc.len)) e = RPCI_VERR_NOMEM;
  rpci_buf_free(&acc);
  return e;
}

/* A JSON-style text string after its opening quote. */
static int parse_text(pst *p, rpci_value *v) {
  rpci_buf acc = RPCI_BUF_INIT;
  const char *why = NULL;
  int e = rpci_strlit_parse(p->s, p->len, &p->pos, 0, &acc, &why);
  if (e)
    e = perr(p, e, why);
  else if (rpci_value_set_str(v, RPCI_V_TEXT, acc.data, acc.len))
    e = RPCI_VERR_NOMEM;
  rpci_buf_free(&acc);
  return e;
}

static void skip_indicator(pst *p) {
  if (peek(p) == '_' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '7')
    p->pos += 2;
}

/* Integer or float literal (sign included), or a tag N(...). */
static int parse_value(pst *p, rpci_value *v, int depth);

static int parse_number(pst *p, rpci_value *v, int depth) {
  size_t start = p->pos;
  int neg = 0;
  if (peek(p) == '-' || peek(p) == '+') neg = p->s[p->pos++] == '-';
  if (lit(p, "Infinity")) {
    v->kind = RPCI_V_FLOAT;
    v->u.f = neg ? -INFINITY : INFINITY;
    skip_indicator(p);
    return 0;
  }
  int base = 10;
  if (peek(p) == '0' && p->pos + 1 < p->len) {
    char c = p->s[p->pos + 1];
    if (c == 'x' || c == 'X') base = 16;
    if (c == 'o' || c == 'O') base = 8;
    if (c == 'b' || c == 'B') base = 2;
    if (base != 10) p->pos += 2;
  }
  size_t dstart = p->pos;
  uint64_t n = 0;
  int overflow = 0;
  for (;;) {
    int c = peek(p), d = hexv(c);
    if (c < 0 || d < 0 || d >= base) break;
    if (n > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) overflow = 1;
    n = n * (uint64_t)base + (uint64_t)d;
    p->pos++;
  }
  if (p->pos == dstart) return perr(p, RPCI_VERR_MALFORMED, "expected a number");
  int c = peek(p);
  if (base == 10 && (c == '.' || c == 'e' || c == 'E')) {
    if (c == '.') {
      p->pos++;
      if (!(peek(p) >= '0' && peek(p) <= '9')) return perr(p, RPCI_VERR_MALFORMED, "bad number");
      while (peek(p) >= '0' && peek(p) <= '9') p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
      p->pos++;
      if (peek(p) == '+' || peek(p) == '-') p->pos++;
      if (!(peek(p) >= '0' && peek(p) <= '9')) return perr(p, RPCI_VERR_MALFORMED, "bad exponent");
      while (peek(p) >= '0' && peek(p) <= '9') p->pos++;
    }
    char tmp[400];
    size_t tl = p->pos - start;
    if (tl >= sizeof tmp) return perr(p, RPCI_VERR_MALFORMED, "number too long");
    memcpy(tmp, p->s + start, tl);
    tmp[tl] = 0;
    v->kind = RPCI_V_FLOAT;
    v->u.f = strtod(tmp, NULL);
    skip_indicator(p);
    return 0;
  }
  if (!neg && c == '(') { /* tag */
    if (overflow) return perr(p, RPCI_VERR_MALFORMED, "tag number too large");
    if (depth >= RPCI_VALUE_MAX_DEPTH) return perr(p, RPCI_VERR_DEPTH, "nested too deep");
    p->pos++;
    rpci_value *content = rpci_value_tag_content(v, n);
    if (!content) return RPCI_VERR_NOMEM;
    int e = parse_value(p, content, depth + 1);
    if (e) return e;
    skip_ws(p);
    if (!lit(p, ")")) return perr(p, RPCI_VERR_MALFORMED, "expected ')'");
    return 0;
  }
  if (overflow) {
    static const char m64[] = "18446744073709551616"; /* -2^64 is in range */
    if (neg && base == 10 && p->pos - dstart == sizeof m64 - 1 &&
        memcmp(p->s + dstart, m64, sizeof m64 - 1) == 0) {
      rpci_value_set_int(v, 1, UINT64_MAX);
      skip_indicator(p);
      return 0;
    }
    return perr(p, RPCI_VERR_MALFORMED, "integer out of range");
  }
  if (neg) {
    if (n == 0) { /* -0 as an integer is 0 */
      rpci_value_set_int(v, 0, 0);
    } else {
      rpci_value_set_int(v, 1, n - 1);
    }
  } else {
    rpci_value_set_int(v, 0, n);
  }
  skip_indicator(p);
  return 0;
}

static int parse_container(pst *p, rpci_value *v, int depth, int map) {
  if (depth >= RPCI_VALUE_MAX_DEPTH) return perr(p, RPCI_VERR_DEPTH, "nested too deep");
  v->kind = map ? RPCI_V_MAP : RPCI_V_ARRAY;
  skip_ws(p);
  if (peek(p) == '_') { /* indefinite-length indicator: _ or _N */
    p->pos++;
    skip_ws(p);
  }
  char close = map ? '}' : ']';
  if (peek(p) == close) {
    p->pos++;
    return 0;
  }
  for (;;) {
    rpci_value *slot = rpci_value_append(v);
    if (!slot) return RPCI_VERR_NOMEM;
    int e = parse_value(p, slot, depth + 1);
    if (e) return e;
    skip_ws(p);
    if (map) {
      if (!lit(p, ":")) return perr(p, RPCI_VERR_MALFORMED, "expected ':'");
      slot = rpci_value_append(v);
      if (!slot) return RPCI_VERR_NOMEM;
      e = parse_value(p, slot, depth + 1);
      if (e) return e;
      skip_ws(p);
    }
    if (lit(p, ",")) continue;
    if (peek(p) == close) {
      p->pos++;
      return 0;
    }
    return perr(p, RPCI_VERR_MALFORMED, map ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

/* (_ chunk, chunk, ...) after "(_". */
static int parse_chunks(pst *p, rpci_value *v) {
  rpci_buf acc = RPCI_BUF_INIT;
  int kind = -1, e = 0;
  for (;;) {
    skip_ws(p);
    if (lit(p, ")")) break;
    if (kind >= 0 && !lit(p, ",")) {
      e = perr(p, RPCI_VERR_MALFORMED, "expected ',' or ')'");
      break;
    }
    skip_ws(p);
    rpci_value chunk = {0};
    if (lit(p, "\""))
      e = parse_text(p, &chunk);
    else if (lit(p, "h'"))
      e = parse_bytes(p, 0, &chunk);
    else if (lit(p, "b64'"))
      e = parse_bytes(p, 1, &chunk);
    else
      e = perr(p, RPCI_VERR_MALFORMED, "expected a string chunk");
    if (!e && kind >= 0 && (int)chunk.kind != kind)
      e = perr(p, RPCI_VERR_MALFORMED, "chunks of different string types");
    if (!e) {
      kind = (int)chunk.kind;
      if (rpci_buf_append(&acc, chunk.u.str.p, chunk.u.str.len)) e = RPCI_VERR_NOMEM;
    }
    rpci_value_clear(&chunk);
    if (e) break;
  }
  if (!e && kind < 0) e = perr(p, RPCI_VERR_MALFORMED, "(_ ) needs at least one chunk");
  if (!e && rpci_value_set_str(v, (rpci_vkind)kind, acc.data, acc.len)) e = RPCI_VERR_NOMEM;
  rpci_buf_free(&acc);
  return e;
}

static int parse_value(pst *p, rpci_value *v, int depth) {
  skip_ws(p);
  int c = peek(p);
  if (c < 0) return perr(p, RPCI_VERR_MALFORMED, "unexpected end of input");
  if (c == '[') {
    p->pos++;
    return parse_container(p, v, depth, 0);
  }
  if (c == '{') {
    p->pos++;
    return parse_container(p, v, depth, 1);
  }
  if (c == '"') {
    p->pos++;
    int te = parse_text(p, v);
    if (!te) skip_indicator(p);
    return te;
  }
  int be = -1;
  if (lit(p, "h'"))
    be = parse_bytes(p, 0, v);
  else if (lit(p, "b64'"))
    be = parse_bytes(p, 1, v);
  if (be >= 0) {
    if (!be) skip_indicator(p);
    return be;
  }
  if (lit(p, "(_")) return parse_chunks(p, v);
  if (lit(p, "true")) {
    v->kind = RPCI_V_BOOL;
    v->u.boolean = 1;
    return 0;
  }
  if (lit(p, "false")) {
    v->kind = RPCI_V_BOOL;
    return 0;
  }
  if (lit(p, "null")) {
    v->kind = RPCI_V_NULL;
    return 0;
  }
  if (lit(p, "undefined")) {
    v->kind = RPCI_V_UNDEFINED;
    return 0;
  }
  if (lit(p, "NaN")) {
    v->kind = RPCI_V_FLOAT;
    v->u.f = NAN;
    skip_indicator(p);
    return 0;
  }
  if (lit(p, "simple(")) {
    uint64_t n = 0;
    size_t st = p->pos;
    while (peek(p) >= '0' && peek(p) <= '9' && n < 1000)
      n = n * 10 + (uint64_t)(p->s[p->pos++] - '0');
    if (p->pos == st || !lit(p, ")") || n > 255 || (n >= 24 && n < 32))
      return perr(p, RPCI_VERR_MALFORMED, "bad simple value");
    if (n == 20 || n == 21) {
      v->kind = RPCI_V_BOOL;
      v->u.boolean = n == 21;
    } else if (n == 22 || n == 23) {
      v->kind = n == 22 ? RPCI_V_NULL : RPCI_V_UNDEFINED;
    } else {
      v->kind = RPCI_V_SIMPLE;
      v->u.simple = (uint8_t)n;
    }
    return 0;
  }
  if (c == '-' || c == '+' || (c >= '0' && c <= '9') || c == 'I') return parse_number(p, v, depth);
  return perr(p, RPCI_VERR_MALFORMED, "unexpected character");
}

int rpci_diag_parse(const char *s, size_t len, rpci_value **out, size_t *err_off,
                    const char **err_msg) {
  pst p = {s, len, 0, NULL};
  *out = NULL;
  rpci_value *v = rpci_value_new();
  if (!v) return RPCI_VERR_NOMEM;
  int e = parse_value(&p, v, 0);
  if (!e) {
    skip_ws(&p);
    if (p.pos != p.len) e = perr(&p, RPCI_VERR_TRAILING, "text after the value");
  }
  if (err_off) *err_off = p.pos;
  if (err_msg) *err_msg = p.msg ? p.msg : (e == RPCI_VERR_NOMEM ? "out of memory" : "");
  if (e) {
    rpci_value_free(v);
    return e;
  }
  *out = v;
  return 0;
}
