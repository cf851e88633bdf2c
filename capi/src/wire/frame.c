/*
 * Frame codec: see frame.h for the contract and design notes.
 *
 * Reader state machine (one per stream direction):
 *   IDLE --head of a byte string--> MSG (definite) or CHUNK (indefinite)
 *   IDLE --head of a map---------> MAP (scanned by rpci_scan, then decoded
 *                                   with the value codec and interpreted)
 *   MSG/CHUNK/MAP --complete-----> IDLE (a frame is returned)
 * Invariants: message storage only grows by the bytes appended (rpci_buf
 * doubles, so capacity < 2 * received + 64); a claimed length over the limit
 * fails at the head; map frames are bounded by max_header_size before they
 * are decoded; after an error the reader is stuck on that error.
 */
#include "wire/frame.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/prim.h"
#include "wire/scan.h"
#include "wire/value.h"

/* Map keys of the request header and the status (docs/wire-format.md). */
enum { KEY_METHOD = 1, KEY_TIMEOUT = 2, KEY_METADATA = 3 };
enum { KEY_CODE = 1, KEY_MESSAGE = 2, KEY_TRAILERS = 3 };

enum rstate { ST_IDLE, ST_MSG, ST_CHUNK, ST_MAP };

struct rpci_frame_reader {
  rpci_dir dir;
  rpci_wire_limits lim;
  int err;
  char errmsg[192];
  enum rstate st;
  int got_header, got_status;
  uint8_t head[9];
  size_t head_len;
  rpci_buf buf;       /* message payload or map bytes */
  uint64_t remaining; /* payload bytes still expected (MSG) */
  int indef;          /* the message is a chunked byte string */
  rpci_scan scan;
};

uint64_t rpci_wire_err_app_code(int wire_err) {
  switch (wire_err) {
    case RPCI_WIRE_OK:
      return RPCI_H_NO_ERROR;
    case RPCI_WIRE_TOO_LARGE:
      return RPCI_H_LIMIT_EXCEEDED;
    case RPCI_WIRE_MALFORMED:
    case RPCI_WIRE_UNEXPECTED:
    case RPCI_WIRE_TRUNCATED:
      return RPCI_H_PROTOCOL_ERROR;
    default:
      return RPCI_H_INTERNAL_ERROR;
  }
}

const char *rpci_wire_err_name(int e) {
  static const char *const names[] = {"ok",         "malformed", "too_large",
                                      "unexpected", "truncated", "nomem"};
  if (e < 0 || e > RPCI_WIRE_NOMEM) return "unknown";
  return names[e];
}

void rpci_wire_limits_default(rpci_wire_limits *l) {
  l->max_message_size = 16u << 20;
  l->max_header_size = 16u << 10;
  l->max_metadata_entries = 64;
}

int rpci_md_key_is_bin(const char *k) {
  size_t n = strlen(k);
  return n >= 4 && memcmp(k + n - 4, "-bin", 4) == 0;
}

void rpci_frame_clear(rpci_frame *f) {
  free(f->method);
  rpci_md_free(&f->metadata);
  free(f->data);
  free(f->message);
  rpci_md_free(&f->trailers);
  memset(f, 0, sizeof *f);
}

rpci_frame_reader *rpci_frame_reader_new(rpci_dir dir, const rpci_wire_limits *limits) {
  rpci_frame_reader *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->dir = dir;
  if (limits)
    r->lim = *limits;
  else
    rpci_wire_limits_default(&r->lim);
  return r;
}

void rpci_frame_reader_free(rpci_frame_reader *r) {
  if (!r) return;
  rpci_buf_free(&r->buf);
  free(r);
}

const char *rpci_frame_reader_error(const rpci_frame_reader *r) { return r->errmsg; }

size_t rpci_frame_reader_buffered(const rpci_frame_reader *r) { return r->buf.cap; }

static int fail(rpci_frame_reader *r, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
  va_end(ap);
  r->err = err;
  rpci_buf_free(&r->buf);
  return err;
}

