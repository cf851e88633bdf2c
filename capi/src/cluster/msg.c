/*
 * Gossip message codec: see msg.h for the contract and design notes.
 *
 * Decoding is a cursor over one complete buffer: every read checks what is
 * left before looking, every claimed length or count is checked against the
 * bytes that remain, and skipping (unknown messages and trailing fields)
 * uses the incremental scanner of wire/scan.h, which is bounded in depth.
 */
#include "cluster/msg.h"

#include <stdlib.h>
#include <string.h>

#include "wire/prim.h"
#include "wire/scan.h"

typedef struct cur {
  const uint8_t *p;
  size_t len, off;
} cur;

static size_t c_left(const cur *c) { return c->len - c->off; }

static int c_head(cur *c, rpci_head *h) {
  if (rpci_head_parse(c->p + c->off, c_left(c), h) != 1) return -1;
  c->off += h->size;
  return 0;
}

static int c_uint(cur *c, uint64_t *v) {
  rpci_head h;
  if (c_head(c, &h) || h.major != RPCI_MT_UINT) return -1;
  *v = h.arg;
  return 0;
}

/* A definite text string of min..max bytes without NUL. */
static int c_text(cur *c, size_t min, size_t max, rpci_gstr *s) {
  rpci_head h;
  if (c_head(c, &h) || h.major != RPCI_MT_TEXT || h.indef) return -1;
  if (h.arg < min || h.arg > max || h.arg > c_left(c)) return -1;
  s->p = c->p + c->off;
  s->n = (size_t)h.arg;
  if (s->n && memchr(s->p, 0, s->n)) return -1;
  c->off += s->n;
  return 0;
}

/* A definite array head; the count cannot exceed the bytes left. */
static int c_array(cur *c, uint64_t *n) {
  rpci_head h;
  if (c_head(c, &h) || h.major != RPCI_MT_ARRAY || h.indef) return -1;
  if (h.arg > c_left(c)) return -1;
  *n = h.arg;
  return 0;
}

static int c_bool(cur *c, int *b) {
  rpci_head h;
  if (c_head(c, &h) || h.major != RPCI_MT_SIMPLE || (h.ai != 20 && h.ai != 21)) return -1;
  *b = h.ai == 21;
  return 0;
}

/* Skips one well-formed item of any kind. */
static int c_skip(cur *c) {
  rpci_scan sc;
  size_t used = 0;
  rpci_scan_init(&sc, c_left(c));
  if (rpci_scan_feed(&sc, c->p + c->off, c_left(c), &used) != RPCI_SCAN_DONE) return -1;
  c->off += used;
  return 0;
}

static int c_skip_n(cur *c, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (c_skip(c)) return -1;
  return 0;
}

/* 1 when the head at p (size bytes) is the shortest form of its argument. */
static int head_is_shortest(const uint8_t *p, size_t size, int major, uint64_t arg) {
  uint8_t tmp[9];
  return rpci_head_write(tmp, major, arg) == size && memcmp(tmp, p, size) == 0;
}

/* Bytewise order of two encoded items (RFC 8949 4.2.1). */
static int enc_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int r = memcmp(a, b, an < bn ? an : bn);
  if (r) return r;
  return an < bn ? -1 : an > bn;
}

/* A canonical tag map within the limits of swim.h. */
static int c_tags(cur *c, rpci_gstr *tags, uint32_t *ntags) {
  size_t start = c->off;
  rpci_head h;
  if (c_head(c, &h) || h.major != RPCI_MT_MAP || h.indef) return -1;
  if (!head_is_shortest(c->p + start, h.size, RPCI_MT_MAP, h.arg)) return -1;
  if (h.arg > RPCI_SWIM_MAX_TAGS) return -1;
  size_t total = 0, prev = 0, prev_len = 0;
  for (uint64_t i = 0; i < h.arg; i++) {
    size_t ks = c->off;
    rpci_gstr k, v;
    if (c_text(c, 1, RPCI_SWIM_MAX_TAG_KEY, &k)) return -1;
    size_t klen = c->off - ks;
    if (!head_is_shortest(c->p + ks, klen - k.n, RPCI_MT_TEXT, k.n)) return -1;
    if (i > 0 && enc_cmp(c->p + prev, prev_len, c->p + ks, klen) >= 0) return -1;
    prev = ks;
    prev_len = klen;
    size_t vs = c->off;
    if (c_text(c, 0, RPCI_SWIM_MAX_TAG_VALUE, &v)) return -1;
    if (!head_is_shortest(c->p + vs, c->off - vs - v.n, RPCI_MT_TEXT, v.n)) return -1;
    total += k.n + v.n;
    if (total > RPCI_SWIM_MAX_TAG_BYTES) return -1;
  }
  tags->p = c->p + start;
  tags->n = c->off - start;
  *ntags = (uint32_t)h.arg;
  return 0;
}

