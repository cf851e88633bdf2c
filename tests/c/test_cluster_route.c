/*
 * Worker registry tests (capi/src/cluster/route.h): tag filters, the four
 * strategies over many picks, exclusion, suspects as a last resort, the
 * circuit breaker's states and back-off, phi accrual ejecting a stalled
 * peer, picks that must succeed when every peer is judged, stale outcomes,
 * and the latency percentile. Time is simulated (microseconds), randomness
 * seeded: every run is the same.
 */
#include "cluster/route.h"
#include "testutil.h"

#define MS 1000

static rpci_router *router(int strategy) {
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = strategy;
  cfg.seed = 42;
  return rpci_route_new(&cfg);
}

static void add(rpci_router *r, const char *name, const char *zone, int suspect) {
  const char *k[] = {"zone"}, *v[] = {zone};
  char addr[64];
  snprintf(addr, sizeof addr, "10.0.0.%d:7000", name[strlen(name) - 1]);
  CHECK_EQ_INT(rpci_route_upsert(r, name, addr, k, v, zone ? 1 : 0, suspect), 0);
}

/* Picks with the filter/exclusion given; returns the peer's index in names
 * (names[i] is "p<i>") or -1. */
static int pick(rpci_router *r, const rpci_filter *f, const char *const *ex, size_t nex,
                int64_t now) {
  char name[RPCI_ROUTE_NAME], addr[RPCI_ROUTE_ADDR];
  if (rpci_route_pick(r, f, ex, nex, now, name, addr) != 0) return -1;
  CHECK(name[0] == 'p');
  return atoi(name + 1);
}

static const char *pname(int i) {
  static char buf[8][16];
  static int slot;
  char *s = buf[slot++ % 8];
  snprintf(s, 16, "p%d", i);
  return s;
}

static rpci_route_info info(rpci_router *r, int i, int64_t now) {
  rpci_route_info in;
  memset(&in, 0, sizeof in);
  CHECK_EQ_INT(rpci_route_info_get(r, pname(i), now, &in), 0);
  return in;
}

/* ---- filters ------------------------------------------------------------ */

static int fmatch(const char *text, const char *const *k, const char *const *v, size_t n) {
  char err[128];
  rpci_filter *f = rpci_filter_parse(text, err, sizeof err);
  if (!f) {
    fprintf(stderr, "filter '%s': %s\n", text, err);
    return -1;
  }
  int m = rpci_filter_match(f, k, v, n);
  rpci_filter_free(f);
  return m;
}