/* Copies the entries of a metadata map value into md. */
static int read_md(rpci_frame_reader *r, const rpci_value *v, rpci_md *md, const char *what) {
  if (v->kind != RPCI_V_MAP) return fail(r, RPCI_WIRE_MALFORMED, "%s is not a map", what);
  size_t n = v->u.arr.n / 2;
  if (n > r->lim.max_metadata_entries)
    return fail(r, RPCI_WIRE_TOO_LARGE, "%s has %zu entries, over max_metadata_entries %zu", what,
                n, r->lim.max_metadata_entries);
  for (size_t i = 0; i < n; i++) {
    const rpci_value *k = &v->u.arr.items[2 * i], *val = &v->u.arr.items[2 * i + 1];
    if (k->kind != RPCI_V_TEXT) return fail(r, RPCI_WIRE_MALFORMED, "%s key is not text", what);
    if (memchr(k->u.str.p, 0, k->u.str.len))
      return fail(r, RPCI_WIRE_MALFORMED, "%s key contains NUL", what);
    int bin = rpci_md_key_is_bin((const char *)k->u.str.p);
    if (val->kind != (bin ? RPCI_V_BYTES : RPCI_V_TEXT))
      return fail(r, RPCI_WIRE_MALFORMED, "%s value for \"%.40s\" must be a %s string", what,
                  (const char *)k->u.str.p, bin ? "byte" : "text");
    if (rpci_md_add(md, (const char *)k->u.str.p, val->u.str.p, val->u.str.len))
      return fail(r, RPCI_WIRE_NOMEM, "out of memory");
  }
  return 0;
}

/* A text value as a new C string; NULL (and r failed) when not text, with
 * a NUL inside, or out of memory. */
static char *read_cstr(rpci_frame_reader *r, const rpci_value *v, const char *what) {
  if (v->kind != RPCI_V_TEXT) {
    fail(r, RPCI_WIRE_MALFORMED, "%s is not a text string", what);
    return NULL;
  }
  if (memchr(v->u.str.p, 0, v->u.str.len)) {
    fail(r, RPCI_WIRE_MALFORMED, "%s contains NUL", what);
    return NULL;
  }
  char *s = strdup((const char *)v->u.str.p);
  if (!s) fail(r, RPCI_WIRE_NOMEM, "out of memory");
  return s;
}

static int interpret_map(rpci_frame_reader *r, rpci_frame *out) {
  rpci_value *m = NULL;
  size_t off = 0;
  int e = rpci_value_decode(r->buf.data, r->buf.len, NULL, &m, &off);
  rpci_buf_free(&r->buf);
  const char *what = r->dir == RPCI_DIR_REQUEST ? "request header" : "status";
  if (e == RPCI_VERR_NOMEM) return fail(r, RPCI_WIRE_NOMEM, "out of memory");
  if (e == RPCI_VERR_DEPTH)
    return fail(r, RPCI_WIRE_TOO_LARGE, "%s nests deeper than %d", what, RPCI_VALUE_MAX_DEPTH);
  if (e) return fail(r, RPCI_WIRE_MALFORMED, "%s: %s at offset %zu", what, rpci_verr_name(e), off);
  int rc = 0;
  rpci_frame f;
  memset(&f, 0, sizeof f);
  if (r->dir == RPCI_DIR_REQUEST) {
    f.type = RPCI_FRAME_HEADER;
    f.timeout_ms = -1;
    const rpci_value *v = rpci_value_map_get_uint(m, KEY_METHOD);
    if (!v) {
      rc = fail(r, RPCI_WIRE_MALFORMED, "request header has no method (key 1)");
      goto done;
    }
    if (!(f.method = read_cstr(r, v, "method"))) {
      rc = r->err;
      goto done;
    }
    if (!f.method[0]) {
      rc = fail(r, RPCI_WIRE_MALFORMED, "method is empty");
      goto done;
    }
    if ((v = rpci_value_map_get_uint(m, KEY_TIMEOUT))) {
      if (v->kind != RPCI_V_UINT) {
        rc = fail(r, RPCI_WIRE_MALFORMED, "timeout (key 2) is not an unsigned integer");
        goto done;
      }
      f.timeout_ms = v->u.uint > INT64_MAX ? INT64_MAX : (int64_t)v->u.uint;
    }
    if ((v = rpci_value_map_get_uint(m, KEY_METADATA)) &&
        (rc = read_md(r, v, &f.metadata, "metadata")))
      goto done;
    r->got_header = 1;
  } else {
    f.type = RPCI_FRAME_STATUS;
    const rpci_value *v = rpci_value_map_get_uint(m, KEY_CODE);
    if (!v || v->kind != RPCI_V_UINT || v->u.uint > INT_MAX) {
      rc = fail(r, RPCI_WIRE_MALFORMED, "status code (key 1) missing or not an unsigned integer");
      goto done;
    }
    f.status = (int)v->u.uint;
    if ((v = rpci_value_map_get_uint(m, KEY_MESSAGE)) &&
        !(f.message = read_cstr(r, v, "status message"))) {
      rc = r->err;
      goto done;
    }
    if ((v = rpci_value_map_get_uint(m, KEY_TRAILERS)) &&
        (rc = read_md(r, v, &f.trailers, "trailing metadata")))
      goto done;
    r->got_status = 1;
  }
done:
  rpci_value_free(m);
  if (rc) {
    rpci_frame_clear(&f);
    return rc;
  }
  *out = f;
  return 0;
}

