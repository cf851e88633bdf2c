/* Value codec: see value.h for the design notes. */
#include "wire/value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wire/prim.h"
#include "wire/utf8.h"

static const char *const verr_names[] = {"ok",          "malformed", "truncated",     "trailing",
                                         "depth",       "utf8",      "duplicate_key", "unsupported",
                                         "invalid_tag", "nomem"};

const char *rpci_verr_name(int err) {
  if (err < 0 || err > RPCI_VERR_NOMEM) return "unknown";
  return verr_names[err];
}

int rpci_verr_from_name(const char *name) {
  for (int i = 0; i <= RPCI_VERR_NOMEM; i++)
    if (strcmp(name, verr_names[i]) == 0) return i;
  return -1;
}

/* ---- tree building ------------------------------------------------------ */

rpci_value *rpci_value_new(void) { return calloc(1, sizeof(rpci_value)); }

void rpci_value_clear(rpci_value *v) {
  if (!v) return;
  switch (v->kind) {
    case RPCI_V_BYTES:
    case RPCI_V_TEXT:
      free(v->u.str.p);
      break;
    case RPCI_V_ARRAY:
    case RPCI_V_MAP:
      for (size_t i = 0; i < v->u.arr.n; i++) rpci_value_clear(&v->u.arr.items[i]);
      free(v->u.arr.items);
      break;
    case RPCI_V_TAG:
      rpci_value_free(v->u.tag.content);
      break;
    default:
      break;
  }
  memset(v, 0, sizeof *v);
}

void rpci_value_free(rpci_value *v) {
  if (!v) return;
  rpci_value_clear(v);
  free(v);
}

int rpci_value_set_str(rpci_value *v, rpci_vkind kind, const void *p, size_t len) {
  uint8_t *s = malloc(len + 1);
  if (!s) return -1;
  if (len) memcpy(s, p, len);
  s[len] = 0;
  v->kind = kind;
  v->u.str.p = s;
  v->u.str.len = len;
  return 0;
}

void rpci_value_set_int(rpci_value *v, int neg, uint64_t n) {
  v->kind = neg ? RPCI_V_NINT : RPCI_V_UINT;
  v->u.uint = n;
}

rpci_value *rpci_value_append(rpci_value *c) {
  if (c->u.arr.n == c->u.arr.cap) {
    size_t cap = c->u.arr.cap ? c->u.arr.cap * 2 : 4;
    if (cap > SIZE_MAX / sizeof(rpci_value)) return NULL;
    rpci_value *p = realloc(c->u.arr.items, cap * sizeof(rpci_value));
    if (!p) return NULL;
    c->u.arr.items = p;
    c->u.arr.cap = cap;
  }
  rpci_value *slot = &c->u.arr.items[c->u.arr.n++];
  memset(slot, 0, sizeof *slot);
  return slot;
}

rpci_value *rpci_value_tag_content(rpci_value *v, uint64_t tag) {
  rpci_value *c = rpci_value_new();
  if (!c) return NULL;
  v->kind = RPCI_V_TAG;
  v->u.tag.tag = tag;
  v->u.tag.content = c;
  return c;
}

const rpci_value *rpci_value_map_get(const rpci_value *m, const char *key) {
  if (!m || m->kind != RPCI_V_MAP) return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i + 1 < m->u.arr.n; i += 2) {
    const rpci_value *k = &m->u.arr.items[i];
    if (k->kind == RPCI_V_TEXT && k->u.str.len == kl && memcmp(k->u.str.p, key, kl) == 0)
      return &m->u.arr.items[i + 1];
  }
  return NULL;
}

const rpci_value *rpci_value_map_get_uint(const rpci_value *m, uint64_t key) {
  if (!m || m->kind != RPCI_V_MAP) return NULL;
  for (size_t i = 0; i + 1 < m->u.arr.n; i += 2) {
    const rpci_value *k = &m->u.arr.items[i];
    if (k->kind == RPCI_V_UINT && k->u.uint == key) return &m->u.arr.items[i + 1];
  }
  return NULL;
}

