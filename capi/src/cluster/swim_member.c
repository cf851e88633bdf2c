/*
 * The record table of the SWIM core: lookup, insertion, update, removal,
 * and the single place where (incarnation, state) changes.
 *
 * Design notes
 * - Records are 32-byte structs in one array; self is record 0 and is
 *   never removed. Removal moves the last record into the hole (indices are
 *   not stable across rpci_swim_m_remove; the suspicion heap, the only
 *   holder of indices across calls, is fixed up here).
 * - A chained hash index (FNV-1a of the name, power-of-two buckets, load
 *   <= 1) finds a record in O(1).
 * - Strings live in an arena entry: name\0 addr\0 rpc\0, a 2-byte
 *   little-endian length, then the canonical tag map. Replaced entries
 *   become garbage; the arena is compacted when garbage passes half of it.
 *   Any change to the table may move the arena: slices into it are only
 *   valid until then.
 * - The digest hash is a sum (mod 2^64) of per-record hashes of
 *   (name, incarnation, rank), independent of record order and kept up to
 *   date in O(1) per change.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"

/* name + addr + rpc + NULs + length + tags, with room to spare. */
#define ENTRY_MAX (3 * 65 + 2 + 2048)

static uint32_t fnv32(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rpci_swim_name_hash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return mix64(h);
}

int rpci_swim_rank(int state) { return state == RPCI_MS_LEFT ? 2 : state == RPCI_MS_DEAD ? 1 : 0; }

uint64_t rpci_swim_m_dhash(const char *name, uint64_t inc, int state) {
  uint64_t h = rpci_swim_name_hash((const uint8_t *)name, strlen(name));
  return mix64(h ^ mix64(inc * 4 + (uint64_t)rpci_swim_rank(state) + 1));
}

const char *rpci_swim_m_name(const rpci_swim *s, uint32_t i) { return s->arena + s->m[i].off; }

const char *rpci_swim_m_addr(const rpci_swim *s, uint32_t i) {
  const char *p = rpci_swim_m_name(s, i);
  return p + strlen(p) + 1;
}

const char *rpci_swim_m_rpc(const rpci_swim *s, uint32_t i) {
  const char *p = rpci_swim_m_addr(s, i);
  return p + strlen(p) + 1;
}

rpci_gstr rpci_swim_m_tags(const rpci_swim *s, uint32_t i) {
  const char *p = rpci_swim_m_rpc(s, i);
  const uint8_t *q = (const uint8_t *)p + strlen(p) + 1;
  rpci_gstr g = {q + 2, (size_t)q[0] | (size_t)q[1] << 8};
  return g;
}

static size_t entry_size(const rpci_swim *s, uint32_t i) {
  rpci_gstr t = rpci_swim_m_tags(s, i);
  return (size_t)(t.p + t.n - (const uint8_t *)rpci_swim_m_name(s, i));
}

void rpci_swim_m_alive(const rpci_swim *s, uint32_t i, rpci_galive *a) {
  a->name = rpci_gstr_c(rpci_swim_m_name(s, i));
  a->addr = rpci_gstr_c(rpci_swim_m_addr(s, i));
  a->rpc_addr = rpci_gstr_c(rpci_swim_m_rpc(s, i));
  a->tags = rpci_swim_m_tags(s, i);
  a->ntags = 0;
  a->inc = s->m[i].inc;
  a->pmin = s->m[i].pmin;
  a->pmax = s->m[i].pmax;
}