static void filter_syntax(void) {
  const char *k[] = {"zone", "gpu", "os", "empty"}, *v[] = {"eu", "a100", "linux x", ""};
  CHECK_EQ_INT(fmatch("", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("  ", k, v, 0), 1);
  CHECK_EQ_INT(rpci_filter_match(NULL, k, v, 0), 1);
  rpci_filter *nf = rpci_filter_parse(NULL, NULL, 0);
  CHECK(nf && rpci_filter_match(nf, k, v, 0));
  rpci_filter_free(nf);
  CHECK_EQ_INT(fmatch("zone=eu", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("zone=us", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("zone=eu", k, v, 0), 0);
  CHECK_EQ_INT(fmatch("gpu", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("tpu", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("empty", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("empty=", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("gpu=", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("zone!=us", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("zone!=eu", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("tpu!=x", k, v, 4), 1); /* absent counts as different */
  CHECK_EQ_INT(fmatch("zone=eu,gpu=a100,os", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("zone=eu,gpu=h100", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("zone!=us,zone!=ap", k, v, 4), 1);
  /* blanks around terms, keys and values are trimmed; inside they stay */
  CHECK_EQ_INT(fmatch(" zone = eu ,\tgpu ", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("zone != eu", k, v, 4), 0);
  CHECK_EQ_INT(fmatch("os=linux x", k, v, 4), 1);
  CHECK_EQ_INT(fmatch("os=linux", k, v, 4), 0);
  const char *bad[] = {",",    "a,,b", "a,",    ",a",   "=v",    "!=v",
                       " = v", "k!",   "a!b=c", "k==v", "k=v=w", " , "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[128] = "";
    rpci_filter *f = rpci_filter_parse(bad[i], err, sizeof err);
    if (f) fprintf(stderr, "filter '%s' accepted\n", bad[i]);
    CHECK(f == NULL);
    rpci_filter_free(f);
    CHECK(tu_contains(err, "filter term"));
  }
  char err[128] = "";
  CHECK(rpci_filter_parse("a=1,b==2", err, sizeof err) == NULL);
  CHECK(tu_contains(err, "term 2"));
}

/* ---- strategies --------------------------------------------------------- */

static void names(void) {
  const char *all[] = {"p2c", "round_robin", "random", "least_connections"};
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(rpci_strategy_parse(all[i]), i);
    CHECK_EQ_INT(strcmp(rpci_strategy_name(i), all[i]), 0);
  }
  CHECK_EQ_INT(rpci_strategy_parse("fastest"), -1);
  CHECK_EQ_INT(rpci_strategy_parse(NULL), -1);
  CHECK_EQ_INT(RPCI_ROUTE_P2C, 0);
  rpci_route_cfg c;
  rpci_route_cfg_defaults(&c);
  CHECK(c.strategy == RPCI_ROUTE_P2C && c.breaker_failures == 5 && c.breaker_base_ms == 1000 &&
        c.breaker_max_ms == 30000 && c.phi_eject == 8.0 && c.window == 64);
  rpci_router *r = rpci_route_new(NULL);
  REQUIRE(r);
  char name[RPCI_ROUTE_NAME], addr[RPCI_ROUTE_ADDR];
  CHECK_EQ_INT(rpci_route_pick(r, NULL, NULL, 0, 0, name, addr), -1); /* empty */
  char longname[80];
  memset(longname, 'x', sizeof longname - 1);
  longname[79] = 0;
  CHECK_EQ_INT(rpci_route_upsert(r, longname, "a", NULL, NULL, 0, 0), -1);
  longname[64] = 0; /* 64 bytes fit */
  CHECK_EQ_INT(rpci_route_upsert(r, longname, "1.2.3.4:5", NULL, NULL, 0, 0), 0);
  CHECK_EQ_INT(rpci_route_pick(r, NULL, NULL, 0, 0, name, addr), 0);
  CHECK(strcmp(name, longname) == 0 && strcmp(addr, "1.2.3.4:5") == 0);
  rpci_route_free(r);
}

static void round_robin(void) {
  rpci_router *r = router(RPCI_ROUTE_ROUND_ROBIN);
  REQUIRE(r);
  for (int i = 0; i < 4; i++) add(r, pname(i), "eu", 0);
  int count[4] = {0}, order_ok = 1;
  int64_t now = 0;
  for (int i = 0; i < 10000; i++, now += 10) {
    int p = pick(r, NULL, NULL, 0, now);
    REQUIRE(p >= 0 && p < 4);
    order_ok &= p == i % 4;
    count[p]++;
    rpci_route_done(r, pname(p), now, now + 5, RPCI_ROUTE_OK);
  }
  CHECK(order_ok);
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(count[i], 2500);
  /* excluding one keeps the rotation over the rest */
  const char *ex[] = {"p1"};
  int seq[6];
  for (int i = 0; i < 6; i++) seq[i] = pick(r, NULL, ex, 1, now);
  CHECK(seq[0] == 0 && seq[1] == 2 && seq[2] == 3 && seq[3] == 0 && seq[4] == 2 && seq[5] == 3);
  rpci_route_free(r);
}

static void random_uniform(void) {
  rpci_router *r = router(RPCI_ROUTE_RANDOM);
  REQUIRE(r);
  for (int i = 0; i < 4; i++) add(r, pname(i), "eu", 0);
  int count[4] = {0};
  for (int i = 0; i < 10000; i++) {
    int p = pick(r, NULL, NULL, 0, i);
    REQUIRE(p >= 0);
    count[p]++;
    rpci_route_done(r, pname(p), i, i + 1, RPCI_ROUTE_OK);
  }
  for (int i = 0; i < 4; i++) {
    fprintf(stderr, "random: p%d %d\n", i, count[i]);
    CHECK(count[i] > 2250 && count[i] < 2750); /* sigma is 43 */
  }
  rpci_route_free(r);
}

static void least_connections(void) {
  /* judgement off: this is about the strategy alone (calls here finish in
   * any order, so the old ones would soon look stalled) */
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = RPCI_ROUTE_LEAST_CONN;
  cfg.phi_eject = 0;
  cfg.seed = 7;
  rpci_router *r = rpci_route_new(&cfg);
  REQUIRE(r);
  for (int i = 0; i < 5; i++) add(r, pname(i), "eu", 0);
  /* calls in flight per peer, with their start times */
  int64_t starts[5][64];
  int n[5] = {0}, busier = 0, picks[5] = {0};
  uint32_t x = 1;
  for (int i = 0; i < 10000; i++) {
    int64_t now = 100 * i;
    int min = 1 << 30;
    for (int p = 0; p < 5; p++) min = n[p] < min ? n[p] : min;
    int p = pick(r, NULL, NULL, 0, now);
    REQUIRE(p >= 0);
    busier += n[p] != min;
    REQUIRE(n[p] < 63);
    picks[p]++;
    CHECK_EQ_INT(info(r, p, now).inflight, n[p] + 1);
    starts[p][n[p]++] = now;
    /* finish a few calls at random */
    x = x * 1103515245 + 12345;
    int q = (int)((x >> 16) % 5);
    while (n[q] > 0 && (x >> 8) % 3) {
      rpci_route_done(r, pname(q), starts[q][--n[q]], now + 50, RPCI_ROUTE_OK);
      x = x * 1103515245 + 12345;
    }
  }
  CHECK_EQ_INT(busier, 0);
  for (int p = 0; p < 5; p++) CHECK(picks[p] > 1500); /* ties broken at random */
  rpci_route_free(r);
}

static void p2c_prefers_faster(void) {
  rpci_router *r = router(RPCI_ROUTE_P2C);
  REQUIRE(r);
  add(r, "p0", "eu", 0); /* 1 ms */
  add(r, "p1", "eu", 0); /* 5 ms */
  int count[2] = {0};
  int64_t now = 0;
  for (int i = 0; i < 10000; i++) {
    int p = pick(r, NULL, NULL, 0, now);
    REQUIRE(p >= 0);
    count[p]++;
    now += p == 0 ? 1 * MS : 5 * MS;
    rpci_route_done(r, pname(p), now - (p == 0 ? 1 * MS : 5 * MS), now, RPCI_ROUTE_OK);
  }
  fprintf(stderr, "p2c: fast %d, slow %d\n", count[0], count[1]);
  CHECK(count[0] > 9900);
  /* p1 has not been called for 10 s: its estimate has decayed towards the
   * prior (the mean of the others, p0's 1 ms), so it gets a call again as
   * soon as p0 is busier; without the decay it would wait for 5 in flight */
  CHECK(info(r, 1, now).ewma_us > 4000);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, now), 0);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, now), 1);
  rpci_route_free(r);

  /* cost = (inflight + 1) * ewma: fresh samples of 1 ms and 4.5 ms */
  r = router(RPCI_ROUTE_P2C);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "eu", 0);
  const char *not0[] = {"p1"}, *not1[] = {"p0"};
  int64_t t = 100 * MS;
  for (int i = 0; i < 30; i++) {
    REQUIRE(pick(r, NULL, not0, 1, t - 1 * MS) == 0);
    rpci_route_done(r, "p0", t - 1 * MS, t, RPCI_ROUTE_OK);
    REQUIRE(pick(r, NULL, not1, 1, t - 4500) == 1);
    rpci_route_done(r, "p1", t - 4500, t, RPCI_ROUTE_OK);
  }
  CHECK(info(r, 0, t).ewma_us == 1000 && info(r, 1, t).ewma_us == 4500);
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(pick(r, NULL, NULL, 0, t), 0); /* (k+1) ms < 4.5 */
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, t), 1);                             /* 5 > 4.5 */
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(pick(r, NULL, NULL, 0, t), 0); /* 5..8 < 9 */
  CHECK_EQ_INT(info(r, 0, t).inflight, 8);
  rpci_route_free(r);

  /* a peer without samples is costed at the mean of the others */
  r = router(RPCI_ROUTE_P2C);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "eu", 0);
  add(r, "p2", "eu", 0);
  const char *only0[] = {"p1", "p2"}, *only2[] = {"p0", "p1"};
  for (int i = 0; i < 10; i++) {
    REQUIRE(pick(r, NULL, only0, 2, 0) == 0);
    rpci_route_done(r, "p0", 0, 1 * MS, RPCI_ROUTE_OK);
    REQUIRE(pick(r, NULL, only2, 2, 0) == 2);
    rpci_route_done(r, "p2", 0, 9 * MS, RPCI_ROUTE_OK);
  }
  int c3[3] = {0};
  for (int i = 0; i < 3000; i++) {
    int q = pick(r, NULL, NULL, 0, 20 * MS);
    REQUIRE(q >= 0);
    c3[q]++;
    rpci_route_done(r, pname(q), 20 * MS, 20 * MS, RPCI_ROUTE_ABANDONED);
  }
  fprintf(stderr, "p2c fallback: %d %d %d\n", c3[0], c3[1], c3[2]);
  CHECK_EQ_INT(c3[2], 0); /* p1 (assumed 5 ms) always beats p2 (9 ms) */
  CHECK(c3[0] > 1800 && c3[1] > 800);
  rpci_route_free(r);
}

/* ---- eligibility -------------------------------------------------------- */

static void exclusion_and_filters(void) {
  rpci_router *r = router(RPCI_ROUTE_RANDOM);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "us", 0);
  add(r, "p2", NULL, 0);
  rpci_filter *eu = rpci_filter_parse("zone=eu", NULL, 0), *nz = rpci_filter_parse("zone", NULL, 0);
  rpci_filter *ap = rpci_filter_parse("zone=ap", NULL, 0);
  REQUIRE(eu && nz && ap);
  const char *ex0[] = {"p0"}, *ex01[] = {"p0", "p1", "nobody"};
  for (int i = 0; i < 200; i++) {
    CHECK_EQ_INT(pick(r, eu, NULL, 0, i), 0);
    int p = pick(r, nz, ex0, 1, i);
    CHECK_EQ_INT(p, 1);
    CHECK(pick(r, NULL, ex01, 3, i) == 2);
    CHECK(pick(r, NULL, ex0, 1, i) != 0);
  }
  CHECK_EQ_INT(pick(r, eu, ex0, 1, 0), -1);
  CHECK_EQ_INT(pick(r, ap, NULL, 0, 0), -1);
  const char *all[] = {"p0", "p1", "p2"};
  CHECK_EQ_INT(pick(r, NULL, all, 3, 0), -1);
  /* tags follow upserts; statistics stay */
  uint64_t calls = info(r, 1, 0).calls;
  add(r, "p1", "eu", 0);
  CHECK_EQ_INT(info(r, 1, 0).calls, calls);
  int seen1 = 0;
  for (int i = 0; i < 100; i++) seen1 += pick(r, eu, NULL, 0, 0) == 1;
  CHECK(seen1 > 20);
  rpci_filter_free(eu);
  rpci_filter_free(nz);
  rpci_filter_free(ap);
  rpci_route_free(r);
}

static void suspects_last(void) {
  rpci_router *r = router(RPCI_ROUTE_ROUND_ROBIN);
  REQUIRE(r);
  add(r, "p0", "eu", 1);
  add(r, "p1", "eu", 0);
  add(r, "p2", "eu", 1);
  for (int i = 0; i < 100; i++) CHECK_EQ_INT(pick(r, NULL, NULL, 0, i), 1);
  const char *ex[] = {"p1"};
  int seen[3] = {0};
  for (int i = 0; i < 100; i++) {
    int p = pick(r, NULL, ex, 1, i);
    REQUIRE(p >= 0);
    seen[p]++;
  }
  CHECK(seen[0] == 50 && seen[2] == 50);
  add(r, "p1", "eu", 1); /* now every peer is suspect: still served */
  CHECK(pick(r, NULL, NULL, 0, 0) >= 0);
  add(r, "p2", "eu", 0); /* and back alive */
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, 0), 2);
  rpci_route_free(r);
}

/* ---- circuit breaker ---------------------------------------------------- */

static void fail_once(rpci_router *r, const char *const *ex, int64_t now) {
  int p = pick(r, NULL, ex, 1, now);
  CHECK_EQ_INT(p, 0);
  rpci_route_done(r, "p0", now, now + 10, RPCI_ROUTE_FAILED);
}

static void breaker(void) {
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = RPCI_ROUTE_ROUND_ROBIN;
  cfg.breaker_failures = 3;
  cfg.breaker_base_ms = 1000;
  cfg.breaker_max_ms = 4000;
  rpci_router *r = rpci_route_new(&cfg);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "eu", 0);
  const char *only0[] = {"p1"};
  int64_t t = 1000 * MS;
  /* a success in between resets the count */
  fail_once(r, only0, t);
  fail_once(r, only0, t);
  CHECK_EQ_INT(pick(r, NULL, only0, 1, t), 0);
  rpci_route_done(r, "p0", t, t + 10, RPCI_ROUTE_OK);
  fail_once(r, only0, t);
  fail_once(r, only0, t);
  CHECK_EQ_INT(info(r, 0, t).breaker, 0);
  fail_once(r, only0, t);
  CHECK_EQ_INT(info(r, 0, t).breaker, 1);
  CHECK_EQ_INT(info(r, 0, t).failures, 5);
  /* open: p1 takes everything, p0 only when p1 is excluded */
  for (int i = 0; i < 50; i++) {
    CHECK_EQ_INT(pick(r, NULL, NULL, 0, t + 500 * MS), 1);
    rpci_route_done(r, "p1", t + 500 * MS, t + 501 * MS, RPCI_ROUTE_OK);
  }
  int64_t expect[] = {1000, 2000, 4000, 4000}; /* ms: doubling, capped */
  int64_t opened = t + 10;
  for (int round = 0; round < 4; round++) {
    int64_t cool = expect[round] * MS;
    CHECK_EQ_INT(info(r, 0, opened + cool - 1).breaker, 1);
    CHECK_EQ_INT(pick(r, NULL, NULL, 0, opened + cool - 1), 1);
    rpci_route_done(r, "p1", opened + cool - 1, opened + cool, RPCI_ROUTE_OK);
    int64_t now = opened + cool;
    CHECK_EQ_INT(info(r, 0, now).breaker, 2);
    /* half-open: the first pick of p0 is the probe; no second call meanwhile */
    int seen0 = 0;
    for (int i = 0; i < 20; i++) {
      int p = pick(r, NULL, NULL, 0, now);
      seen0 += p == 0;
      if (p == 1) rpci_route_done(r, "p1", now, now + 1, RPCI_ROUTE_OK);
    }
    CHECK_EQ_INT(seen0, 1);
    CHECK_EQ_INT(info(r, 0, now).inflight, 1);
    rpci_route_done(r, "p0", now, now + 100, RPCI_ROUTE_FAILED);
    opened = now + 100;
    CHECK_EQ_INT(info(r, 0, opened).breaker, 1);
  }
  /* a probe abandoned (hedge lost) frees the slot without judging */
  int64_t now = opened + 4000 * MS;
  CHECK_EQ_INT(pick(r, NULL, only0, 1, now), 0);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, now), 1);
  rpci_route_done(r, "p0", now, now + 5, RPCI_ROUTE_ABANDONED);
  CHECK_EQ_INT(info(r, 0, now + 5).breaker, 2);
  /* the next probe succeeds: closed, and the back-off starts over */
  now += 10;
  CHECK_EQ_INT(pick(r, NULL, only0, 1, now), 0);
  rpci_route_done(r, "p0", now, now + 5, RPCI_ROUTE_OK);
  CHECK_EQ_INT(info(r, 0, now + 5).breaker, 0);
  fail_once(r, only0, now);
  fail_once(r, only0, now);
  fail_once(r, only0, now);
  CHECK_EQ_INT(info(r, 0, now + 10 + 1000 * MS - 1).breaker, 1);
  CHECK_EQ_INT(info(r, 0, now + 10 + 1000 * MS).breaker, 2);
  rpci_route_free(r);
}