int rpci_value_equal(const rpci_value *a, const rpci_value *b) {
  if (a->kind != b->kind) return 0;
  switch (a->kind) {
    case RPCI_V_NULL:
    case RPCI_V_UNDEFINED:
      return 1;
    case RPCI_V_BOOL:
      return !a->u.boolean == !b->u.boolean;
    case RPCI_V_UINT:
    case RPCI_V_NINT:
      return a->u.uint == b->u.uint;
    case RPCI_V_FLOAT:
      if (isnan(a->u.f) || isnan(b->u.f)) return isnan(a->u.f) && isnan(b->u.f);
      return a->u.f == b->u.f && !signbit(a->u.f) == !signbit(b->u.f);
    case RPCI_V_BYTES:
    case RPCI_V_TEXT:
      return a->u.str.len == b->u.str.len && memcmp(a->u.str.p, b->u.str.p, a->u.str.len) == 0;
    case RPCI_V_ARRAY:
      if (a->u.arr.n != b->u.arr.n) return 0;
      for (size_t i = 0; i < a->u.arr.n; i++)
        if (!rpci_value_equal(&a->u.arr.items[i], &b->u.arr.items[i])) return 0;
      return 1;
    case RPCI_V_MAP:
      /* Same pairs in any order. Keys are unique in decoded maps, so
       * finding each pair of a in b suffices when the counts agree. */
      if (a->u.arr.n != b->u.arr.n) return 0;
      for (size_t i = 0; i + 1 < a->u.arr.n; i += 2) {
        size_t j = 0;
        for (; j + 1 < b->u.arr.n; j += 2)
          if (rpci_value_equal(&a->u.arr.items[i], &b->u.arr.items[j])) break;
        if (j + 1 >= b->u.arr.n ||
            !rpci_value_equal(&a->u.arr.items[i + 1], &b->u.arr.items[j + 1]))
          return 0;
      }
      return 1;
    case RPCI_V_TAG:
      return a->u.tag.tag == b->u.tag.tag && rpci_value_equal(a->u.tag.content, b->u.tag.content);
    case RPCI_V_SIMPLE:
      return a->u.simple == b->u.simple;
  }
  return 0;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct key_ref {
  size_t off, len, idx;
  const uint8_t *base;
} key_ref;

static int key_cmp(const void *pa, const void *pb) {
  const key_ref *a = pa, *b = pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->base + a->off, b->base + b->off, n);
  if (c) return c;
  return (a->len > b->len) - (a->len < b->len);
}

/* Encodes the keys of map items[0..n) (n even) into keys, sorted. On success
 * *refs is a malloc'd array of n/2 sorted key references. */
static int enc(const rpci_value *v, rpci_buf *out, int depth);

static int sorted_keys(const rpci_value *items, size_t n, int depth, rpci_buf *keys,
                       key_ref **refs) {
  size_t pairs = n / 2;
  key_ref *r = malloc((pairs ? pairs : 1) * sizeof *r);
  if (!r) return RPCI_VERR_NOMEM;
  for (size_t i = 0; i < pairs; i++) {
    r[i].off = keys->len;
    int e = enc(&items[2 * i], keys, depth);
    if (e) {
      free(r);
      return e;
    }
    r[i].len = keys->len - r[i].off;
    r[i].idx = i;
  }
  for (size_t i = 0; i < pairs; i++) r[i].base = keys->data;
  qsort(r, pairs, sizeof *r, key_cmp);
  for (size_t i = 1; i < pairs; i++) {
    if (key_cmp(&r[i - 1], &r[i]) == 0) {
      free(r);
      return RPCI_VERR_DUPLICATE_KEY;
    }
  }
  *refs = r;
  return 0;
}