/* Builds an arena entry for a into out[ENTRY_MAX]; returns its size. */
static size_t build_entry(uint8_t *out, const rpci_galive *a) {
  static const uint8_t empty_map = 0xa0;
  rpci_gstr tags = a->tags;
  if (tags.n == 0) {
    tags.p = &empty_map;
    tags.n = 1;
  }
  size_t o = 0;
  memcpy(out + o, a->name.p, a->name.n);
  o += a->name.n;
  out[o++] = 0;
  if (a->addr.n) memcpy(out + o, a->addr.p, a->addr.n);
  o += a->addr.n;
  out[o++] = 0;
  if (a->rpc_addr.n) memcpy(out + o, a->rpc_addr.p, a->rpc_addr.n);
  o += a->rpc_addr.n;
  out[o++] = 0;
  out[o++] = (uint8_t)(tags.n & 0xff);
  out[o++] = (uint8_t)(tags.n >> 8);
  memcpy(out + o, tags.p, tags.n);
  return o + tags.n;
}

static void arena_compact(rpci_swim *s) {
  size_t need = s->arena_len - s->arena_garbage;
  char *na = malloc(need ? need : 1);
  if (!na) return; /* keep the garbage; correctness is unaffected */
  size_t o = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    size_t sz = entry_size(s, i);
    memcpy(na + o, s->arena + s->m[i].off, sz);
    s->m[i].off = (uint32_t)o;
    o += sz;
  }
  free(s->arena);
  s->arena = na;
  s->arena_len = s->arena_cap = o;
  s->arena_garbage = 0;
}

/* Appends an entry; returns its offset or -1. */
static int64_t arena_put(rpci_swim *s, const uint8_t *e, size_t sz) {
  if (s->arena_garbage > 4096 && s->arena_garbage * 2 > s->arena_len) arena_compact(s);
  if (s->arena_len + sz > UINT32_MAX) return -1;
  if (s->arena_len + sz > s->arena_cap) {
    size_t cap = s->arena_cap ? s->arena_cap : 256;
    while (cap < s->arena_len + sz) cap += cap / 2;
    char *na = realloc(s->arena, cap);
    if (!na) return -1;
    s->arena = na;
    s->arena_cap = cap;
  }
  memcpy(s->arena + s->arena_len, e, sz);
  s->arena_len += sz;
  return (int64_t)(s->arena_len - sz);
}

int64_t rpci_swim_m_find(const rpci_swim *s, const uint8_t *name, size_t n) {
  if (!s->nbuckets) return -1;
  uint32_t b = fnv32(name, n) & (s->nbuckets - 1);
  for (uint32_t v = s->buckets[b]; v; v = s->m[v - 1].next) {
    const char *mn = rpci_swim_m_name(s, v - 1);
    if (strncmp(mn, (const char *)name, n) == 0 && mn[n] == 0) return v - 1;
  }
  return -1;
}

static void chain_link(rpci_swim *s, uint32_t i) {
  const char *nm = rpci_swim_m_name(s, i);
  uint32_t b = fnv32((const uint8_t *)nm, strlen(nm)) & (s->nbuckets - 1);
  s->m[i].next = s->buckets[b];
  s->buckets[b] = i + 1;
}

static int rehash(rpci_swim *s, uint32_t want) {
  uint32_t nb = s->nbuckets ? s->nbuckets : 16;
  while (nb < want) nb *= 2;
  if (nb == s->nbuckets) return 0;
  uint32_t *b = calloc(nb, sizeof *b);
  if (!b) return -1;
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = nb;
  for (uint32_t i = 0; i < s->n; i++) chain_link(s, i);
  return 0;
}

/* Makes room for `more` records (exact growth for large batches). */
static int reserve(rpci_swim *s, uint32_t more) {
  if (s->n + more <= s->cap) return 0;
  uint32_t cap = s->cap ? s->cap + s->cap / 2 : 8;
  if (cap < s->n + more) cap = s->n + more;
  rpci_mem *m = realloc(s->m, (size_t)cap * sizeof *m);
  if (!m) return -1;
  s->m = m;
  s->cap = cap;
  return 0;
}

