/*
 * The worker registry: see route.h for the contract and route_peer.h for the
 * judgement kept on each peer.
 *
 * Design notes (beyond route.h)
 * - Peers are an array of pointers in insertion order (round robin walks
 *   it); lookups by name are linear: registries hold tens to hundreds of
 *   peers and every pick looks at each of them anyway.
 * - A pick ranks every peer that matches the filter and is not excluded
 *   into four tiers and lets the strategy choose within the best non-empty
 *   one: 0 alive and eligible, 1 suspect and eligible, 2 alive but judged
 *   (outlier, or breaker not admitting), 3 suspect and judged. So a pick
 *   fails only when no peer matches at all.
 * - Round robin keeps a cursor into the peer array and takes the first
 *   candidate at or after it, so a stable candidate set rotates exactly.
 * - Randomness: splitmix64 seeded from the configuration; bounded draws
 *   use the high 32 bits times n (bias below 2^-32 * n).
 * - Outcomes for unknown names, or for calls the peer does not hold in
 *   flight (it was removed and added again), are ignored.
 */
#include "cluster/route.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/route_peer.h"

struct rpci_router {
  int strategy;
  rpci_judge_cfg judge;
  uint64_t rng;
  rpci_rpeer **peers;
  size_t n, cap;
  size_t *cand; /* scratch of cap entries */
  size_t rr;    /* round-robin cursor */
  int64_t *scratch;
  size_t scratch_cap;
};

static const char *const strategy_names[] = {"p2c", "round_robin", "random", "least_connections"};

int rpci_strategy_parse(const char *s) {
  for (int i = 0; s && i < 4; i++)
    if (strcmp(s, strategy_names[i]) == 0) return i;
  return -1;
}

const char *rpci_strategy_name(int strategy) {
  return strategy >= 0 && strategy < 4 ? strategy_names[strategy] : "unknown";
}

void rpci_route_cfg_defaults(rpci_route_cfg *cfg) {
  cfg->strategy = RPCI_ROUTE_P2C;
  cfg->breaker_failures = 5;
  cfg->breaker_base_ms = 1000;
  cfg->breaker_max_ms = 30000;
  cfg->phi_eject = 8.0;
  cfg->window = 64;
  cfg->seed = 0;
}

/* ---- randomness --------------------------------------------------------- */

static uint64_t next_rand(rpci_router *r) {
  uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n), n < 2^32. */
static size_t below(rpci_router *r, size_t n) {
  return (size_t)(((next_rand(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- registry ----------------------------------------------------------- */

rpci_router *rpci_route_new(const rpci_route_cfg *cfg) {
  rpci_route_cfg d;
  rpci_route_cfg_defaults(&d);
  if (cfg) {
    d.strategy = cfg->strategy >= 0 && cfg->strategy < 4 ? cfg->strategy : RPCI_ROUTE_P2C;
    if (cfg->breaker_failures > 0) d.breaker_failures = cfg->breaker_failures;
    if (cfg->breaker_base_ms > 0) d.breaker_base_ms = cfg->breaker_base_ms;
    if (cfg->breaker_max_ms > 0) d.breaker_max_ms = cfg->breaker_max_ms;
    d.phi_eject = cfg->phi_eject;
    if (cfg->window > 0) d.window = cfg->window;
    d.seed = cfg->seed;
  }
  rpci_router *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->strategy = d.strategy;
  r->rng = d.seed;
  r->judge.failures = d.breaker_failures;
  r->judge.base_us = (int64_t)d.breaker_base_ms * 1000;
  r->judge.max_us =
      (int64_t)(d.breaker_max_ms < d.breaker_base_ms ? d.breaker_base_ms : d.breaker_max_ms) * 1000;
  r->judge.window = d.window < 2                       ? 2
                    : d.window > RPCI_ROUTE_WINDOW_MAX ? RPCI_ROUTE_WINDOW_MAX
                                                       : d.window;
  r->judge.z_eject = d.phi_eject > 0 && d.phi_eject < 100 ? rpci_phi_z(d.phi_eject) : HUGE_VAL;
  return r;
}

void rpci_route_free(rpci_router *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    rpci_rpeer_clear(r->peers[i]);
    free(r->peers[i]);
  }
  free(r->peers);
  free(r->cand);
  free(r->scratch);
  free(r);
}

static long find(const rpci_router *r, const char *name) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->peers[i]->name, name) == 0) return (long)i;
  return -1;
}

/* Copies the tags into one block. Returns 0 or -1. */
static int set_tags(rpci_rpeer *p, const char *const *keys, const char *const *values, size_t n) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += strlen(keys[i]) + strlen(values[i]) + 2;
  char *store = malloc(bytes ? bytes : 1);
  const char **ptrs = calloc(2 * n + 1, sizeof *ptrs);
  if (!store || !ptrs) {
    free(store);
    free(ptrs);
    return -1;
  }
  char *s = store;
  for (size_t i = 0; i < n; i++) {
    ptrs[i] = strcpy(s, keys[i]);
    s += strlen(s) + 1;
    ptrs[n + i] = strcpy(s, values[i]);
    s += strlen(s) + 1;
  }
  free(p->tag_store);
  free(p->tag_keys);
  p->tag_store = store;
  p->tag_keys = ptrs;
  p->tag_values = ptrs + n;
  p->ntags = n;
  return 0;
}