/* depth: containers enclosing v. */
static int enc(const rpci_value *v, rpci_buf *out, int depth) {
  int nomem = RPCI_VERR_NOMEM;
  switch (v->kind) {
    case RPCI_V_NULL:
      return rpci_buf_push(out, 0xf6) ? nomem : 0;
    case RPCI_V_UNDEFINED:
      return rpci_buf_push(out, 0xf7) ? nomem : 0;
    case RPCI_V_BOOL:
      return rpci_buf_push(out, v->u.boolean ? 0xf5 : 0xf4) ? nomem : 0;
    case RPCI_V_SIMPLE:
      return rpci_head_append(out, RPCI_MT_SIMPLE, v->u.simple) ? nomem : 0;
    case RPCI_V_UINT:
      return rpci_head_append(out, RPCI_MT_UINT, v->u.uint) ? nomem : 0;
    case RPCI_V_NINT:
      return rpci_head_append(out, RPCI_MT_NINT, v->u.uint) ? nomem : 0;
    case RPCI_V_FLOAT:
      return rpci_float_append(out, v->u.f) ? nomem : 0;
    case RPCI_V_BYTES:
    case RPCI_V_TEXT:
      if (v->kind == RPCI_V_TEXT && !rpci_utf8_valid(v->u.str.p, v->u.str.len))
        return RPCI_VERR_UTF8;
      if (rpci_head_append(out, v->kind == RPCI_V_TEXT ? RPCI_MT_TEXT : RPCI_MT_BYTES,
                           v->u.str.len) ||
          rpci_buf_append(out, v->u.str.p, v->u.str.len))
        return nomem;
      return 0;
    case RPCI_V_TAG:
      if (depth >= RPCI_VALUE_MAX_DEPTH) return RPCI_VERR_DEPTH;
      if (rpci_head_append(out, RPCI_MT_TAG, v->u.tag.tag)) return nomem;
      return enc(v->u.tag.content, out, depth + 1);
    case RPCI_V_ARRAY:
      if (depth >= RPCI_VALUE_MAX_DEPTH) return RPCI_VERR_DEPTH;
      if (rpci_head_append(out, RPCI_MT_ARRAY, v->u.arr.n)) return nomem;
      for (size_t i = 0; i < v->u.arr.n; i++) {
        int e = enc(&v->u.arr.items[i], out, depth + 1);
        if (e) return e;
      }
      return 0;
    case RPCI_V_MAP: {
      if (depth >= RPCI_VALUE_MAX_DEPTH) return RPCI_VERR_DEPTH;
      if (v->u.arr.n % 2) return RPCI_VERR_MALFORMED;
      rpci_buf keys = RPCI_BUF_INIT;
      key_ref *refs = NULL;
      int e = sorted_keys(v->u.arr.items, v->u.arr.n, depth + 1, &keys, &refs);
      if (!e && rpci_head_append(out, RPCI_MT_MAP, v->u.arr.n / 2)) e = nomem;
      for (size_t i = 0; !e && i < v->u.arr.n / 2; i++) {
        if (rpci_buf_append(out, keys.data + refs[i].off, refs[i].len)) e = nomem;
        if (!e) e = enc(&v->u.arr.items[2 * refs[i].idx + 1], out, depth + 1);
      }
      free(refs);
      rpci_buf_free(&keys);
      return e;
    }
  }
  return RPCI_VERR_MALFORMED;
}

int rpci_value_encode(const rpci_value *v, rpci_buf *out) { return enc(v, out, 0); }

/* ---- decoding ----------------------------------------------------------- */

typedef struct frame {
  rpci_value *c;      /* open container */
  uint64_t remaining; /* items still expected (definite) */
  int indef;
} frame;

typedef struct dec {
  const uint8_t *in;
  size_t len, pos;
  int max_depth, allow_simple;
  frame stack[RPCI_VALUE_MAX_DEPTH];
  int depth;
} dec;

/* Checks the content of the tags the mapping gives a meaning to. */
static int check_tag(const rpci_value *v) {
  const rpci_value *c = v->u.tag.content;
  switch (v->u.tag.tag) {
    case 0:
      return c->kind == RPCI_V_TEXT ? 0 : RPCI_VERR_INVALID_TAG;
    case 1:
      if (c->kind == RPCI_V_UINT || c->kind == RPCI_V_NINT) return 0;
      if (c->kind == RPCI_V_FLOAT && isfinite(c->u.f)) return 0;
      return RPCI_VERR_INVALID_TAG;
    case 2:
    case 3:
      return c->kind == RPCI_V_BYTES ? 0 : RPCI_VERR_INVALID_TAG;
    default:
      return 0;
  }
}

static int check_map(const rpci_value *m) {
  rpci_buf keys = RPCI_BUF_INIT;
  key_ref *refs = NULL;
  /* Keys were decoded within the depth limit, so encoding them cannot hit
   * the limit at depth 0; only duplicates or NOMEM come back. */
  int e = sorted_keys(m->u.arr.items, m->u.arr.n, 0, &keys, &refs);
  free(refs);
  rpci_buf_free(&keys);
  return e;
}