static int finish_message(rpci_frame_reader *r, rpci_frame *out) {
  size_t n = 0;
  uint8_t *p = rpci_buf_detach(&r->buf, &n);
  if (!p && !(p = malloc(1))) return fail(r, RPCI_WIRE_NOMEM, "out of memory");
  out->type = RPCI_FRAME_MESSAGE;
  out->data = p;
  out->len = n;
  r->st = ST_IDLE;
  return 0;
}

/* Appends up to r->remaining payload bytes; storage grows with the data. */
static size_t take_payload(rpci_frame_reader *r, const uint8_t *in, size_t len) {
  size_t n = len;
  if (n > r->remaining) n = (size_t)r->remaining;
  if (rpci_buf_append(&r->buf, in, n)) return SIZE_MAX;
  r->remaining -= n;
  return n;
}

/* Accumulates a head byte in r->head; returns 1 with h filled (r->head
 * still holds the head's bytes), 0 for more, -1 when not well-formed. */
static int head_byte(rpci_frame_reader *r, uint8_t b, rpci_head *h) {
  r->head[r->head_len++] = b;
  return rpci_head_parse(r->head, r->head_len, h);
}

/* Feeds the scanner; on completion decodes the map into out. */
static int feed_map(rpci_frame_reader *r, const uint8_t *in, size_t len, size_t *used,
                    rpci_frame *out, int *done) {
  size_t n = 0;
  int s = rpci_scan_feed(&r->scan, in, len, &n);
  *used = n;
  const char *what = r->dir == RPCI_DIR_REQUEST ? "request header" : "status";
  if (s == RPCI_SCAN_MALFORMED)
    return fail(r, RPCI_WIRE_MALFORMED, "%s is not well-formed CBOR", what);
  if (s == RPCI_SCAN_TOO_LARGE)
    return fail(r, RPCI_WIRE_TOO_LARGE, "%s exceeds max_header_size %zu", what,
                r->lim.max_header_size);
  if (s == RPCI_SCAN_DEPTH)
    return fail(r, RPCI_WIRE_TOO_LARGE, "%s nests deeper than %d", what, RPCI_VALUE_MAX_DEPTH);
  if (rpci_buf_append(&r->buf, in, n)) return fail(r, RPCI_WIRE_NOMEM, "out of memory");
  if (s != RPCI_SCAN_DONE) return 0;
  r->st = ST_IDLE;
  *done = 1;
  return interpret_map(r, out);
}