static int c_proto(cur *c, uint8_t *pmin, uint8_t *pmax) {
  uint64_t n, a, b;
  if (c_array(c, &n) || n < 2 || c_uint(c, &a) || c_uint(c, &b)) return -1;
  if (a < 1 || b > 255 || a > b) return -1;
  *pmin = (uint8_t)a;
  *pmax = (uint8_t)b;
  return c_skip_n(c, n - 2);
}

/* The fields of an alive record after its leading items. */
static int c_alive_fields(cur *c, rpci_galive *a) {
  if (c_text(c, 1, RPCI_SWIM_MAX_NAME, &a->name) || c_uint(c, &a->inc) ||
      c_text(c, 1, RPCI_SWIM_MAX_ADDR, &a->addr) ||
      c_text(c, 0, RPCI_SWIM_MAX_ADDR, &a->rpc_addr) || c_tags(c, &a->tags, &a->ntags) ||
      c_proto(c, &a->pmin, &a->pmax))
    return -1;
  return 0;
}

/* A whole alive message [5, ...] (inside a sync hello). */
static int c_alive_msg(cur *c, rpci_galive *a) {
  uint64_t n, type;
  if (c_array(c, &n) || n < 7 || c_uint(c, &type) || type != RPCI_GM_ALIVE) return -1;
  if (c_alive_fields(c, a)) return -1;
  return c_skip_n(c, n - 7);
}

static int c_record(cur *c, rpci_grecord *r) {
  uint64_t n, st;
  if (c_array(c, &n) || n < 8) return -1;
  rpci_galive *a = &r->a;
  if (c_text(c, 1, RPCI_SWIM_MAX_NAME, &a->name) || c_uint(c, &a->inc) || c_uint(c, &st) ||
      st > RPCI_MS_LEFT || c_text(c, 1, RPCI_SWIM_MAX_ADDR, &a->addr) ||
      c_text(c, 0, RPCI_SWIM_MAX_ADDR, &a->rpc_addr) || c_tags(c, &a->tags, &a->ntags) ||
      c_proto(c, &a->pmin, &a->pmax) || c_uint(c, &r->age_ms))
    return -1;
  r->state = (int)st;
  return c_skip_n(c, n - 8);
}

static int c_digest_entry(cur *c, rpci_gstr *name, uint64_t *inc, int *state) {
  uint64_t n, st;
  if (c_array(c, &n) || n < 3 || c_text(c, 1, RPCI_SWIM_MAX_NAME, name) || c_uint(c, inc) ||
      c_uint(c, &st) || st > RPCI_MS_LEFT)
    return -1;
  *state = (int)st;
  return c_skip_n(c, n - 3);
}

/* Reads a list head and validates every item with fn; l covers the items. */
enum { L_DIGEST, L_RECORD, L_NAME };
static int c_list(cur *c, int kind, rpci_glist *l) {
  uint64_t n;
  if (c_array(c, &n)) return -1;
  size_t start = c->off;
  for (uint64_t i = 0; i < n; i++) {
    rpci_gstr name;
    uint64_t inc;
    int st;
    rpci_grecord r;
    int bad = kind == L_DIGEST   ? c_digest_entry(c, &name, &inc, &st)
              : kind == L_RECORD ? c_record(c, &r)
                                 : c_text(c, 1, RPCI_SWIM_MAX_NAME, &name);
    if (bad) return -1;
  }
  l->p = c->p + start;
  l->len = c->off - start;
  l->off = 0;
  l->left = n;
  return 0;
}