/* Called when container c got all its items. */
static int close_container(rpci_value *c) {
  if (c->kind == RPCI_V_MAP) return check_map(c);
  if (c->kind == RPCI_V_TAG) return check_tag(c);
  return 0;
}

/* Reads a string (definite or chunked) whose head h was just consumed. */
static int read_string(dec *d, const rpci_head *h, rpci_value *slot) {
  rpci_vkind kind = h->major == RPCI_MT_TEXT ? RPCI_V_TEXT : RPCI_V_BYTES;
  if (!h->indef) {
    if (h->arg > d->len - d->pos) return RPCI_VERR_TRUNCATED;
    const uint8_t *p = d->in + d->pos;
    size_t n = (size_t)h->arg;
    if (kind == RPCI_V_TEXT && !rpci_utf8_valid(p, n)) return RPCI_VERR_UTF8;
    if (rpci_value_set_str(slot, kind, p, n)) return RPCI_VERR_NOMEM;
    d->pos += n;
    return 0;
  }
  rpci_buf acc = RPCI_BUF_INIT;
  int e = 0;
  for (;;) {
    rpci_head ch;
    size_t at = d->pos;
    int r = rpci_head_parse(d->in + d->pos, d->len - d->pos, &ch);
    if (r == 0) {
      e = RPCI_VERR_TRUNCATED;
      break;
    }
    if (r < 0) {
      e = RPCI_VERR_MALFORMED;
      break;
    }
    if (ch.major == RPCI_MT_SIMPLE && ch.indef) { /* break */
      d->pos += 1;
      break;
    }
    if (ch.major != h->major || ch.indef) {
      e = RPCI_VERR_MALFORMED;
      break;
    }
    d->pos += ch.size;
    if (ch.arg > d->len - d->pos) {
      e = RPCI_VERR_TRUNCATED;
      break;
    }
    const uint8_t *p = d->in + d->pos;
    if (kind == RPCI_V_TEXT && !rpci_utf8_valid(p, (size_t)ch.arg)) {
      d->pos = at;
      e = RPCI_VERR_UTF8;
      break;
    }
    if (rpci_buf_append(&acc, p, (size_t)ch.arg)) {
      e = RPCI_VERR_NOMEM;
      break;
    }
    d->pos += (size_t)ch.arg;
  }
  if (!e && rpci_value_set_str(slot, kind, acc.data, acc.len)) e = RPCI_VERR_NOMEM;
  rpci_buf_free(&acc);
  return e;
}

/* Pushes container c; the caller has already checked the depth. */
static void push(dec *d, rpci_value *c, uint64_t remaining, int indef) {
  frame *f = &d->stack[d->depth++];
  f->c = c;
  f->remaining = remaining;
  f->indef = indef;
}

/* Decodes one item into *slot. Sets *opened when slot became an open
 * container (its children come next). */
static int read_item(dec *d, rpci_value *slot, int *opened) {
  rpci_head h;
  *opened = 0;
  int r = rpci_head_parse(d->in + d->pos, d->len - d->pos, &h);
  if (r == 0) return RPCI_VERR_TRUNCATED;
  if (r < 0) return RPCI_VERR_MALFORMED;
  size_t start = d->pos;
  d->pos += h.size;
  switch (h.major) {
    case RPCI_MT_UINT:
    case RPCI_MT_NINT:
      rpci_value_set_int(slot, h.major == RPCI_MT_NINT, h.arg);
      return 0;
    case RPCI_MT_BYTES:
    case RPCI_MT_TEXT:
      return read_string(d, &h, slot);
    case RPCI_MT_ARRAY:
    case RPCI_MT_MAP:
    case RPCI_MT_TAG: {
      if (d->depth >= d->max_depth) {
        d->pos = start;
        return RPCI_VERR_DEPTH;
      }
      uint64_t items = h.arg;
      if (h.major == RPCI_MT_TAG) {
        if (!rpci_value_tag_content(slot, h.arg)) return RPCI_VERR_NOMEM;
        push(d, slot, 1, 0);
        *opened = 1;
        return 0;
      }
      slot->kind = h.major == RPCI_MT_ARRAY ? RPCI_V_ARRAY : RPCI_V_MAP;
      if (!h.indef) {
        /* Every item takes at least one byte. */
        uint64_t left = d->len - d->pos;
        if (h.major == RPCI_MT_MAP) {
          if (items > left / 2) return RPCI_VERR_TRUNCATED;
          items *= 2;
        } else if (items > left) {
          return RPCI_VERR_TRUNCATED;
        }
        if (items == 0) return 0;
      }
      push(d, slot, items, h.indef);
      *opened = 1;
      return 0;
    }
    default:                                   /* major 7 */
      if (h.indef) return RPCI_VERR_MALFORMED; /* break outside a container */
      if (h.ai == 25 || h.ai == 26 || h.ai == 27) {
        double v;
        if (h.ai == 25) {
          v = rpci_half_to_double((uint16_t)h.arg);
        } else if (h.ai == 26) {
          uint32_t bits = (uint32_t)h.arg;
          float f;
          memcpy(&f, &bits, 4);
          v = f;
        } else {
          memcpy(&v, &h.arg, 8);
        }
        slot->kind = RPCI_V_FLOAT;
        slot->u.f = v;
        return 0;
      }
      if (h.arg == 20 || h.arg == 21) {
        slot->kind = RPCI_V_BOOL;
        slot->u.boolean = h.arg == 21;
        return 0;
      }
      if (h.arg == 22) {
        slot->kind = RPCI_V_NULL;
        return 0;
      }
      if (!d->allow_simple) {
        d->pos = start;
        return RPCI_VERR_UNSUPPORTED;
      }
      if (h.arg == 23) {
        slot->kind = RPCI_V_UNDEFINED;
      } else {
        slot->kind = RPCI_V_SIMPLE;
        slot->u.simple = (uint8_t)h.arg;
      }
      return 0;
  }
}