/* Room for one more peer. Returns 0 or -1. */
static int grow(rpci_router *r) {
  if (r->n < r->cap) return 0;
  size_t cap = r->cap ? 2 * r->cap : 8;
  rpci_rpeer **peers = realloc(r->peers, cap * sizeof *peers);
  if (!peers) return -1;
  r->peers = peers;
  size_t *cand = realloc(r->cand, cap * sizeof *cand);
  if (!cand) return -1;
  r->cand = cand;
  r->cap = cap;
  return 0;
}

int rpci_route_upsert(rpci_router *r, const char *name, const char *rpc_addr,
                      const char *const *tag_keys, const char *const *tag_values, size_t ntags,
                      int suspect) {
  if (!rpc_addr) rpc_addr = "";
  if (strlen(name) >= RPCI_ROUTE_NAME || strlen(rpc_addr) >= RPCI_ROUTE_ADDR) return -1;
  long i = find(r, name);
  rpci_rpeer *p = i >= 0 ? r->peers[i] : NULL;
  int fresh = p == NULL;
  if (fresh && (grow(r) || !(p = calloc(1, sizeof *p)))) return -1;
  if (set_tags(p, tag_keys, tag_values, ntags)) {
    if (fresh) free(p);
    return -1;
  }
  if (fresh) {
    strcpy(p->name, name);
    r->peers[r->n++] = p;
  }
  strcpy(p->addr, rpc_addr);
  p->suspect = suspect != 0;
  return 0;
}

void rpci_route_remove(rpci_router *r, const char *name) {
  long i = find(r, name);
  if (i < 0) return;
  rpci_rpeer_clear(r->peers[i]);
  free(r->peers[i]);
  memmove(&r->peers[i], &r->peers[i + 1], (r->n - (size_t)i - 1) * sizeof *r->peers);
  r->n--;
  if (r->rr > (size_t)i) r->rr--;
}

/* ---- picking ------------------------------------------------------------ */

static int excluded(const char *name, const char *const *exclude, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (exclude[i] && strcmp(exclude[i], name) == 0) return 1;
  return 0;
}

/* Tier of a candidate (see the design notes). */
static int tier(rpci_router *r, rpci_rpeer *p, int64_t now_us) {
  int judged = !rpci_rpeer_admits(p, now_us) || rpci_rpeer_outlier(p, &r->judge, now_us);
  return 2 * judged + p->suspect;
}

/* What a pick knows about latencies: the sum and count of the peers'
 * EWMAs, for the prior of each peer (the mean of the others, or 1 ms). */
typedef struct ewma_sum {
  double sum;
  int n;
} ewma_sum;

static double prior(const ewma_sum *e, const rpci_rpeer *p) {
  int has = p->ewma_us > 0, n = e->n - has;
  return n > 0 ? (e->sum - (has ? p->ewma_us : 0)) / n : 1000.0;
}

static double cost(const rpci_rpeer *p, const ewma_sum *e, int64_t now_us) {
  return (double)(p->nstarts + 1) * rpci_rpeer_estimate(p, prior(e, p), now_us);
}

static size_t pick_p2c(rpci_router *r, const size_t *cand, size_t n, const ewma_sum *e,
                       int64_t now_us) {
  if (n == 1) return cand[0];
  size_t a = below(r, n), b = below(r, n - 1);
  if (b >= a) b++;
  rpci_rpeer *pa = r->peers[cand[a]], *pb = r->peers[cand[b]];
  return cost(pb, e, now_us) < cost(pa, e, now_us) ? cand[b] : cand[a];
}

static size_t pick_least(rpci_router *r, const size_t *cand, size_t n) {
  size_t best = cand[0], ties = 1;
  for (size_t i = 1; i < n; i++) {
    size_t have = r->peers[best]->nstarts, load = r->peers[cand[i]]->nstarts;
    if (load < have) {
      best = cand[i];
      ties = 1;
    } else if (load == have && below(r, ++ties) == 0) {
      best = cand[i]; /* reservoir sampling over the ties */
    }
  }
  return best;
}

