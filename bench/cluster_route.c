/*
 * rpcnet_cluster_route: compares the worker registry's four strategies
 * (capi/src/cluster/route.h) in simulated time, and measures what one
 * pick + done costs in real time.
 *
 * Design notes
 * - The simulation is a discrete-event model, deterministic for a seed: a
 *   client with Poisson arrivals picks a worker per call through the real
 *   router (default configuration: phi ejection at 8, breaker untouched
 *   since no call fails) and reports each completion with rpci_route_done.
 * - Workers serve `slots` calls at once, FIFO beyond that. Service times are
 *   log-normal (sigma 0.5) around a median of 1 ms; worker w0 is 5x slower;
 *   worker w1 freezes for stall_ms every period_ms (calls in service or
 *   queued there make no progress meanwhile, like a GC pause).
 * - Load is offered as a fraction of the cluster's nominal capacity (the
 *   sum of slots / mean service time, the staller counted for the share of
 *   time it runs). Round robin and random send w0 an eighth of the calls
 *   whatever it can take, so above ~23% load its queue grows for the whole
 *   run: their figures then depend on the run length. That is the point.
 * - Latency is completion minus arrival: queueing included.
 * - The real-time cost: the same router with 8 idle peers, one pick and one
 *   done per iteration, minus an empty loop doing the same bookkeeping.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/route.h"

#define WORKERS 8
#define SLOTS 4

typedef struct sim_opts {
  long requests;
  double median_ms, slow_factor, stall_ms, period_ms;
  uint64_t seed;
} sim_opts;

/* ---- randomness (the simulation's own, not the router's) ---------------- */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) {
  return ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s) {
  return sqrt(-2 * log(rng_unit(s))) * cos(2 * M_PI * rng_unit(s));
}

/* ---- workers ------------------------------------------------------------ */

typedef struct job {
  double arrival_us;
  int64_t picked_us;
} job;

typedef struct worker {
  char name[8];
  double median_us;
  int stalls;
  int busy;
  job *queue; /* ring of waiting jobs */
  size_t qhead, qlen, qcap;
} worker;

typedef struct event {
  double t_us;
  int worker;
  job j;
} event;

typedef struct sim {
  const sim_opts *o;
  worker w[WORKERS];
  event *heap;
  size_t nheap, capheap;
  uint64_t rng;
  double *lat;
  size_t nlat;
  long to_slow, to_staller;
} sim;

/* Working time of the staller up to real time t (it is frozen for stall
 * at the start of each period), and the inverse. */
static double eff_time(const sim_opts *o, double t) {
  double p = o->period_ms * 1000, d = o->stall_ms * 1000, k = floor(t / p), r = t - k * p;
  return k * (p - d) + (r > d ? r - d : 0);
}

static double real_time(const sim_opts *o, double e) {
  double p = o->period_ms * 1000, d = o->stall_ms * 1000, k = floor(e / (p - d));
  return k * p + d + (e - k * (p - d));
}

static double service_us(sim *s, const worker *w) {
  return w->median_us * exp(0.5 * rng_normal(&s->rng));
}