/* ---- phi accrual -------------------------------------------------------- */

/* n successful calls of about lat us on peer i (exclusions force it). */
static void warm(rpci_router *r, int i, int npeers, int n, int64_t lat, int64_t *now) {
  static const char *const all[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"};
  const char *ex[8];
  size_t nex = 0;
  for (int j = 0; j < npeers; j++)
    if (j != i) ex[nex++] = all[j];
  for (int k = 0; k < n; k++) {
    int p = pick(r, NULL, ex, nex, *now);
    CHECK_EQ_INT(p, i);
    int64_t l = lat + (k % 5) * lat / 10;
    rpci_route_done(r, pname(i), *now, *now + l, RPCI_ROUTE_OK);
    *now += l;
  }
}

static void phi_ejects_stalled(void) {
  rpci_router *r = router(RPCI_ROUTE_ROUND_ROBIN);
  REQUIRE(r);
  for (int i = 0; i < 3; i++) add(r, pname(i), "eu", 0);
  int64_t now = 0;
  /* too few samples: phi stays 0 however old the call */
  warm(r, 0, 3, 5, 2 * MS, &now);
  const char *not0[] = {"p1", "p2"};
  CHECK_EQ_INT(pick(r, NULL, not0, 2, now), 0);
  CHECK(info(r, 0, now + 10000 * MS).phi == 0);
  rpci_route_done(r, "p0", now, now + 2 * MS, RPCI_ROUTE_OK);
  now += 2 * MS;
  for (int i = 0; i < 3; i++) warm(r, i, 3, 30, 2 * MS, &now);
  /* p0 stalls on a call */
  int64_t t0 = now;
  CHECK_EQ_INT(pick(r, NULL, not0, 2, t0), 0);
  double last = -1;
  int64_t ages[] = {0, 2 * MS, 4 * MS, 6 * MS, 8 * MS, 10 * MS, 20 * MS};
  for (int i = 0; i < 7; i++) {
    double phi = info(r, 0, t0 + ages[i]).phi;
    fprintf(stderr, "phi at age %lld ms: %.2f\n", (long long)(ages[i] / MS), phi);
    CHECK(phi >= 0 && phi <= 100);
    CHECK(phi >= last);
    if (ages[i] >= 4 * MS) CHECK(phi > last); /* grows */
    last = phi;
  }
  CHECK(info(r, 0, t0 + 2 * MS).phi < 1);
  CHECK(info(r, 0, t0 + 20 * MS).phi > 8);
  CHECK(info(r, 0, t0 + 3600000 * (int64_t)MS).phi == 100);
  CHECK(info(r, 1, t0 + 20 * MS).phi < 1 && info(r, 2, t0 + 20 * MS).phi < 1);
  /* ejected while the others stay eligible */
  int seen[3] = {0};
  for (int i = 0; i < 300; i++) {
    int64_t now2 = t0 + 20 * MS + i;
    int p = pick(r, NULL, NULL, 0, now2);
    REQUIRE(p >= 0);
    seen[p]++;
    if (p) rpci_route_done(r, pname(p), now2, now2 + 2 * MS, RPCI_ROUTE_OK);
  }
  CHECK(seen[0] == 0 && seen[1] == 150 && seen[2] == 150);
  /* before the stall was noticed, p0 still took its share */
  int early = 0;
  for (int i = 0; i < 30; i++) {
    int p = pick(r, NULL, NULL, 0, t0 + 1 * MS);
    early += p == 0;
    rpci_route_done(r, pname(p), t0 + 1 * MS, t0 + 1 * MS, RPCI_ROUTE_ABANDONED);
  }
  CHECK(early >= 9);
  /* the stall ends at 50 ms: idle, its last latency keeps it out for a
   * cool-down, then it gets a call again */
  rpci_route_done(r, "p0", t0, t0 + 50 * MS, RPCI_ROUTE_OK);
  int64_t end = t0 + 50 * MS;
  CHECK(info(r, 0, end).phi > 8);
  CHECK_EQ_INT(info(r, 0, end).inflight, 0);
  for (int i = 0; i < 10; i++) {
    int p = pick(r, NULL, NULL, 0, end + 500 * MS);
    CHECK(p != 0);
    rpci_route_done(r, pname(p), end + 500 * MS, end + 500 * MS, RPCI_ROUTE_ABANDONED);
  }
  int back = 0;
  for (int i = 0; i < 3; i++) back += pick(r, NULL, NULL, 0, end + 1000 * MS) == 0;
  CHECK_EQ_INT(back, 1);
  rpci_route_free(r);
}

static void phi_disabled(void) {
  rpci_route_cfg cfg;
  rpci_route_cfg_defaults(&cfg);
  cfg.strategy = RPCI_ROUTE_ROUND_ROBIN;
  cfg.phi_eject = 0;
  rpci_router *r = rpci_route_new(&cfg);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "eu", 0);
  int64_t now = 0;
  warm(r, 0, 2, 20, 1 * MS, &now);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, now), 1);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, now), 0); /* p0 in flight ... */
  int seen0 = 0;
  for (int i = 0; i < 10; i++) seen0 += pick(r, NULL, NULL, 0, now + 1000 * MS) == 0;
  CHECK_EQ_INT(seen0, 5);                        /* ... for a long time, still picked */
  CHECK(info(r, 0, now + 1000 * MS).phi == 100); /* reported, not acted on */
  rpci_route_free(r);
}