int rpci_gdec_open(rpci_gdec *d, const uint8_t *buf, size_t len) {
  cur c = {buf, len, 0};
  uint64_t n, ver;
  d->p = buf;
  d->len = len;
  d->off = len;
  d->left = 0;
  if (c_array(&c, &n) || n < 1 || c_uint(&c, &ver)) return RPCI_GDEC_MALFORMED;
  if (ver < RPCI_SWIM_PROTO_MIN || ver > RPCI_SWIM_PROTO_MAX) return RPCI_GDEC_VERSION;
  d->off = c.off;
  d->left = n - 1;
  return 0;
}

static int dec_fields(cur *c, rpci_gmsg *m, uint64_t n) {
  uint64_t need;
  switch (m->type) {
    case RPCI_GM_PING:
      need = 4;
      if (n < need || c_uint(c, &m->seq) || c_text(c, 0, RPCI_SWIM_MAX_NAME, &m->target) ||
          c_text(c, 1, RPCI_SWIM_MAX_NAME, &m->sender))
        return -1;
      break;
    case RPCI_GM_INDIRECT:
      need = 6;
      if (n < need || c_uint(c, &m->seq) || c_text(c, 1, RPCI_SWIM_MAX_NAME, &m->target) ||
          c_text(c, 1, RPCI_SWIM_MAX_ADDR, &m->target_addr) ||
          c_text(c, 1, RPCI_SWIM_MAX_NAME, &m->sender) || c_bool(c, &m->want_nack))
        return -1;
      break;
    case RPCI_GM_ACK:
    case RPCI_GM_NACK:
      need = 2;
      if (n < need || c_uint(c, &m->seq)) return -1;
      break;
    case RPCI_GM_ALIVE:
      need = 7;
      if (n < need || c_alive_fields(c, &m->a)) return -1;
      break;
    case RPCI_GM_SUSPECT:
    case RPCI_GM_DEAD:
      need = 4;
      if (n < need || c_text(c, 1, RPCI_SWIM_MAX_NAME, &m->name) || c_uint(c, &m->inc) ||
          c_text(c, 1, RPCI_SWIM_MAX_NAME, &m->from))
        return -1;
      break;
    case RPCI_GM_SYNC_HELLO:
      need = 4;
      if (n < need || c_uint(c, &m->hash) || c_uint(c, &m->count) || c_alive_msg(c, &m->a))
        return -1;
      break;
    case RPCI_GM_SYNC_INSYNC:
      need = 1;
      break;
    case RPCI_GM_SYNC_DIGEST:
      need = 2;
      if (n < need || c_list(c, L_DIGEST, &m->l1)) return -1;
      break;
    case RPCI_GM_SYNC_PUSH:
      need = 3;
      if (n < need || c_list(c, L_RECORD, &m->l1) || c_list(c, L_NAME, &m->l2)) return -1;
      break;
    case RPCI_GM_SYNC_RECORDS:
      need = 2;
      if (n < need || c_list(c, L_RECORD, &m->l1)) return -1;
      break;
    default:
      return 1;
  }
  return c_skip_n(c, n - need) ? -1 : 0;
}

int rpci_gdec_next(rpci_gdec *d, rpci_gmsg *m) {
  if (d->left == 0) return d->off == d->len ? 0 : RPCI_GDEC_MALFORMED;
  cur c = {d->p, d->len, d->off};
  uint64_t n, type;
  memset(m, 0, sizeof *m);
  size_t start = c.off;
  if (c_array(&c, &n) || n < 1 || c_uint(&c, &type)) goto bad;
  m->type = type > 0xffff ? 0xffff : (int)type;
  int r = dec_fields(&c, m, n);
  if (r < 0) goto bad;
  if (r == 1) { /* unknown type: skip the whole item from its start */
    c.off = start;
    if (c_skip(&c)) goto bad;
  }
  d->off = c.off;
  d->left--;
  return r == 1 ? 2 : 1;
bad:
  d->left = 0;
  d->off = d->len;
  return RPCI_GDEC_MALFORMED;
}

int rpci_glist_digest(rpci_glist *l, rpci_gstr *name, uint64_t *inc, int *state) {
  if (l->left == 0) return 0;
  cur c = {l->p, l->len, l->off};
  if (c_digest_entry(&c, name, inc, state)) return 0; /* validated: cannot happen */
  l->off = c.off;
  l->left--;
  return 1;
}