int64_t rpci_swim_m_insert(rpci_swim *s, const rpci_galive *a, int state, int64_t changed) {
  uint8_t e[ENTRY_MAX];
  size_t sz = build_entry(e, a);
  if (reserve(s, 1) || (s->n + 1 > s->nbuckets && rehash(s, s->n + 1))) return -1;
  int64_t off = arena_put(s, e, sz);
  if (off < 0) return -1;
  uint32_t i = s->n++;
  rpci_mem *m = &s->m[i];
  memset(m, 0, sizeof *m);
  m->off = (uint32_t)off;
  m->inc = a->inc;
  m->changed = changed;
  m->state = (uint8_t)state;
  m->pmin = a->pmin;
  m->pmax = a->pmax;
  chain_link(s, i);
  if (i) s->count[state]++;
  s->digest += rpci_swim_m_dhash(rpci_swim_m_name(s, i), a->inc, state);
  if (i && s->trace) s->trace(s->trace_ud, s, rpci_swim_m_name(s, i), a->inc, state, 0);
  return i;
}

int rpci_swim_m_update(rpci_swim *s, uint32_t i, const rpci_galive *a) {
  uint8_t e[ENTRY_MAX];
  size_t sz = build_entry(e, a);
  rpci_mem *m = &s->m[i];
  size_t old = entry_size(s, i);
  int same_ver = m->pmin == a->pmin && m->pmax == a->pmax;
  if (old == sz && memcmp(s->arena + m->off, e, sz) == 0) {
    if (same_ver) return 0;
    m->pmin = a->pmin;
    m->pmax = a->pmax;
    return 1;
  }
  int64_t off = arena_put(s, e, sz);
  if (off < 0) return -1;
  m = &s->m[i];
  s->arena_garbage += old;
  m->off = (uint32_t)off;
  m->pmin = a->pmin;
  m->pmax = a->pmax;
  return 1;
}

void rpci_swim_m_set_state(rpci_swim *s, uint32_t i, int state, uint64_t inc) {
  rpci_mem *m = &s->m[i];
  int old = m->state;
  if (old == state && m->inc == inc) return;
  const char *name = rpci_swim_m_name(s, i);
  s->digest -= rpci_swim_m_dhash(name, m->inc, old);
  s->digest += rpci_swim_m_dhash(name, inc, state);
  m->inc = inc;
  if (old != state) {
    m->state = (uint8_t)state;
    m->changed = s->now;
    if (i) {
      s->count[old]--;
      s->count[state]++;
      rpci_swim_part_note(s, old, state);
    }
  }
  if (i && s->trace) s->trace(s->trace_ud, s, name, inc, state, 0);
}

void rpci_swim_m_remove(rpci_swim *s, uint32_t i) {
  if (i == 0 || i >= s->n) return;
  rpci_mem *m = &s->m[i];
  const char *name = rpci_swim_m_name(s, i);
  if (m->susp) rpci_swim_susp_cancel(s, i);
  if (s->trace) s->trace(s->trace_ud, s, name, m->inc, m->state, 1);
  s->count[m->state]--;
  s->digest -= rpci_swim_m_dhash(name, m->inc, m->state);
  s->arena_garbage += entry_size(s, i);
  /* Unlink i from its chain. */
  uint32_t b = fnv32((const uint8_t *)name, strlen(name)) & (s->nbuckets - 1);
  uint32_t *pp = &s->buckets[b];
  while (*pp != i + 1) pp = &s->m[*pp - 1].next;
  *pp = m->next;
  uint32_t last = s->n - 1;
  if (i != last) {
    const char *ln = rpci_swim_m_name(s, last);
    uint32_t lb = fnv32((const uint8_t *)ln, strlen(ln)) & (s->nbuckets - 1);
    pp = &s->buckets[lb];
    while (*pp != last + 1) pp = &s->m[*pp - 1].next;
    *pp = i + 1;
    s->m[i] = s->m[last];
    if (s->m[i].susp) s->susp[s->m[i].susp - 1].mem = i;
  }
  s->n--;
}