static void heap_push(sim *s, event e) {
  if (s->nheap == s->capheap) {
    s->capheap = s->capheap ? 2 * s->capheap : 1024;
    s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    if (!s->heap) abort();
  }
  size_t i = s->nheap++;
  while (i && s->heap[(i - 1) / 2].t_us > e.t_us) {
    s->heap[i] = s->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  s->heap[i] = e;
}

static event heap_pop(sim *s) {
  event top = s->heap[0], last = s->heap[--s->nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->nheap) break;
    if (c + 1 < s->nheap && s->heap[c + 1].t_us < s->heap[c].t_us) c++;
    if (s->heap[c].t_us >= last.t_us) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (s->nheap) s->heap[i] = last;
  return top;
}

static void start_job(sim *s, int wi, job j, double now) {
  worker *w = &s->w[wi];
  double svc = service_us(s, w);
  double end = w->stalls ? real_time(s->o, eff_time(s->o, now) + svc) : now + svc;
  w->busy++;
  heap_push(s, (event){end, wi, j});
}

static void enqueue(sim *s, int wi, job j, double now) {
  worker *w = &s->w[wi];
  if (w->busy < SLOTS) {
    start_job(s, wi, j, now);
    return;
  }
  if (w->qlen == w->qcap) {
    size_t cap = w->qcap ? 2 * w->qcap : 64;
    job *q = malloc(cap * sizeof *q);
    if (!q) abort();
    for (size_t i = 0; i < w->qlen; i++) q[i] = w->queue[(w->qhead + i) % w->qcap];
    free(w->queue);
    w->queue = q;
    w->qhead = 0;
    w->qcap = cap;
  }
  w->queue[(w->qhead + w->qlen++) % w->qcap] = j;
}

static void complete(sim *s, rpci_router *r, event e) {
  worker *w = &s->w[e.worker];
  w->busy--;
  rpci_route_done(r, w->name, e.j.picked_us, (int64_t)e.t_us, RPCI_ROUTE_OK);
  s->lat[s->nlat++] = e.t_us - e.j.arrival_us;
  if (w->qlen) {
    job next = w->queue[w->qhead];
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qlen--;
    start_job(s, e.worker, next, e.t_us);
  }
}

/* Nominal capacity in calls per microsecond. */
static double capacity(const sim_opts *o) {
  double mean = o->median_ms * 1000 * exp(0.125); /* log-normal mean */
  double up = 1 - o->stall_ms / o->period_ms;     /* w1's share of time running */
  return SLOTS * ((WORKERS - 2) / mean + 1 / (mean * o->slow_factor) + up / mean);
}

typedef struct result {
  double mean_ms, p50_ms, p99_ms, p999_ms, slow_share, staller_share;
} result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static result simulate(const sim_opts *o, int strategy, double load) {
  sim s;
  memset(&s, 0, sizeof s);
  s.o = o;
  s.rng = o->seed;
  s.lat = malloc((size_t)o->requests * sizeof *s.lat);
  if (!s.lat) abort();
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = strategy;
  cfg.seed = o->seed;
  rpci_router *r = rpci_route_new(&cfg);
  for (int i = 0; i < WORKERS; i++) {
    worker *w = &s.w[i];
    snprintf(w->name, sizeof w->name, "w%d", i);
    w->median_us = o->median_ms * 1000 * (i == 0 ? o->slow_factor : 1);
    w->stalls = i == 1 && o->stall_ms > 0;
    char addr[32];
    snprintf(addr, sizeof addr, "10.0.0.%d:7000", i + 1);
    rpci_route_upsert(r, w->name, addr, NULL, NULL, 0, 0);
  }
  double rate = load * capacity(o), now = 0, next_arrival = 0;
  long arrived = 0;
  while (s.nlat < (size_t)o->requests) {
    if (arrived < o->requests && (s.nheap == 0 || next_arrival <= s.heap[0].t_us)) {
      now = next_arrival;
      char name[RPCI_ROUTE_NAME], addr[RPCI_ROUTE_ADDR];
      if (rpci_route_pick(r, NULL, NULL, 0, (int64_t)now, name, addr) != 0) abort();
      int wi = atoi(name + 1);
      s.to_slow += wi == 0;
      s.to_staller += wi == 1;
      enqueue(&s, wi, (job){now, (int64_t)now}, now);
      arrived++;
      next_arrival = now - log(rng_unit(&s.rng)) / rate;
    } else {
      event e = heap_pop(&s);
      now = e.t_us;
      complete(&s, r, e);
    }
  }
  qsort(s.lat, s.nlat, sizeof *s.lat, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < s.nlat; i++) sum += s.lat[i];
  result res = {sum / s.nlat / 1000,
                s.lat[s.nlat / 2] / 1000,
                s.lat[(size_t)(s.nlat * 0.99)] / 1000,
                s.lat[(size_t)(s.nlat * 0.999)] / 1000,
                100.0 * s.to_slow / o->requests,
                100.0 * s.to_staller / o->requests};
  for (int i = 0; i < WORKERS; i++) free(s.w[i].queue);
  free(s.heap);
  free(s.lat);
  rpci_route_free(r);
  return res;
}

/* ---- real-time cost of pick + done -------------------------------------- */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile int64_t g_sink;

/* ns per iteration of pick + done (npeers with samples, one call at a
 * time). */
static double pick_done_ns(int strategy, int npeers, long iters, int empty) {
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = strategy;
  cfg.seed = 1;
  rpci_router *r = rpci_route_new(&cfg);
  for (int i = 0; i < npeers; i++) {
    char name[8];
    snprintf(name, sizeof name, "w%d", i);
    rpci_route_upsert(r, name, "10.0.0.1:7000", NULL, NULL, 0, 0);
  }
  char name[RPCI_ROUTE_NAME], addr[RPCI_ROUTE_ADDR];
  int64_t t = 0;
  for (int i = 0; i < 100 * npeers; i++, t += 1000) { /* warm: every peer has samples */
    rpci_route_pick(r, NULL, NULL, 0, t, name, addr);
    rpci_route_done(r, name, t, t + 900 + (i % 7) * 50, RPCI_ROUTE_OK);
  }
  double t0 = now_ns();
  for (long i = 0; i < iters; i++, t += 1000) {
    if (empty) {
      name[0] = (char)('0' + (t & 7));
      g_sink += name[0];
    } else {
      rpci_route_pick(r, NULL, NULL, 0, t, name, addr);
      rpci_route_done(r, name, t, t + 900 + (i % 7) * 50, RPCI_ROUTE_OK);
    }
  }
  double ns = (now_ns() - t0) / iters;
  rpci_route_free(r);
  return ns;
}

static void print_table(const char *scenario, const sim_opts *o) {
  const double loads[] = {0.2, 0.5, 0.8};
  printf("\n# %s: %d workers x %d slots, log-normal service (median %.1f ms, sigma 0.5)", scenario,
         WORKERS, SLOTS, o->median_ms);
  if (o->slow_factor != 1) printf("; w0 %.0fx slower", o->slow_factor);
  if (o->stall_ms > 0) printf("; w1 frozen %.0f ms every %.0f ms", o->stall_ms, o->period_ms);
  printf("\n# %ld calls per row, Poisson arrivals, latency = queueing + service (ms), seed %llu\n",
         o->requests, (unsigned long long)o->seed);
  printf("%-18s %5s %9s %8s %8s %9s %8s %8s\n", "strategy", "load", "mean", "p50", "p99", "p99.9",
         "to_w0", "to_w1");
  for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++) {
    for (int st = 0; st < 4; st++) {
      result res = simulate(o, st, loads[l]);
      printf("%-18s %4.0f%% %9.2f %8.2f %8.2f %9.2f %7.1f%% %7.1f%%\n", rpci_strategy_name(st),
             loads[l] * 100, res.mean_ms, res.p50_ms, res.p99_ms, res.p999_ms, res.slow_share,
             res.staller_share);
    }
  }
}

int main(int argc, char **argv) {
  sim_opts o = {200000, 1.0, 5.0, 200, 2000, 1};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      o.requests = 30000;
    else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
      o.requests = atol(argv[++i]);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      o.seed = strtoull(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--quick] [--requests N] [--seed S]\n", argv[0]);
      return 2;
    }
  }
  print_table("mixed", &o);
  sim_opts uniform = o;
  uniform.slow_factor = 1;
  uniform.stall_ms = 0;
  print_table("uniform", &uniform);
  long iters = o.requests < 100000 ? 1000000 : 3000000;
  double base = pick_done_ns(0, WORKERS, iters, 1);
  printf("\n# real time: one pick + one done, one call in flight at a time (%ld iterations)\n",
         iters);
  printf("%-18s %14s %14s\n", "strategy", "8 peers ns", "64 peers ns");
  for (int st = 0; st < 4; st++)
    printf("%-18s %14.1f %14.1f\n", rpci_strategy_name(st),
           pick_done_ns(st, WORKERS, iters, 0) - base, pick_done_ns(st, 64, iters / 4, 0) - base);
  printf("(empty loop baseline %.1f ns subtracted)\n", base);
  return 0;
}