int rpci_glist_record(rpci_glist *l, rpci_grecord *r) {
  if (l->left == 0) return 0;
  cur c = {l->p, l->len, l->off};
  if (c_record(&c, r)) return 0;
  l->off = c.off;
  l->left--;
  return 1;
}

int rpci_glist_name(rpci_glist *l, rpci_gstr *name) {
  if (l->left == 0) return 0;
  cur c = {l->p, l->len, l->off};
  if (c_text(&c, 1, RPCI_SWIM_MAX_NAME, name)) return 0;
  l->off = c.off;
  l->left--;
  return 1;
}

int rpci_gtags_next(rpci_gstr tags, size_t *off, rpci_gstr *key, rpci_gstr *value) {
  cur c = {tags.p, tags.n, *off};
  if (*off == 0) {
    rpci_head h;
    if (c_head(&c, &h) || h.major != RPCI_MT_MAP) return 0;
  }
  if (c_left(&c) == 0) return 0;
  if (c_text(&c, 1, RPCI_SWIM_MAX_TAG_KEY, key) || c_text(&c, 0, RPCI_SWIM_MAX_TAG_VALUE, value))
    return 0;
  *off = c.off;
  return 1;
}

/* ---- encoders ---------------------------------------------------------- */

int rpci_genc_str(rpci_buf *b, rpci_gstr s) {
  if (rpci_head_append(b, RPCI_MT_TEXT, s.n)) return -1;
  return rpci_buf_append(b, s.p, s.n);
}

int rpci_genc_msg_head(rpci_buf *b, int type, size_t nitems) {
  if (rpci_head_append(b, RPCI_MT_ARRAY, nitems)) return -1;
  return rpci_head_append(b, RPCI_MT_UINT, (uint64_t)type);
}

int rpci_genc_list_head(rpci_buf *b, size_t n) { return rpci_head_append(b, RPCI_MT_ARRAY, n); }

static int enc_uint(rpci_buf *b, uint64_t v) { return rpci_head_append(b, RPCI_MT_UINT, v); }

int rpci_genc_ping(rpci_buf *b, uint64_t seq, rpci_gstr target, rpci_gstr sender) {
  if (rpci_genc_msg_head(b, RPCI_GM_PING, 4) || enc_uint(b, seq) || rpci_genc_str(b, target) ||
      rpci_genc_str(b, sender))
    return -1;
  return 0;
}

int rpci_genc_indirect(rpci_buf *b, uint64_t seq, rpci_gstr target, rpci_gstr target_addr,
                       rpci_gstr sender, int want_nack) {
  if (rpci_genc_msg_head(b, RPCI_GM_INDIRECT, 6) || enc_uint(b, seq) || rpci_genc_str(b, target) ||
      rpci_genc_str(b, target_addr) || rpci_genc_str(b, sender) ||
      rpci_buf_push(b, want_nack ? 0xf5 : 0xf4))
    return -1;
  return 0;
}

int rpci_genc_ack(rpci_buf *b, int type, uint64_t seq) {
  if (rpci_genc_msg_head(b, type, 2) || enc_uint(b, seq)) return -1;
  return 0;
}

static int enc_alive_fields(rpci_buf *b, const rpci_galive *a) {
  static const uint8_t empty_map = 0xa0;
  if (rpci_genc_str(b, a->name) || enc_uint(b, a->inc) || rpci_genc_str(b, a->addr) ||
      rpci_genc_str(b, a->rpc_addr))
    return -1;
  if (a->tags.n ? rpci_buf_append(b, a->tags.p, a->tags.n) : rpci_buf_append(b, &empty_map, 1))
    return -1;
  if (rpci_genc_list_head(b, 2) || enc_uint(b, a->pmin) || enc_uint(b, a->pmax)) return -1;
  return 0;
}

int rpci_genc_alive(rpci_buf *b, const rpci_galive *a) {
  if (rpci_genc_msg_head(b, RPCI_GM_ALIVE, 7)) return -1;
  return enc_alive_fields(b, a);
}

int rpci_genc_accuse(rpci_buf *b, int type, rpci_gstr name, uint64_t inc, rpci_gstr from) {
  if (rpci_genc_msg_head(b, type, 4) || rpci_genc_str(b, name) || enc_uint(b, inc) ||
      rpci_genc_str(b, from))
    return -1;
  return 0;
}