static size_t pick_rr(rpci_router *r, const size_t *cand, size_t n) {
  size_t best = cand[0];
  for (size_t i = 0; i < n; i++)
    if (cand[i] >= r->rr) {
      best = cand[i];
      break;
    }
  r->rr = best + 1;
  return best;
}

static size_t choose(rpci_router *r, const size_t *cand, size_t n, const ewma_sum *e,
                     int64_t now_us) {
  switch (r->strategy) {
    case RPCI_ROUTE_ROUND_ROBIN:
      return pick_rr(r, cand, n);
    case RPCI_ROUTE_RANDOM:
      return cand[below(r, n)];
    case RPCI_ROUTE_LEAST_CONN:
      return pick_least(r, cand, n);
    default:
      return pick_p2c(r, cand, n, e, now_us);
  }
}

int rpci_route_pick(rpci_router *r, const rpci_filter *f, const char *const *exclude,
                    size_t nexclude, int64_t now_us, char *name, char *addr) {
  size_t n = 0;
  int best = 4;
  ewma_sum e = {0, 0};
  for (size_t i = 0; i < r->n; i++) {
    rpci_rpeer *p = r->peers[i];
    if (p->ewma_us > 0) e.sum += p->ewma_us, e.n++;
    if (!rpci_filter_match(f, p->tag_keys, p->tag_values, p->ntags) ||
        excluded(p->name, exclude, nexclude))
      continue;
    int t = tier(r, p, now_us);
    if (t < best) best = t, n = 0;
    if (t == best) r->cand[n++] = i;
  }
  if (n == 0) return -1;
  rpci_rpeer *p = r->peers[choose(r, r->cand, n, &e, now_us)];
  if (rpci_rpeer_start(p, prior(&e, p), now_us)) return -1;
  memcpy(name, p->name, RPCI_ROUTE_NAME);
  memcpy(addr, p->addr, RPCI_ROUTE_ADDR);
  return 0;
}

void rpci_route_done(rpci_router *r, const char *name, int64_t started_us, int64_t now_us,
                     int outcome) {
  long i = name ? find(r, name) : -1;
  if (i >= 0) rpci_rpeer_done(r->peers[i], &r->judge, started_us, now_us, outcome);
}

int rpci_route_info_get(rpci_router *r, const char *name, int64_t now_us, rpci_route_info *out) {
  long i = find(r, name);
  if (i < 0) return -1;
  rpci_rpeer *p = r->peers[i];
  rpci_rpeer_admits(p, now_us); /* report half-open once the cool-down is over */
  out->inflight = (int)p->nstarts;
  out->ewma_us = p->ewma_us;
  out->phi = rpci_rpeer_phi(p, now_us);
  out->breaker = p->breaker;
  out->calls = p->calls;
  out->failures = p->failures;
  return 0;
}

/* ---- percentile --------------------------------------------------------- */

static void swap64(int64_t *a, int64_t *b) {
  int64_t t = *a;
  *a = *b;
  *b = t;
}

/* The k-th smallest of a[0..n) (quickselect, three-way partition;
 * reorders a). */
static int64_t select_kth(int64_t *a, size_t n, size_t k) {
  size_t lo = 0, hi = n;
  while (hi - lo > 1) {
    int64_t pivot = a[lo + (hi - lo) / 2];
    size_t lt = lo, i = lo, gt = hi;
    while (i < gt) {
      if (a[i] < pivot)
        swap64(&a[lt++], &a[i++]);
      else if (a[i] > pivot)
        swap64(&a[i], &a[--gt]);
      else
        i++;
    }
    if (k < lt)
      hi = lt;
    else if (k >= gt)
      lo = gt;
    else
      return pivot;
  }
  return a[lo];
}

int64_t rpci_route_percentile_us(rpci_router *r, double p) {
  size_t total = 0;
  for (size_t i = 0; i < r->n; i++) total += (size_t)r->peers[i]->wn;
  if (total < 16 || !(p > 0 && p < 1)) return 0;
  if (total > r->scratch_cap) {
    int64_t *s = realloc(r->scratch, total * sizeof *s);
    if (!s) return 0;
    r->scratch = s;
    r->scratch_cap = total;
  }
  size_t m = 0;
  for (size_t i = 0; i < r->n; i++) {
    const rpci_rpeer *q = r->peers[i];
    if (q->wn) memcpy(r->scratch + m, q->win, (size_t)q->wn * sizeof *q->win);
    m += (size_t)q->wn;
  }
  size_t k = (size_t)ceil(p * (double)total);
  return select_kth(r->scratch, total, k ? k - 1 : 0);
}