/* A frame head is complete in r->head. */
static int start_frame(rpci_frame_reader *r, const rpci_head *h, rpci_frame *out, int *done) {
  if (h->major == RPCI_MT_BYTES) {
    if (r->dir == RPCI_DIR_REQUEST && !r->got_header)
      return fail(r, RPCI_WIRE_UNEXPECTED, "message before the request header");
    r->indef = h->indef;
    r->remaining = 0;
    if (h->indef) {
      r->st = ST_CHUNK;
      return 0;
    }
    if (h->arg > r->lim.max_message_size)
      return fail(r, RPCI_WIRE_TOO_LARGE,
                  "message of %" PRIu64 " bytes exceeds max_message_size %zu", h->arg,
                  r->lim.max_message_size);
    r->remaining = h->arg;
    r->st = ST_MSG;
    if (r->remaining == 0) {
      *done = 1;
      return finish_message(r, out);
    }
    return 0;
  }
  if (h->major == RPCI_MT_MAP) {
    if (r->dir == RPCI_DIR_REQUEST && r->got_header)
      return fail(r, RPCI_WIRE_UNEXPECTED, "a second request header");
    rpci_scan_init(&r->scan, r->lim.max_header_size);
    r->st = ST_MAP;
    size_t used;
    return feed_map(r, r->head, h->size, &used, out, done);
  }
  return fail(r, RPCI_WIRE_MALFORMED, "frame of major type %d is neither a byte string nor a map",
              h->major);
}

/* A chunk head (or break) of an indefinite-length message is complete. */
static int chunk_head(rpci_frame_reader *r, const rpci_head *h, rpci_frame *out, int *done) {
  if (h->major == RPCI_MT_SIMPLE && h->indef) {
    *done = 1;
    return finish_message(r, out);
  }
  if (h->major != RPCI_MT_BYTES || h->indef)
    return fail(r, RPCI_WIRE_MALFORMED,
                "chunk of an indefinite-length message is not a byte string");
  if (h->arg > r->lim.max_message_size - r->buf.len)
    return fail(r, RPCI_WIRE_TOO_LARGE, "message exceeds max_message_size %zu",
                r->lim.max_message_size);
  r->remaining = h->arg;
  if (r->remaining) r->st = ST_MSG;
  return 0;
}

int rpci_frame_reader_feed(rpci_frame_reader *r, const uint8_t *in, size_t len, size_t *consumed,
                           rpci_frame *out) {
  size_t i = 0;
  int e = r->err, done = 0;
  while (!e && !done && i < len) {
    rpci_head h;
    int p;
    switch (r->st) {
      case ST_IDLE:
        if (r->got_status) {
          e = fail(r, RPCI_WIRE_UNEXPECTED, "data after the status");
          break;
        }
        p = head_byte(r, in[i++], &h);
        if (p < 0) {
          e = fail(r, RPCI_WIRE_MALFORMED, "frame head is not well-formed CBOR");
        } else if (p > 0) {
          e = start_frame(r, &h, out, &done);
          r->head_len = 0;
        }
        break;
      case ST_CHUNK:
        p = head_byte(r, in[i++], &h);
        if (p < 0) {
          e = fail(r, RPCI_WIRE_MALFORMED, "chunk head is not well-formed CBOR");
        } else if (p > 0) {
          r->head_len = 0;
          e = chunk_head(r, &h, out, &done);
        }
        break;
      case ST_MSG: {
        size_t n = take_payload(r, in + i, len - i);
        if (n == SIZE_MAX) {
          e = fail(r, RPCI_WIRE_NOMEM, "out of memory");
          break;
        }
        i += n;
        if (r->remaining == 0) {
          if (r->indef) {
            r->st = ST_CHUNK;
          } else {
            done = 1;
            e = finish_message(r, out);
          }
        }
        break;
      }
      case ST_MAP: {
        size_t used = 0;
        e = feed_map(r, in + i, len - i, &used, out, &done);
        i += used;
        break;
      }
    }
  }
  *consumed = i;
  return e;
}