int rpci_genc_hello(rpci_buf *b, uint64_t hash, uint64_t count, const rpci_galive *self) {
  if (rpci_genc_msg_head(b, RPCI_GM_SYNC_HELLO, 4) || enc_uint(b, hash) || enc_uint(b, count))
    return -1;
  return rpci_genc_alive(b, self);
}

int rpci_genc_insync(rpci_buf *b) { return rpci_genc_msg_head(b, RPCI_GM_SYNC_INSYNC, 1); }

int rpci_genc_record(rpci_buf *b, const rpci_grecord *r) {
  static const uint8_t empty_map = 0xa0;
  const rpci_galive *a = &r->a;
  if (rpci_genc_list_head(b, 8) || rpci_genc_str(b, a->name) || enc_uint(b, a->inc) ||
      enc_uint(b, (uint64_t)r->state) || rpci_genc_str(b, a->addr) || rpci_genc_str(b, a->rpc_addr))
    return -1;
  if (a->tags.n ? rpci_buf_append(b, a->tags.p, a->tags.n) : rpci_buf_append(b, &empty_map, 1))
    return -1;
  if (rpci_genc_list_head(b, 2) || enc_uint(b, a->pmin) || enc_uint(b, a->pmax) ||
      enc_uint(b, r->age_ms))
    return -1;
  return 0;
}

int rpci_genc_digest_entry(rpci_buf *b, rpci_gstr name, uint64_t inc, int state) {
  if (rpci_genc_list_head(b, 3) || rpci_genc_str(b, name) || enc_uint(b, inc) ||
      enc_uint(b, (uint64_t)state))
    return -1;
  return 0;
}

int rpci_genc_envelope(rpci_buf *out, size_t count, const uint8_t *msgs, size_t len) {
  if (rpci_head_append(out, RPCI_MT_ARRAY, (uint64_t)count + 1) ||
      enc_uint(out, RPCI_SWIM_PROTO_MAX))
    return -1;
  return rpci_buf_append(out, msgs, len);
}

/* Tags sorted by the bytewise order of their encoded keys: shorter keys
 * first (their heads are smaller), then by content. */
static int tag_cmp(const void *x, const void *y) {
  const rpci_tag *a = x, *b = y;
  size_t an = strlen(a->key), bn = strlen(b->key);
  uint8_t ha[9], hb[9];
  size_t hal = rpci_head_write(ha, RPCI_MT_TEXT, an), hbl = rpci_head_write(hb, RPCI_MT_TEXT, bn);
  int r = enc_cmp(ha, hal, hb, hbl);
  if (r) return r;
  return memcmp(a->key, b->key, an);
}

int rpci_genc_tags(rpci_buf *b, const rpci_tag *tags, size_t n) {
  if (n > RPCI_SWIM_MAX_TAGS) return -1;
  rpci_tag sorted[RPCI_SWIM_MAX_TAGS];
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!tags[i].key || !tags[i].value) return -1;
    size_t kn = strlen(tags[i].key), vn = strlen(tags[i].value);
    if (kn < 1 || kn > RPCI_SWIM_MAX_TAG_KEY || vn > RPCI_SWIM_MAX_TAG_VALUE) return -1;
    total += kn + vn;
    sorted[i] = tags[i];
  }
  if (total > RPCI_SWIM_MAX_TAG_BYTES) return -1;
  if (n) qsort(sorted, n, sizeof sorted[0], tag_cmp);
  for (size_t i = 1; i < n; i++)
    if (tag_cmp(&sorted[i - 1], &sorted[i]) == 0) return -1;
  if (rpci_head_append(b, RPCI_MT_MAP, n)) return -1;
  for (size_t i = 0; i < n; i++)
    if (rpci_genc_str(b, rpci_gstr_c(sorted[i].key)) ||
        rpci_genc_str(b, rpci_gstr_c(sorted[i].value)))
      return -1;
  return 0;
}

rpci_gstr rpci_gstr_c(const char *s) {
  rpci_gstr g = {(const uint8_t *)s, s ? strlen(s) : 0};
  return g;
}

int rpci_gstr_eq(rpci_gstr a, const char *s) {
  size_t n = strlen(s);
  return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}
