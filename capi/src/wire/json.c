/* JSON reader and writer: see json.h. */
#include "wire/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/diag.h"
#include "wire/strlit.h"
#include "wire/utf8.h"

/* ---- parser ------------------------------------------------------------- */

typedef struct jp {
  const char *s;
  size_t len, pos;
  const char *msg;
} jp;

static int jerr(jp *p, int code, const char *msg) {
  if (!p->msg) p->msg = msg;
  return code;
}

static void ws(jp *p) {
  while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r'))
    p->pos++;
}

static int pk(jp *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }

static int word(jp *p, const char *w) {
  size_t n = strlen(w);
  if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0) {
    p->pos += n;
    return 1;
  }
  return 0;
}

/* After the opening quote. */
static int jstring(jp *p, rpci_value *v) {
  rpci_buf acc = RPCI_BUF_INIT;
  const char *why = NULL;
  int e = rpci_strlit_parse(p->s, p->len, &p->pos, RPCI_STRLIT_JSON, &acc, &why);
  if (e)
    e = jerr(p, e, why);
  else if (rpci_value_set_str(v, RPCI_V_TEXT, acc.data, acc.len))
    e = RPCI_VERR_NOMEM;
  rpci_buf_free(&acc);
  return e;
}

static int isdig(int c) { return c >= '0' && c <= '9'; }

static int jnumber(jp *p, rpci_value *v) {
  size_t start = p->pos;
  int neg = 0, frac = 0;
  if (pk(p) == '-') {
    neg = 1;
    p->pos++;
  }
  if (pk(p) == '0') {
    p->pos++;
  } else if (isdig(pk(p))) {
    while (isdig(pk(p))) p->pos++;
  } else {
    return jerr(p, RPCI_VERR_MALFORMED, "bad number");
  }
  size_t int_end = p->pos;
  if (pk(p) == '.') {
    frac = 1;
    p->pos++;
    if (!isdig(pk(p))) return jerr(p, RPCI_VERR_MALFORMED, "bad number");
    while (isdig(pk(p))) p->pos++;
  }
  if (pk(p) == 'e' || pk(p) == 'E') {
    frac = 1;
    p->pos++;
    if (pk(p) == '+' || pk(p) == '-') p->pos++;
    if (!isdig(pk(p))) return jerr(p, RPCI_VERR_MALFORMED, "bad number");
    while (isdig(pk(p))) p->pos++;
  }
  if (!frac) {
    uint64_t n = 0;
    int over = 0;
    for (size_t i = start + (size_t)neg; i < int_end; i++) {
      uint64_t d = (uint64_t)(p->s[i] - '0');
      if (n > (UINT64_MAX - d) / 10) over = 1;
      n = n * 10 + d;
    }
    if (!over) {
      if (neg && n > 0)
        rpci_value_set_int(v, 1, n - 1);
      else
        rpci_value_set_int(v, 0, n);
      return 0;
    }
    /* -18446744073709551616 (-2^64) is still an integer */
    static const char m64[] = "-18446744073709551616";
    if (neg && int_end - start == sizeof m64 - 1 &&
        memcmp(p->s + start, m64, sizeof m64 - 1) == 0) {
      rpci_value_set_int(v, 1, UINT64_MAX);
      return 0;
    }
  }
  size_t tl = p->pos - start;
  char *tmp = malloc(tl + 1);
  if (!tmp) return RPCI_VERR_NOMEM;
  memcpy(tmp, p->s + start, tl);
  tmp[tl] = 0;
  v->kind = RPCI_V_FLOAT;
  v->u.f = strtod(tmp, NULL);
  free(tmp);
  if (isinf(v->u.f)) {
    p->pos = start;
    return jerr(p, RPCI_VERR_MALFORMED, "number out of the float64 range");
  }
  return 0;
}

static int jvalue(jp *p, rpci_value *v, int depth);