static void all_judged_still_served(void) {
  rpci_router *r = router(RPCI_ROUTE_P2C);
  REQUIRE(r);
  for (int i = 0; i < 3; i++) add(r, pname(i), "eu", i == 2);
  int64_t now = 0;
  static const char *const all[] = {"p0", "p1", "p2"};
  for (int i = 0; i < 3; i++) {
    const char *ex[2];
    for (int j = 0, n = 0; j < 3; j++)
      if (j != i) ex[n++] = all[j];
    for (int k = 0; k < 5; k++) {
      REQUIRE(pick(r, NULL, ex, 2, now) == i);
      rpci_route_done(r, pname(i), now, now + 1, RPCI_ROUTE_FAILED);
    }
    CHECK_EQ_INT(info(r, i, now).breaker, 1);
  }
  /* every breaker open: picks still succeed, alive peers first */
  int seen[3] = {0};
  for (int i = 0; i < 100; i++) {
    int p = pick(r, NULL, NULL, 0, now + 10);
    REQUIRE(p >= 0);
    seen[p]++;
  }
  CHECK(seen[2] == 0 && seen[0] > 0 && seen[1] > 0);
  rpci_route_free(r);
}

/* ---- stale outcomes ----------------------------------------------------- */

static void stale_outcomes(void) {
  rpci_router *r = router(RPCI_ROUTE_ROUND_ROBIN);
  REQUIRE(r);
  add(r, "p0", "eu", 0);
  add(r, "p1", "eu", 0);
  rpci_route_done(r, "nobody", 0, 10, RPCI_ROUTE_FAILED);
  rpci_route_done(r, NULL, 0, 10, RPCI_ROUTE_FAILED);
  rpci_route_remove(r, "nobody");
  rpci_route_info in;
  CHECK_EQ_INT(rpci_route_info_get(r, "nobody", 0, &in), -1);
  CHECK_EQ_INT(pick(r, NULL, NULL, 0, 100), 0);
  /* an outcome for a call that is not in flight changes nothing */
  for (int i = 0; i < 10; i++) rpci_route_done(r, "p0", 99, 200, RPCI_ROUTE_FAILED);
  CHECK_EQ_INT(info(r, 0, 200).inflight, 1);
  CHECK_EQ_INT(info(r, 0, 200).failures, 0);
  CHECK_EQ_INT(info(r, 0, 200).breaker, 0);
  /* removed while in flight, added again: the old call is not its call */
  rpci_route_remove(r, "p0");
  rpci_route_done(r, "p0", 100, 300, RPCI_ROUTE_OK);
  add(r, "p0", "eu", 0);
  rpci_route_done(r, "p0", 100, 300, RPCI_ROUTE_FAILED);
  rpci_route_info fresh = info(r, 0, 300);
  CHECK(fresh.inflight == 0 && fresh.calls == 0 && fresh.failures == 0 && fresh.ewma_us == 0);
  /* removal in the middle keeps round robin going */
  add(r, "p2", "eu", 0);
  int a = pick(r, NULL, NULL, 0, 400);
  rpci_route_remove(r, pname(a));
  for (int i = 0; i < 10; i++) CHECK(pick(r, NULL, NULL, 0, 400) != a);
  rpci_route_free(r);
}