int rpci_frame_reader_finish(rpci_frame_reader *r) {
  if (r->err) return r->err;
  if (r->st != ST_IDLE || r->head_len)
    return fail(r, RPCI_WIRE_TRUNCATED, "stream ended inside a frame");
  if (r->dir == RPCI_DIR_REQUEST && !r->got_header)
    return fail(r, RPCI_WIRE_TRUNCATED, "request stream ended without a header");
  if (r->dir == RPCI_DIR_RESPONSE && !r->got_status)
    return fail(r, RPCI_WIRE_TRUNCATED, "response stream ended without a status");
  return RPCI_WIRE_OK;
}

/* ---- encoders ----------------------------------------------------------- */

/* Adds a metadata map under key to m; the first entry wins for a key that
 * appears more than once. */
static int put_md(rpci_value *m, uint64_t key, const rpci_md *md) {
  rpci_value *k = rpci_value_append(m), *v = k ? rpci_value_append(m) : NULL;
  if (!v) return -1;
  rpci_value_set_int(k, 0, key);
  v->kind = RPCI_V_MAP;
  for (size_t i = 0; i < md->n; i++) {
    const rpci_md_entry *e = &md->v[i];
    if (rpci_md_get(md, e->key) != e) continue; /* duplicate: first wins */
    rpci_value *ek = rpci_value_append(v), *ev = ek ? rpci_value_append(v) : NULL;
    if (!ev || rpci_value_set_str(ek, RPCI_V_TEXT, e->key, strlen(e->key)) ||
        rpci_value_set_str(ev, rpci_md_key_is_bin(e->key) ? RPCI_V_BYTES : RPCI_V_TEXT, e->val,
                           e->val_len))
      return -1;
  }
  return 0;
}

static int put_text(rpci_value *m, uint64_t key, const char *s) {
  rpci_value *k = rpci_value_append(m), *v = k ? rpci_value_append(m) : NULL;
  if (!v) return -1;
  rpci_value_set_int(k, 0, key);
  return rpci_value_set_str(v, RPCI_V_TEXT, s, strlen(s));
}

static int put_uint(rpci_value *m, uint64_t key, uint64_t n) {
  rpci_value *k = rpci_value_append(m), *v = k ? rpci_value_append(m) : NULL;
  if (!v) return -1;
  rpci_value_set_int(k, 0, key);
  rpci_value_set_int(v, 0, n);
  return 0;
}

static int emit(rpci_buf *out, rpci_value *m) {
  int e = rpci_value_encode(m, out);
  rpci_value_clear(m);
  return e ? -1 : 0;
}

/* Emits the map built so far (unless building it failed: e != 0), leaving
 * out unchanged on any failure. Frees the map. Returns 0 or -1. */
static int finish_map(rpci_buf *out, rpci_value *m, int e) {
  size_t before = out->len;
  if (e) {
    rpci_value_clear(m);
    return -1;
  }
  if (emit(out, m)) {
    out->len = before;
    return -1;
  }
  return 0;
}

int rpci_frame_encode_header(rpci_buf *out, const char *method, int64_t timeout_ms,
                             const rpci_md *metadata) {
  rpci_value m = {.kind = RPCI_V_MAP};
  int e = put_text(&m, KEY_METHOD, method);
  if (!e && timeout_ms >= 0) e = put_uint(&m, KEY_TIMEOUT, (uint64_t)timeout_ms);
  if (!e && metadata && metadata->n) e = put_md(&m, KEY_METADATA, metadata);
  return finish_map(out, &m, e);
}

size_t rpci_frame_message_head(uint8_t head[9], uint64_t len) {
  return rpci_head_write(head, RPCI_MT_BYTES, len);
}

int rpci_frame_encode_status(rpci_buf *out, int status, const char *message,
                             const rpci_md *trailers) {
  rpci_value m = {.kind = RPCI_V_MAP};
  int e = put_uint(&m, KEY_CODE, status < 0 ? 2 /* UNKNOWN */ : (uint64_t)status);
  if (!e && message) e = put_text(&m, KEY_MESSAGE, message);
  if (!e && trailers && trailers->n) e = put_md(&m, KEY_TRAILERS, trailers);
  return finish_map(out, &m, e);
}