static int jcontainer(jp *p, rpci_value *v, int depth, int obj) {
  if (depth >= RPCI_VALUE_MAX_DEPTH) return jerr(p, RPCI_VERR_DEPTH, "nested too deep");
  v->kind = obj ? RPCI_V_MAP : RPCI_V_ARRAY;
  ws(p);
  char close = obj ? '}' : ']';
  if (pk(p) == close) {
    p->pos++;
    return 0;
  }
  for (;;) {
    ws(p);
    rpci_value *slot = rpci_value_append(v);
    if (!slot) return RPCI_VERR_NOMEM;
    int e;
    if (obj) {
      if (pk(p) != '"') return jerr(p, RPCI_VERR_MALFORMED, "expected a string key");
      size_t kpos = p->pos++;
      if ((e = jstring(p, slot))) return e;
      for (size_t i = 0; i + 1 < v->u.arr.n; i += 2) {
        const rpci_value *k = &v->u.arr.items[i];
        if (k->u.str.len == slot->u.str.len &&
            memcmp(k->u.str.p, slot->u.str.p, k->u.str.len) == 0) {
          p->pos = kpos;
          return jerr(p, RPCI_VERR_DUPLICATE_KEY, "duplicate key");
        }
      }
      ws(p);
      if (!word(p, ":")) return jerr(p, RPCI_VERR_MALFORMED, "expected ':'");
      slot = rpci_value_append(v);
      if (!slot) return RPCI_VERR_NOMEM;
    }
    if ((e = jvalue(p, slot, depth + 1))) return e;
    ws(p);
    if (word(p, ",")) continue;
    if (pk(p) == close) {
      p->pos++;
      return 0;
    }
    return jerr(p, RPCI_VERR_MALFORMED, obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int jvalue(jp *p, rpci_value *v, int depth) {
  ws(p);
  int c = pk(p);
  if (c == '{' || c == '[') {
    p->pos++;
    return jcontainer(p, v, depth, c == '{');
  }
  if (c == '"') {
    p->pos++;
    return jstring(p, v);
  }
  if (word(p, "true")) {
    v->kind = RPCI_V_BOOL;
    v->u.boolean = 1;
    return 0;
  }
  if (word(p, "false")) {
    v->kind = RPCI_V_BOOL;
    return 0;
  }
  if (word(p, "null")) {
    v->kind = RPCI_V_NULL;
    return 0;
  }
  if (c == '-' || isdig(c)) return jnumber(p, v);
  return jerr(p, RPCI_VERR_MALFORMED, c < 0 ? "unexpected end of input" : "unexpected character");
}

int rpci_json_parse(const char *s, size_t len, rpci_value **out, size_t *err_off,
                    const char **err_msg) {
  jp p = {s, len, 0, NULL};
  *out = NULL;
  rpci_value *v = rpci_value_new();
  if (!v) return RPCI_VERR_NOMEM;
  int e = jvalue(&p, v, 0);
  if (!e) {
    ws(&p);
    if (p.pos != p.len) e = jerr(&p, RPCI_VERR_TRAILING, "text after the value");
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

/* ---- writer ------------------------------------------------------------- */

static int put(rpci_buf *b, const char *s) { return rpci_buf_append(b, s, strlen(s)); }

static int jwrite_str(rpci_buf *b, const uint8_t *s, size_t len) {
  if (rpci_buf_push(b, '"')) return -1;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    char tmp[8];
    const char *esc = NULL;
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c < 0x20 || c == 0x7f) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      esc = tmp;
    }
    if (esc ? put(b, esc) : rpci_buf_push(b, c)) return -1;
  }
  return rpci_buf_push(b, '"');
}

static int b64url(rpci_buf *b, const uint8_t *s, size_t len) {
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  if (rpci_buf_push(b, '"')) return -1;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    char o[4] = {al[v >> 18], al[(v >> 12) & 63], al[(v >> 6) & 63], al[v & 63]};
    if (rpci_buf_append(b, o, 4)) return -1;
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)s[i] << 16;
    char o[2] = {al[v >> 18], al[(v >> 12) & 63]};
    if (rpci_buf_append(b, o, 2)) return -1;
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
    char o[3] = {al[v >> 18], al[(v >> 12) & 63], al[(v >> 6) & 63]};
    if (rpci_buf_append(b, o, 3)) return -1;
  }
  return rpci_buf_push(b, '"');
}

static int indent(rpci_buf *b, int pretty, int level) {
  if (!pretty) return 0;
  if (rpci_buf_push(b, '\n')) return -1;
  for (int i = 0; i < level; i++)
    if (put(b, "  ")) return -1;
  return 0;
}

static int jw(const rpci_value *v, rpci_buf *b, int pretty, int depth) {
  char tmp[48];
  switch (v->kind) {
    case RPCI_V_NULL:
    case RPCI_V_UNDEFINED:
    case RPCI_V_SIMPLE:
      return put(b, "null");
    case RPCI_V_BOOL:
      return put(b, v->u.boolean ? "true" : "false");
    case RPCI_V_UINT:
    case RPCI_V_NINT:
      rpci_fmt_int(tmp, v->kind == RPCI_V_NINT, v->u.uint);
      return put(b, tmp);
    case RPCI_V_FLOAT:
      if (!isfinite(v->u.f)) return put(b, "null");
      rpci_fmt_double(tmp, v->u.f);
      return put(b, tmp);
    case RPCI_V_BYTES:
      return b64url(b, v->u.str.p, v->u.str.len);
    case RPCI_V_TEXT:
      return jwrite_str(b, v->u.str.p, v->u.str.len);
    case RPCI_V_TAG:
      if (depth >= RPCI_VALUE_MAX_DEPTH) return -1;
      return jw(v->u.tag.content, b, pretty, depth + 1);
    case RPCI_V_ARRAY:
    case RPCI_V_MAP: {
      if (depth >= RPCI_VALUE_MAX_DEPTH) return -1;
      int map = v->kind == RPCI_V_MAP;
      if (put(b, map ? "{" : "[")) return -1;
      size_t step = map ? 2 : 1;
      for (size_t i = 0; i < v->u.arr.n; i += step) {
        if (i && put(b, ",")) return -1;
        if (indent(b, pretty, depth + 1)) return -1;
        if (map) {
          const rpci_value *k = &v->u.arr.items[i];
          if (k->kind == RPCI_V_TEXT) {
            if (jwrite_str(b, k->u.str.p, k->u.str.len)) return -1;
          } else {
            rpci_buf d = RPCI_BUF_INIT;
            int e = rpci_diag_write(k, &d) ||
                    jwrite_str(b, d.data ? d.data : (const uint8_t *)"", d.len);
            rpci_buf_free(&d);
            if (e) return -1;
          }
          if (put(b, pretty ? ": " : ":")) return -1;
          if (jw(&v->u.arr.items[i + 1], b, pretty, depth + 1)) return -1;
        } else if (jw(&v->u.arr.items[i], b, pretty, depth + 1)) {
          return -1;
        }
      }
      if (v->u.arr.n && indent(b, pretty, depth)) return -1;
      return put(b, map ? "}" : "]");
    }
  }
  return -1;
}

int rpci_json_write(const rpci_value *v, rpci_buf *out, int pretty) {
  return jw(v, out, pretty, 0);
}