static void percentile(void) {
  rpci_router *r = router(RPCI_ROUTE_ROUND_ROBIN);
  REQUIRE(r);
  for (int i = 0; i < 4; i++) add(r, pname(i), "eu", 0);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.5), 0);
  int64_t now = 0;
  for (int i = 1; i <= 15; i++) {
    int p = pick(r, NULL, NULL, 0, now);
    rpci_route_done(r, pname(p), now, now + i * MS, RPCI_ROUTE_OK);
  }
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.5), 0); /* 15 < 16 samples */
  for (int i = 16; i <= 100; i++) {
    int p = pick(r, NULL, NULL, 0, now);
    rpci_route_done(r, pname(p), now, now + i * MS, RPCI_ROUTE_OK);
  }
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.5), 50 * MS);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.99), 99 * MS);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.999), 100 * MS);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.01), 1 * MS);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0), 0);
  CHECK_EQ_INT(rpci_route_percentile_us(r, 1), 0);
  /* the window keeps the recent samples only (64 per peer) */
  for (int i = 0; i < 4 * 64; i++) {
    int p = pick(r, NULL, NULL, 0, now);
    rpci_route_done(r, pname(p), now, now + 7, RPCI_ROUTE_OK);
  }
  CHECK_EQ_INT(rpci_route_percentile_us(r, 0.99), 7);
  rpci_route_free(r);
}

int main(void) {
  RUN(filter_syntax);
  RUN(names);
  RUN(round_robin);
  RUN(random_uniform);
  RUN(least_connections);
  RUN(p2c_prefers_faster);
  RUN(exclusion_and_filters);
  RUN(suspects_last);
  RUN(breaker);
  RUN(phi_ejects_stalled);
  RUN(phi_disabled);
  RUN(all_judged_still_served);
  RUN(stale_outcomes);
  RUN(percentile);
  return TEST_END();
}
