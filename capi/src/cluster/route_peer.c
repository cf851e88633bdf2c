/* Judgement on one peer of the worker registry: see route_peer.h for the
 * design notes (in-flight list, EWMA, phi accrual, circuit breaker). */
#include "cluster/route_peer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- phi ---------------------------------------------------------------- */

static double phi_of_z(double z) {
  double tail = 0.5 * erfc(z / sqrt(2.0));
  if (!(tail > 1e-100)) return 100.0;
  double phi = -log10(tail);
  return phi < 0 ? 0 : phi > 100 ? 100 : phi;
}

double rpci_phi_z(double phi) {
  double lo = -40, hi = 40; /* phi_of_z is increasing */
  for (int i = 0; i < 200; i++) {
    double mid = (lo + hi) / 2;
    if (phi_of_z(mid) < phi)
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

double rpci_rpeer_mean(const rpci_rpeer *p) { return p->wn ? (double)p->wsum / p->wn : 0; }

/* Standard deviation of the window with the floor of the design notes. */
static double rpeer_sd(const rpci_rpeer *p) {
  double mean = rpci_rpeer_mean(p);
  double var = (double)p->wsq / p->wn - mean * mean;
  double sd = var > 0 ? sqrt(var) : 0;
  if (sd < mean / 4) sd = mean / 4;
  return sd < RPCI_PHI_MIN_SD_US ? RPCI_PHI_MIN_SD_US : sd;
}

/* The age phi looks at: oldest call in flight, else the last latency. */
static double phi_age(const rpci_rpeer *p, int64_t now_us) {
  return p->nstarts ? (double)(now_us - p->starts[0]) : (double)p->last_us;
}

double rpci_rpeer_phi(const rpci_rpeer *p, int64_t now_us) {
  if (p->wn < RPCI_PHI_MIN_SAMPLES) return 0;
  return phi_of_z((phi_age(p, now_us) - rpci_rpeer_mean(p)) / rpeer_sd(p));
}

int rpci_rpeer_outlier(const rpci_rpeer *p, const rpci_judge_cfg *c, int64_t now_us) {
  if (p->wn < RPCI_PHI_MIN_SAMPLES || !(phi_age(p, now_us) > p->eject_at_us)) return 0;
  /* an idle outlier gets a call again after a quiet cool-down */
  return p->nstarts || now_us - p->last_done_us < c->base_us;
}

double rpci_rpeer_estimate(const rpci_rpeer *p, double prior_us, int64_t now_us) {
  if (p->ewma_us <= 0) return prior_us;
  if (p->nstarts || now_us <= p->ewma_at_us) return p->ewma_us;
  double w = exp(-(double)(now_us - p->ewma_at_us) / RPCI_ROUTE_EWMA_IDLE_US);
  return p->ewma_us * w + prior_us * (1 - w);
}

static void add_sample(rpci_rpeer *p, const rpci_judge_cfg *c, int64_t lat, int64_t now_us) {
  if (lat < 0) lat = 0;
  if (lat > RPCI_ROUTE_SAMPLE_MAX) lat = RPCI_ROUTE_SAMPLE_MAX;
  if (!p->win && !(p->win = calloc((size_t)c->window, sizeof *p->win))) return;
  if (p->wn == c->window) {
    int64_t old = p->win[p->wpos];
    p->wsum -= old;
    p->wsq -= old * old;
  } else {
    p->wn++;
  }
  p->win[p->wpos] = lat;
  p->wpos = (p->wpos + 1) % c->window;
  p->wsum += lat;
  p->wsq += lat * lat;
  p->last_us = lat;
  p->ewma_us = p->ewma_us > 0 ? p->ewma_us + ((double)lat - p->ewma_us) / 4 : (double)lat;
  if (p->ewma_us <= 0) p->ewma_us = 1; /* 0 means "no sample" in rpci_route_info */
  p->ewma_at_us = now_us;
  p->eject_at_us = isinf(c->z_eject) ? HUGE_VAL : rpci_rpeer_mean(p) + c->z_eject * rpeer_sd(p);
}

/* ---- in flight ---------------------------------------------------------- */

/* Index of the first start >= t. */
static size_t lower_bound(const rpci_rpeer *p, int64_t t) {
  size_t lo = 0, hi = p->nstarts;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (p->starts[mid] < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int rpci_rpeer_start(rpci_rpeer *p, double prior_us, int64_t now_us) {
  if (p->nstarts == p->cap_starts) {
    size_t cap = p->cap_starts ? 2 * p->cap_starts : 8;
    int64_t *s = realloc(p->starts, cap * sizeof *s);
    if (!s) return -1;
    p->starts = s;
    p->cap_starts = cap;
  }
  if (p->nstarts == 0 && p->ewma_us > 0) { /* fold in the idle decay */
    p->ewma_us = rpci_rpeer_estimate(p, prior_us, now_us);
    p->ewma_at_us = now_us;
  }
  size_t i = lower_bound(p, now_us + 1); /* after equal times: usually the end */
  memmove(&p->starts[i + 1], &p->starts[i], (p->nstarts - i) * sizeof *p->starts);
  p->starts[i] = now_us;
  p->nstarts++;
  p->calls++;
  if (p->breaker == RPCI_BREAKER_HALF && !p->probe) {
    p->probe = 1;
    p->probe_start_us = now_us;
  }
  return 0;
}

/* Removes one start time t. Returns 1, or 0 when there is none. */
static int take_start(rpci_rpeer *p, int64_t t) {
  size_t i = lower_bound(p, t);
  if (i == p->nstarts || p->starts[i] != t) return 0;
  memmove(&p->starts[i], &p->starts[i + 1], (p->nstarts - i - 1) * sizeof *p->starts);
  p->nstarts--;
  return 1;
}

/* ---- breaker ------------------------------------------------------------ */

int rpci_rpeer_admits(rpci_rpeer *p, int64_t now_us) {
  if (p->breaker == RPCI_BREAKER_OPEN && now_us >= p->open_until_us) {
    p->breaker = RPCI_BREAKER_HALF;
    p->probe = 0;
  }
  return p->breaker == RPCI_BREAKER_CLOSED || (p->breaker == RPCI_BREAKER_HALF && !p->probe);
}

static void breaker_open(rpci_rpeer *p, const rpci_judge_cfg *c, int64_t now_us) {
  int64_t cool = c->base_us;
  for (int i = 0; i < p->reopens && cool < c->max_us; i++) cool *= 2;
  if (cool > c->max_us) cool = c->max_us;
  p->breaker = RPCI_BREAKER_OPEN;
  p->open_until_us = now_us + cool;
  p->reopens++;
  p->probe = 0;
  p->consecutive = 0;
}

static void breaker_judge(rpci_rpeer *p, const rpci_judge_cfg *c, int is_probe, int ok,
                          int64_t now_us) {
  if (p->breaker == RPCI_BREAKER_CLOSED) {
    p->consecutive = ok ? 0 : p->consecutive + 1;
    if (p->consecutive >= c->failures) breaker_open(p, c, now_us);
  } else if (is_probe && ok) {
    p->breaker = RPCI_BREAKER_CLOSED;
    p->reopens = 0;
    p->probe = 0;
    p->consecutive = 0;
  } else if (is_probe) {
    breaker_open(p, c, now_us);
  }
}

void rpci_rpeer_done(rpci_rpeer *p, const rpci_judge_cfg *c, int64_t started_us, int64_t now_us,
                     int outcome) {
  if (!take_start(p, started_us)) return;
  int is_probe = p->breaker == RPCI_BREAKER_HALF && p->probe && p->probe_start_us == started_us;
  if (outcome == RPCI_ROUTE_ABANDONED) {
    if (is_probe) p->probe = 0;
    return;
  }
  p->last_done_us = now_us;
  if (outcome == RPCI_ROUTE_OK) {
    add_sample(p, c, now_us - started_us, now_us);
  } else {
    p->failures++;
  }
  breaker_judge(p, c, is_probe, outcome == RPCI_ROUTE_OK, now_us);
}

void rpci_rpeer_clear(rpci_rpeer *p) {
  free(p->starts);
  free(p->win);
  free(p->tag_store);
  free(p->tag_keys);
  p->starts = NULL;
  p->win = NULL;
  p->tag_store = NULL;
  p->tag_keys = p->tag_values = NULL;
}