/* The slot for the next child of the innermost open container. */
static rpci_value *next_slot(dec *d) {
  rpci_value *c = d->stack[d->depth - 1].c;
  if (c->kind == RPCI_V_TAG) return c->u.tag.content;
  return rpci_value_append(c);
}

static int run(dec *d, rpci_value *root) {
  int opened, e = read_item(d, root, &opened);
  if (e) return e;
  int completed = !opened;
  for (;;) {
    if (completed) {
      /* An item just completed: count it in its parent, closing every
       * definite container that thereby got all its items. */
      while (d->depth > 0) {
        frame *f = &d->stack[d->depth - 1];
        if (f->indef || --f->remaining > 0) break;
        e = close_container(f->c);
        if (e) return e;
        d->depth--;
      }
      if (d->depth == 0) return 0;
    }
    frame *f = &d->stack[d->depth - 1];
    if (f->indef && d->pos < d->len && d->in[d->pos] == 0xff) {
      if (f->c->kind == RPCI_V_MAP && f->c->u.arr.n % 2) return RPCI_VERR_MALFORMED;
      d->pos++;
      e = close_container(f->c);
      if (e) return e;
      d->depth--;
      completed = 1;
      continue;
    }
    rpci_value *slot = next_slot(d);
    if (!slot) return RPCI_VERR_NOMEM;
    e = read_item(d, slot, &opened);
    if (e) return e;
    completed = !opened;
  }
}

int rpci_value_decode_one(const uint8_t *in, size_t len, const rpci_vdec_opts *opts,
                          rpci_value **out, size_t *used) {
  dec d;
  d.in = in;
  d.len = len;
  d.pos = 0;
  d.depth = 0;
  d.max_depth = RPCI_VALUE_MAX_DEPTH;
  d.allow_simple = 0;
  if (opts) {
    if (opts->max_depth > 0 && opts->max_depth < RPCI_VALUE_MAX_DEPTH)
      d.max_depth = opts->max_depth;
    d.allow_simple = opts->allow_simple;
  }
  *out = NULL;
  rpci_value *root = rpci_value_new();
  if (!root) return RPCI_VERR_NOMEM;
  int e = run(&d, root);
  if (used) *used = d.pos;
  if (e) {
    rpci_value_free(root);
    return e;
  }
  *out = root;
  return 0;
}

int rpci_value_decode(const uint8_t *in, size_t len, const rpci_vdec_opts *opts, rpci_value **out,
                      size_t *err_off) {
  size_t used = 0;
  int e = rpci_value_decode_one(in, len, opts, out, &used);
  if (!e && used != len) {
    rpci_value_free(*out);
    *out = NULL;
    e = RPCI_VERR_TRAILING;
  }
  if (err_off) *err_off = used;
  return e;
}
