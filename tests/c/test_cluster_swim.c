/*
 * Unit tests of the SWIM core (capi/src/cluster/swim.h) and its codec and
 * broadcast queue, on a tiny in-process network of up to 10 cores in
 * virtual time (1 ms steps, 1 ms latency, no loss unless a test says so).
 * Push-pull jobs run synchronously between the two cores. Every datagram
 * any core emits is checked against max_packet.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/bcast.h"
#include "cluster/msg.h"
#include "cluster/swim.h"
#include "cluster/swim_int.h"
#include "testutil.h"

#define MAXN 10
#define EVMAX 8192

typedef struct tpkt {
  int64_t at;
  int from, to;
  size_t len;
  uint8_t *d;
} tpkt;

typedef struct tev {
  int64_t t;
  int type;
  char name[16];
  uint64_t inc;
} tev;

static struct {
  int n;
  rpci_swim *s[MAXN];
  int64_t off[MAXN];     /* clock offset of each node */
  int64_t stalled[MAXN]; /* processes nothing before this time */
  int block[MAXN][MAXN]; /* drop from -> to */
  tpkt *q;
  size_t nq, capq;
  int jobs[64][2];
  int njobs;
  int64_t now;
  double loss;
  uint64_t rng;
  tev ev[MAXN][EVMAX];
  int nev[MAXN];
  int oversize;  /* datagrams over max_packet */
  int undecoded; /* datagrams a core emitted that do not decode */
  int max_packet;
  uint64_t max_inc[MAXN]; /* own incarnation never decreases */
  int inc_decreased;
} net;

static rpci_swim_cfg base_cfg(int i, uint64_t inc) {
  static char names[MAXN][16], addrs[MAXN][16], rpcs[MAXN][16];
  snprintf(names[i], 16, "n%d", i);
  snprintf(addrs[i], 16, "g%d", i);
  snprintf(rpcs[i], 16, "r%d", i);
  rpci_swim_cfg c;
  memset(&c, 0, sizeof c);
  c.name = names[i];
  c.gossip_addr = addrs[i];
  c.rpc_addr = rpcs[i];
  c.incarnation = inc;
  c.seed = 1000 + (uint64_t)i;
  c.max_packet = net.max_packet ? net.max_packet : 0;
  return c;
}

static int64_t tnow(int i) { return net.now + net.off[i]; }

static int undecoded_total;

static void net_reset(void) {
  for (int i = 0; i < MAXN; i++) rpci_swim_free(net.s[i]);
  for (size_t k = 0; k < net.nq; k++) free(net.q[k].d);
  free(net.q);
  undecoded_total += net.undecoded;
  memset(&net, 0, sizeof net);
  net.now = 1000000;
  net.rng = 42;
}

static uint64_t trand(void) {
  uint64_t z = (net.rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void drain(int i) {
  rpci_swim *s = net.s[i];
  if (!s) return;
  rpci_swim_tx tx;
  int maxp = net.max_packet ? net.max_packet : 1150;
  while (rpci_swim_poll_tx(s, &tx)) {
    if ((int)tx.len > maxp) net.oversize++;
    rpci_gdec d;
    rpci_gmsg m;
    int r = rpci_gdec_open(&d, tx.data, tx.len);
    while (r == 0 && (r = rpci_gdec_next(&d, &m)) == 1) r = 0;
    if (r != 0) net.undecoded++;
    int to = atoi(tx.addr + 1);
    if (tx.addr[0] != 'g' || to < 0 || to >= MAXN) continue;
    if (net.block[i][to]) continue;
    if (net.loss > 0 && (double)(trand() % 1000000) / 1e6 < net.loss) continue;
    if (net.nq == net.capq) {
      net.capq = net.capq ? net.capq * 2 : 64;
      net.q = realloc(net.q, net.capq * sizeof *net.q);
    }
    tpkt *p = &net.q[net.nq++];
    p->at = net.now + 1;
    p->from = i;
    p->to = to;
    p->len = tx.len;
    p->d = malloc(tx.len);
    memcpy(p->d, tx.data, tx.len);
  }
  rpci_swim_sync_job job;
  while (rpci_swim_poll_sync(s, &job)) {
    if (net.njobs < 64) {
      net.jobs[net.njobs][0] = i;
      net.jobs[net.njobs][1] = atoi(job.rpc_addr + 1);
      net.njobs++;
    }
  }
  rpci_swim_event ev;
  while (rpci_swim_poll_event(s, &ev)) {
    if (net.nev[i] < EVMAX) {
      tev *e = &net.ev[i][net.nev[i]++];
      e->t = net.now;
      e->type = ev.type;
      snprintf(e->name, sizeof e->name, "%s", ev.name);
      e->inc = ev.incarnation;
    }
  }
  rpci_swim_stats st;
  rpci_swim_get_stats(s, &st);
  if (st.incarnation < net.max_inc[i]) net.inc_decreased++;
  net.max_inc[i] = st.incarnation;
}

static void start_node(int i, uint64_t inc, int lifeguard) {
  rpci_swim_cfg c = base_cfg(i, inc);
  c.lifeguard = lifeguard;
  net.s[i] = rpci_swim_new(&c, tnow(i));
  net.max_inc[i] = inc;
  if (i >= net.n) net.n = i + 1;
}

static void crash(int i) {
  rpci_swim_free(net.s[i]);
  net.s[i] = NULL;
}

static void join(int i, int seed) {
  char a[16];
  snprintf(a, sizeof a, "g%d", seed);
  const char *seeds[1] = {a};
  CHECK(rpci_swim_join(net.s[i], tnow(i), seeds, 1) == 0);
  drain(i);
}

static void run_sync(int i, int j) {
  if (!net.s[i] || !net.s[j] || net.block[i][j] || net.block[j][i]) return;
  rpci_buf req = RPCI_BUF_INIT, resp = RPCI_BUF_INIT;
  CHECK(rpci_swim_sync_start(net.s[i], tnow(i), &req) == 0);
  for (int round = 0; round < 4; round++) {
    resp.len = 0;
    int r = rpci_swim_sync_serve(net.s[j], tnow(j), req.data, req.len, &resp);
    CHECK(r == 0);
    drain(j);
    if (r) break;
    req.len = 0;
    r = rpci_swim_sync_step(net.s[i], tnow(i), resp.data, resp.len, &req);
    CHECK(r >= 0);
    drain(i);
    if (r != 1) break;
  }
  rpci_buf_free(&req);
  rpci_buf_free(&resp);
}

/* Advances virtual time by ms: timers first, then deliveries, then syncs. */
static void run(int64_t ms) {
  int64_t end = net.now + ms;
  while (net.now < end) {
    net.now++;
    for (int i = 0; i < net.n; i++) {
      if (!net.s[i] || net.now < net.stalled[i]) continue;
      if (rpci_swim_next_deadline(net.s[i]) <= tnow(i)) {
        rpci_swim_tick(net.s[i], tnow(i));
        drain(i);
      }
    }
    for (size_t k = 0; k < net.nq;) {
      tpkt *p = &net.q[k];
      if (p->at > net.now || (net.s[p->to] && net.now < net.stalled[p->to])) {
        k++;
        continue;
      }
      tpkt cp = *p;
      *p = net.q[--net.nq];
      if (net.s[cp.to]) {
        char from[16];
        snprintf(from, sizeof from, "g%d", cp.from);
        rpci_swim_recv(net.s[cp.to], tnow(cp.to), from, cp.d, cp.len);
        drain(cp.to);
      }
      free(cp.d);
    }
    while (net.njobs) {
      int i = net.jobs[0][0], j = net.jobs[0][1];
      memmove(net.jobs, net.jobs + 1, (size_t)(net.njobs - 1) * sizeof net.jobs[0]);
      net.njobs--;
      if (j >= 0 && j < MAXN) run_sync(i, j);
    }
  }
}

/* State in which observer holds subject, or -1 when unknown. */
static int state_of(int obs, int subj) {
  char nm[16];
  snprintf(nm, sizeof nm, "n%d", subj);
  rpci_swim_member m;
  if (!net.s[obs] || rpci_swim_find(net.s[obs], nm, &m)) return -1;
  return m.state;
}

static uint64_t inc_of(int obs, int subj) {
  char nm[16];
  snprintf(nm, sizeof nm, "n%d", subj);
  rpci_swim_member m;
  if (!net.s[obs] || rpci_swim_find(net.s[obs], nm, &m)) return 0;
  return m.incarnation;
}

static int events(int obs, int type, int subj) {
  char nm[16];
  snprintf(nm, sizeof nm, "n%d", subj);
  int c = 0;
  for (int k = 0; k < net.nev[obs]; k++)
    if (net.ev[obs][k].type == type && (subj < 0 || strcmp(net.ev[obs][k].name, nm) == 0)) c++;
  return c;
}

/* Every running node holds every other running node in state st. */
static int all_hold(int st) {
  for (int i = 0; i < net.n; i++)
    for (int j = 0; j < net.n; j++)
      if (i != j && net.s[i] && net.s[j] && state_of(i, j) != st) return 0;
  return 1;
}

/* Starts n nodes and joins them all through node 0; runs until converged. */
static int cluster(int n, int lifeguard) {
  for (int i = 0; i < n; i++) start_node(i, 1, lifeguard);
  for (int i = 1; i < n; i++) join(i, 0);
  for (int t = 0; t < 30000; t += 100) {
    run(100);
    if (all_hold(RPCI_MS_ALIVE)) return 1;
  }
  return 0;
}

static rpci_swim *single(void) {
  net_reset();
  start_node(0, 1, 0);
  return net.s[0];
}

/* Feeds one crafted datagram of messages (already encoded in b) to s. */
static void feed(rpci_swim *s, const rpci_buf *msgs, size_t count) {
  rpci_buf pkt = RPCI_BUF_INIT;
  CHECK(rpci_genc_envelope(&pkt, count, msgs->data, msgs->len) == 0);
  rpci_swim_recv(s, net.now, "g9", pkt.data, pkt.len);
  rpci_buf_free(&pkt);
}

static rpci_galive alive_of(const char *name, uint64_t inc) {
  rpci_galive a;
  memset(&a, 0, sizeof a);
  a.name = rpci_gstr_c(name);
  a.addr = rpci_gstr_c("g7");
  a.rpc_addr = rpci_gstr_c("r7");
  a.inc = inc;
  a.pmin = a.pmax = 1;
  return a;
}

static void feed_alive(rpci_swim *s, const char *name, uint64_t inc) {
  rpci_buf b = RPCI_BUF_INIT;
  rpci_galive a = alive_of(name, inc);
  CHECK(rpci_genc_alive(&b, &a) == 0);
  feed(s, &b, 1);
  rpci_buf_free(&b);
}

static void feed_accuse(rpci_swim *s, int type, const char *name, uint64_t inc, const char *from) {
  rpci_buf b = RPCI_BUF_INIT;
  CHECK(rpci_genc_accuse(&b, type, rpci_gstr_c(name), inc, rpci_gstr_c(from)) == 0);
  feed(s, &b, 1);
  rpci_buf_free(&b);
}

static int st1(rpci_swim *s, const char *name, uint64_t *inc) {
  rpci_swim_member m;
  if (rpci_swim_find(s, name, &m)) return -1;
  if (inc) *inc = m.incarnation;
  return m.state;
}

/* ---- pure pieces -------------------------------------------------------- */

static void test_suspicion_timeout(void) {
  /* min = mult * max(1, log10 n) * interval; max = max_mult * min;
   * k = 3 (0 when n - 2 < 3); t(c) = max - ln(c+1)/ln(k+1) * (max - min). */
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1000, 0), 72000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1000, 1), 42000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1000, 2), 24451);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1000, 3), 12000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1000, 9), 12000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 10000, 0), 96000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 1, 0), 4000);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 4, 0), 4000); /* k = 0 */
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(4, 6, 1000, 5, 0), 24000);
  /* n = 50: log10 = 1.69897 -> 1698; min = 2 * 1698 * 500 / 1000 = 1698. */
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(2, 5, 500, 50, 3), 1698);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(2, 5, 500, 50, 0), 8490);
  CHECK_EQ_INT(rpci_swim_suspicion_timeout_ms(2, 5, 500, 50, 1), 5094); /* 8490 - .5 * 6792 */
}

static void test_codec(void) {
  rpci_buf b = RPCI_BUF_INIT, pkt = RPCI_BUF_INIT;
  rpci_tag tags[3] = {{"zone", "eu-1"}, {"a", ""}, {"role", "db"}};
  rpci_buf tb = RPCI_BUF_INIT;
  REQUIRE(rpci_genc_tags(&tb, tags, 3) == 0);
  /* sorted by encoded key: "a" < "role" < "zone" (same length: content) */
  static const uint8_t want[] = {0xa3, 0x61, 'a', 0x60, 0x64, 'r', 'o',  'l', 'e', 0x62, 'd',
                                 'b',  0x64, 'z', 'o',  'n',  'e', 0x64, 'e', 'u', '-',  '1'};
  CHECK(tb.len == sizeof want && memcmp(tb.data, want, sizeof want) == 0);
  rpci_tag dup[2] = {{"a", "1"}, {"a", "2"}};
  rpci_buf tb2 = RPCI_BUF_INIT;
  CHECK(rpci_genc_tags(&tb2, dup, 2) == -1);
  rpci_buf_free(&tb2);

  rpci_galive a = alive_of("node-1", 77);
  a.tags.p = tb.data;
  a.tags.n = tb.len;
  CHECK(rpci_genc_ping(&b, 5, rpci_gstr_c(""), rpci_gstr_c("me")) == 0);
  CHECK(rpci_genc_indirect(&b, 6, rpci_gstr_c("t"), rpci_gstr_c("g1"), rpci_gstr_c("me"), 1) == 0);
  CHECK(rpci_genc_ack(&b, RPCI_GM_ACK, 300) == 0);
  CHECK(rpci_genc_ack(&b, RPCI_GM_NACK, 70000) == 0);
  CHECK(rpci_genc_alive(&b, &a) == 0);
  CHECK(rpci_genc_accuse(&b, RPCI_GM_SUSPECT, rpci_gstr_c("x"), 9, rpci_gstr_c("y")) == 0);
  CHECK(rpci_genc_accuse(&b, RPCI_GM_DEAD, rpci_gstr_c("x"), 10, rpci_gstr_c("x")) == 0);
  /* an unknown message type with nested content, then trailing fields */
  static const uint8_t unknown[] = {0x83, 0x18, 0x63, 0xa1, 0x01, 0x82, 0x01, 0x02, 0x40};
  CHECK(rpci_buf_append(&b, unknown, sizeof unknown) == 0);
  static const uint8_t ack_extra[] = {0x84, 0x03, 0x07, 0x61, 'z', 0xf6};
  CHECK(rpci_buf_append(&b, ack_extra, sizeof ack_extra) == 0);
  REQUIRE(rpci_genc_envelope(&pkt, 9, b.data, b.len) == 0);

  rpci_gdec d;
  rpci_gmsg m;
  REQUIRE(rpci_gdec_open(&d, pkt.data, pkt.len) == 0);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_PING && m.seq == 5 && m.target.n == 0 &&
        rpci_gstr_eq(m.sender, "me"));
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_INDIRECT && m.seq == 6 &&
        rpci_gstr_eq(m.target, "t") && rpci_gstr_eq(m.target_addr, "g1") && m.want_nack == 1);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_ACK && m.seq == 300);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_NACK && m.seq == 70000);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_ALIVE && m.a.inc == 77 &&
        rpci_gstr_eq(m.a.name, "node-1") && m.a.ntags == 3 && m.a.tags.n == tb.len &&
        m.a.pmin == 1 && m.a.pmax == 1);
  size_t off = 0;
  rpci_gstr k, v;
  CHECK(rpci_gtags_next(m.a.tags, &off, &k, &v) == 1 && rpci_gstr_eq(k, "a") && v.n == 0);
  CHECK(rpci_gtags_next(m.a.tags, &off, &k, &v) == 1 && rpci_gstr_eq(k, "role"));
  CHECK(rpci_gtags_next(m.a.tags, &off, &k, &v) == 1 && rpci_gstr_eq(v, "eu-1"));
  CHECK(rpci_gtags_next(m.a.tags, &off, &k, &v) == 0);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_SUSPECT && m.inc == 9 &&
        rpci_gstr_eq(m.from, "y"));
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_DEAD && m.inc == 10);
  CHECK(rpci_gdec_next(&d, &m) == 2 && m.type == 99);
  CHECK(rpci_gdec_next(&d, &m) == 1 && m.type == RPCI_GM_ACK && m.seq == 7);
  CHECK(rpci_gdec_next(&d, &m) == 0);

  /* every proper prefix is malformed somewhere, never read past the end */
  for (size_t cut = 0; cut < pkt.len; cut++) {
    uint8_t *p = malloc(cut ? cut : 1);
    memcpy(p, pkt.data, cut);
    int bad = 0;
    if (rpci_gdec_open(&d, p, cut) != 0) {
      bad = 1;
    } else {
      int r;
      while ((r = rpci_gdec_next(&d, &m)) > 0) {
      }
      bad = r < 0;
    }
    CHECK(bad);
    free(p);
  }

  /* rejections: NUL in a name, unsorted tags, long name, unknown version */
  static const uint8_t nul_name[] = {0x82, 0x01, 0x84, 0x06, 0x62, 'a', 0, 0x01, 0x61, 'b'};
  REQUIRE(rpci_gdec_open(&d, nul_name, sizeof nul_name) == 0);
  CHECK(rpci_gdec_next(&d, &m) == RPCI_GDEC_MALFORMED);
  static const uint8_t unsorted[] = {0x82, 0x01, 0x87, 0x05, 0x61, 'x', 0x01, 0x61, 'g',  0x60,
                                     0xa2, 0x61, 'b',  0x60, 0x61, 'a', 0x60, 0x82, 0x01, 0x01};
  REQUIRE(rpci_gdec_open(&d, unsorted, sizeof unsorted) == 0);
  CHECK(rpci_gdec_next(&d, &m) == RPCI_GDEC_MALFORMED);
  uint8_t longname[80] = {0x82, 0x01, 0x84, 0x06, 0x78, 65};
  memset(longname + 6, 'a', 65);
  longname[71] = 0x01;
  longname[72] = 0x61;
  longname[73] = 'b';
  REQUIRE(rpci_gdec_open(&d, longname, 74) == 0);
  CHECK(rpci_gdec_next(&d, &m) == RPCI_GDEC_MALFORMED);
  static const uint8_t v2[] = {0x82, 0x02, 0x82, 0x03, 0x01};
  CHECK(rpci_gdec_open(&d, v2, sizeof v2) == RPCI_GDEC_VERSION);
  static const uint8_t trailing[] = {0x81, 0x01, 0x00};
  REQUIRE(rpci_gdec_open(&d, trailing, sizeof trailing) == 0);
  CHECK(rpci_gdec_next(&d, &m) == RPCI_GDEC_MALFORMED);
  rpci_buf_free(&b);
  rpci_buf_free(&pkt);
  rpci_buf_free(&tb);
}

static void test_bcast(void) {
  rpci_bcast *q = rpci_bcast_new();
  REQUIRE(q);
  const uint8_t m1[] = {1, 1, 1, 1}, m2[] = {2, 2}, m3[] = {3, 3, 3}, m4[] = {4, 4, 4, 4, 4, 4};
  CHECK(rpci_bcast_put(q, "a", 0, m1, sizeof m1) == 0);
  CHECK(rpci_bcast_put(q, "b", 1, m2, sizeof m2) == 0);
  CHECK(rpci_bcast_put(q, "a", 0, m3, sizeof m3) == 0); /* replaces a's */
  CHECK(rpci_bcast_len(q) == 2 && rpci_bcast_has(q, "a") && !rpci_bcast_has(q, "c"));
  rpci_buf out = RPCI_BUF_INIT;
  size_t used = 0;
  /* room for everything: other kinds first at equal count; limit 2 */
  CHECK(rpci_bcast_fill(q, &out, 100, 25, 2, &used) == 2);
  CHECK(used == 5 && out.len == 5);
  /* the alive share comes first: b (alive) before a */
  CHECK(out.data[0] == 2 && out.data[2] == 3);
  CHECK(rpci_bcast_put(q, "c", 0, m4, sizeof m4) == 0);
  out.len = 0;
  used = 0;
  /* c has 0 transmits, a and b 1: c first; budget 8 fits c + b */
  CHECK(rpci_bcast_fill(q, &out, 8, 0, 2, &used) == 2);
  CHECK(out.data[0] == 4);
  /* a and b reached the limit? b sent twice now: dropped */
  CHECK(!rpci_bcast_has(q, "b"));
  CHECK(rpci_bcast_has(q, "a") && rpci_bcast_has(q, "c"));
  out.len = 0;
  used = 0;
  CHECK(rpci_bcast_fill(q, &out, 100, 0, 2, &used) == 2);
  CHECK(rpci_bcast_len(q) == 0);
  /* many entries: bounded by budget, fewest transmits first */
  char nm[8];
  for (int i = 0; i < 200; i++) {
    snprintf(nm, sizeof nm, "m%d", i);
    uint8_t msg[10];
    memset(msg, i, sizeof msg);
    CHECK(rpci_bcast_put(q, nm, i % 2, msg, sizeof msg) == 0);
  }
  int rounds = 0;
  while (rpci_bcast_len(q) && rounds < 1000) {
    out.len = 0;
    used = 0;
    size_t n = rpci_bcast_fill(q, &out, 95, 24, 3, &used);
    CHECK(n == 9 || rpci_bcast_len(q) == 0 || n > 0);
    CHECK(used <= 95);
    rounds++;
  }
  CHECK(rounds >= 200 * 3 / 9 && rounds <= 200 * 3 / 9 + 2);
  /* refresh: replaces the message, keeps the transmit count */
  const uint8_t r1[] = {7, 7}, r2[] = {8, 8, 8};
  CHECK(rpci_bcast_refresh(q, "r", 0, r1, sizeof r1) == 0); /* new: like put */
  out.len = 0;
  used = 0;
  CHECK(rpci_bcast_fill(q, &out, 100, 0, 2, &used) == 1); /* sent once */
  CHECK(rpci_bcast_refresh(q, "r", 0, r2, sizeof r2) == 0);
  out.len = 0;
  used = 0;
  CHECK(rpci_bcast_fill(q, &out, 100, 0, 2, &used) == 1 && out.data[0] == 8);
  CHECK(!rpci_bcast_has(q, "r")); /* two transmissions in all: at the limit */
  rpci_bcast_drop(q, "nothing");
  rpci_buf_free(&out);
  rpci_bcast_free(q);
}

/* ---- protocol ------------------------------------------------------------ */

static void test_join_pushpull(void) {
  net_reset();
  start_node(0, 1, 0);
  start_node(1, 1, 0);
  join(1, 0);
  run(50);
  CHECK_EQ_INT(state_of(0, 1), RPCI_MS_ALIVE);
  CHECK_EQ_INT(state_of(1, 0), RPCI_MS_ALIVE);
  CHECK(events(0, RPCI_SWIM_EV_JOINED, 1) == 1);
  start_node(2, 1, 0);
  join(2, 0);
  run(20);
  /* n2 knows n1 through the join's push-pull with n0, at once */
  CHECK_EQ_INT(state_of(2, 1), RPCI_MS_ALIVE);
  run(2000);
  CHECK_EQ_INT(state_of(1, 2), RPCI_MS_ALIVE);
  CHECK(all_hold(RPCI_MS_ALIVE));
  CHECK(net.oversize == 0 && net.inc_decreased == 0);
}

static void test_probe_ack(void) {
  net_reset();
  REQUIRE(cluster(3, 0));
  rpci_swim_stats st0, st;
  rpci_swim_get_stats(net.s[0], &st0);
  run(20000);
  rpci_swim_get_stats(net.s[0], &st);
  CHECK(st.probes >= st0.probes + 23 && st.probes <= st0.probes + 26); /* every 800 ms */
  CHECK(st.probe_failures == st0.probe_failures);
  CHECK(st.pkts_in > st0.pkts_in && st.health == 0);
  CHECK(events(0, RPCI_SWIM_EV_SUSPECTED, -1) == 0);
}

static void test_indirect_nack(void) {
  net_reset();
  REQUIRE(cluster(4, 0));
  /* n0 and n1 cannot talk directly: n2 and n3 relay the probes. */
  net.block[0][1] = net.block[1][0] = 1;
  rpci_swim_stats a, b;
  rpci_swim_get_stats(net.s[0], &a);
  run(30000);
  rpci_swim_get_stats(net.s[0], &b);
  CHECK(b.indirect_probes > a.indirect_probes);
  CHECK(b.probe_failures == a.probe_failures);
  CHECK_EQ_INT(state_of(0, 1), RPCI_MS_ALIVE);
  CHECK(events(0, RPCI_SWIM_EV_SUSPECTED, 1) == 0);
  /* Now n1 is cut from the helpers too: they answer with nacks, so n0's
   * health does not suffer, and n1 is suspected. */
  for (int i = 0; i < 4; i++) net.block[i][1] = 1;
  run(6000);
  rpci_swim_get_stats(net.s[0], &b);
  CHECK(b.nacks_recv > 0);
  CHECK(b.health == 0);
  CHECK(events(0, RPCI_SWIM_EV_SUSPECTED, 1) + events(2, RPCI_SWIM_EV_SUSPECTED, 1) +
            events(3, RPCI_SWIM_EV_SUSPECTED, 1) >
        0);
}

static void test_one_way(void) {
  /* n0 -> n1 is dropped, n1 -> n0 works: each side's probes of the other
   * fail directly and succeed through helpers; nobody is declared dead. */
  net_reset();
  REQUIRE(cluster(4, 0));
  net.block[0][1] = 1;
  rpci_swim_stats a, b;
  rpci_swim_get_stats(net.s[1], &a);
  run(60000);
  rpci_swim_get_stats(net.s[1], &b);
  CHECK(b.indirect_probes > a.indirect_probes);
  CHECK(all_hold(RPCI_MS_ALIVE));
  for (int i = 0; i < 4; i++) CHECK(events(i, RPCI_SWIM_EV_FAILED, -1) == 0);
  net.block[0][1] = 0;
}

static void test_suspect_to_dead(void) {
  net_reset();
  REQUIRE(cluster(5, 0));
  int64_t t0 = net.now;
  crash(4);
  int64_t first = -1, all = -1;
  for (int t = 0; t < 120000 && all < 0; t += 10) {
    run(10);
    if (first < 0 &&
        (events(0, RPCI_SWIM_EV_SUSPECTED, 4) || events(1, RPCI_SWIM_EV_SUSPECTED, 4) ||
         events(2, RPCI_SWIM_EV_SUSPECTED, 4) || events(3, RPCI_SWIM_EV_SUSPECTED, 4)))
      first = net.now - t0;
    int d = 0;
    for (int i = 0; i < 4; i++) d += state_of(i, 4) == RPCI_MS_DEAD;
    if (d == 4) all = net.now - t0;
  }
  fprintf(stderr, "first suspected after %lld ms, dead everywhere after %lld ms\n",
          (long long)first, (long long)all);
  CHECK(first > 0 && first <= 5000);
  /* 5 members: min = 3 * 1 * 800 ms = 2.4 s, k = 3; with confirmations
   * from the other three the timeout is min; without any, 14.4 s. */
  CHECK(all > 0 && all <= first + 25000);
  for (int i = 0; i < 4; i++) {
    CHECK(events(i, RPCI_SWIM_EV_FAILED, 4) == 1);
    CHECK(events(i, RPCI_SWIM_EV_SUSPECTED, 4) == 1);
  }
  /* no healthy member was suspected */
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) CHECK(events(i, RPCI_SWIM_EV_SUSPECTED, j) == 0);
}

static void test_refute(void) {
  net_reset();
  REQUIRE(cluster(3, 0));
  uint64_t before = inc_of(0, 1);
  /* Someone tells n1 that it is suspect at its current incarnation. */
  rpci_buf b = RPCI_BUF_INIT;
  REQUIRE(rpci_genc_accuse(&b, RPCI_GM_SUSPECT, rpci_gstr_c("n1"), before, rpci_gstr_c("n2")) == 0);
  rpci_buf pkt = RPCI_BUF_INIT;
  REQUIRE(rpci_genc_envelope(&pkt, 1, b.data, b.len) == 0);
  rpci_swim_recv(net.s[1], tnow(1), "g2", pkt.data, pkt.len);
  drain(1);
  rpci_swim_stats st;
  rpci_swim_get_stats(net.s[1], &st);
  CHECK(st.refutes == 1 && st.incarnation == before + 1);
  run(1000);
  CHECK(inc_of(0, 1) == before + 1 && inc_of(2, 1) == before + 1);
  CHECK_EQ_INT(state_of(0, 1), RPCI_MS_ALIVE);
  /* A dead message about itself at a higher incarnation: refuted above it. */
  rpci_buf_free(&b);
  rpci_buf_free(&pkt);
  REQUIRE(rpci_genc_accuse(&b, RPCI_GM_DEAD, rpci_gstr_c("n1"), before + 10, rpci_gstr_c("n2")) ==
          0);
  REQUIRE(rpci_genc_envelope(&pkt, 1, b.data, b.len) == 0);
  rpci_swim_recv(net.s[1], tnow(1), "g2", pkt.data, pkt.len);
  drain(1);
  rpci_swim_get_stats(net.s[1], &st);
  CHECK(st.incarnation == before + 11);
  run(1000);
  CHECK(all_hold(RPCI_MS_ALIVE));
  CHECK(inc_of(2, 1) == before + 11);
  CHECK(net.inc_decreased == 0);
  rpci_buf_free(&b);
  rpci_buf_free(&pkt);
}

static void test_precedence(void) {
  rpci_swim *s = single();
  uint64_t inc;
  feed_alive(s, "x", 5);
  CHECK(st1(s, "x", &inc) == RPCI_MS_ALIVE && inc == 5);
  feed_accuse(s, RPCI_GM_SUSPECT, "x", 4, "y"); /* older: ignored */
  CHECK(st1(s, "x", NULL) == RPCI_MS_ALIVE);
  feed_accuse(s, RPCI_GM_SUSPECT, "x", 5, "y"); /* equal: suspect beats alive */
  CHECK(st1(s, "x", NULL) == RPCI_MS_SUSPECT);
  feed_alive(s, "x", 5); /* equal alive does not clear it */
  CHECK(st1(s, "x", NULL) == RPCI_MS_SUSPECT);
  feed_accuse(s, RPCI_GM_DEAD, "x", 5, "y"); /* dead beats suspect */
  CHECK(st1(s, "x", NULL) == RPCI_MS_DEAD);
  feed_alive(s, "x", 5);
  feed_accuse(s, RPCI_GM_SUSPECT, "x", 6, "y"); /* suspect never touches dead */
  CHECK(st1(s, "x", &inc) == RPCI_MS_DEAD && inc == 5);
  feed_accuse(s, RPCI_GM_DEAD, "x", 5, "x"); /* left beats dead at equal inc */
  CHECK(st1(s, "x", NULL) == RPCI_MS_LEFT);
  feed_accuse(s, RPCI_GM_DEAD, "x", 5, "y");
  CHECK(st1(s, "x", NULL) == RPCI_MS_LEFT);
  feed_alive(s, "x", 6); /* strictly higher: back */
  CHECK(st1(s, "x", &inc) == RPCI_MS_ALIVE && inc == 6);
  feed_alive(s, "x", 7);
  CHECK(st1(s, "x", &inc) == RPCI_MS_ALIVE && inc == 7);
  feed_alive(s, "x", 6);
  CHECK(st1(s, "x", &inc) == RPCI_MS_ALIVE && inc == 7);
  /* about unknown members: suspect/dead ignored, alive added */
  feed_accuse(s, RPCI_GM_DEAD, "nobody", 3, "y");
  CHECK(st1(s, "nobody", NULL) == -1);
  drain(0);
  CHECK(events(0, RPCI_SWIM_EV_JOINED, -1) == 2); /* first seen, back from left */
  CHECK(events(0, RPCI_SWIM_EV_LEFT, -1) == 1);
  CHECK(events(0, RPCI_SWIM_EV_FAILED, -1) == 1);
  CHECK(events(0, RPCI_SWIM_EV_SUSPECTED, -1) == 1);
}

/* A push-pull body carrying one record (push with no wants). */
static void push_record(rpci_buf *body, const char *name, uint64_t inc, int state, uint64_t age) {
  rpci_buf m = RPCI_BUF_INIT;
  rpci_grecord r;
  memset(&r, 0, sizeof r);
  r.a = alive_of(name, inc);
  r.state = state;
  r.age_ms = age;
  CHECK(rpci_genc_msg_head(&m, RPCI_GM_SYNC_PUSH, 3) == 0);
  CHECK(rpci_genc_list_head(&m, 1) == 0 && rpci_genc_record(&m, &r) == 0);
  CHECK(rpci_genc_list_head(&m, 0) == 0);
  body->len = 0;
  CHECK(rpci_genc_envelope(body, 1, m.data, m.len) == 0);
  rpci_buf_free(&m);
}

static void test_dead_not_revived(void) {
  rpci_swim *s = single();
  feed_alive(s, "x", 5);
  feed_accuse(s, RPCI_GM_DEAD, "x", 5, "y");
  CHECK(st1(s, "x", NULL) == RPCI_MS_DEAD);
  /* a third party's stale alive, by gossip and by push-pull (both ways) */
  feed_alive(s, "x", 5);
  rpci_buf body = RPCI_BUF_INIT, resp = RPCI_BUF_INIT;
  push_record(&body, "x", 5, RPCI_MS_ALIVE, 0);
  CHECK(rpci_swim_sync_serve(s, net.now, body.data, body.len, &resp) == 0);
  CHECK(st1(s, "x", NULL) == RPCI_MS_DEAD);
  /* as the response to our own sync: records message */
  rpci_buf m = RPCI_BUF_INIT;
  rpci_grecord r;
  memset(&r, 0, sizeof r);
  r.a = alive_of("x", 5);
  r.state = RPCI_MS_ALIVE;
  CHECK(rpci_genc_msg_head(&m, RPCI_GM_SYNC_RECORDS, 2) == 0 && rpci_genc_list_head(&m, 1) == 0 &&
        rpci_genc_record(&m, &r) == 0);
  body.len = 0;
  CHECK(rpci_genc_envelope(&body, 1, m.data, m.len) == 0);
  rpci_buf next = RPCI_BUF_INIT;
  CHECK(rpci_swim_sync_step(s, net.now, body.data, body.len, &next) == 0);
  CHECK(st1(s, "x", NULL) == RPCI_MS_DEAD);
  rpci_buf_free(&m);

  /* Two cores: n0 holds x dead at 5, n1 holds x alive at 5. Push-pull in
   * either direction never revives x at n0; n1 pings x with a suspect
   * message about itself, and as x never answers, suspects it itself. */
  net_reset();
  start_node(0, 1, 0);
  start_node(1, 1, 0);
  feed_alive(net.s[0], "x", 5);
  feed_accuse(net.s[0], RPCI_GM_DEAD, "x", 5, "y");
  feed_alive(net.s[1], "x", 5);
  run_sync(1, 0);
  CHECK(state_of(0, 1) == RPCI_MS_ALIVE);
  CHECK(st1(net.s[0], "x", NULL) == RPCI_MS_DEAD);
  CHECK(st1(net.s[1], "x", NULL) == RPCI_MS_ALIVE);
  rpci_swim_stats st;
  rpci_swim_get_stats(net.s[1], &st);
  CHECK(st.pkts_out >= 1); /* the notice to x */
  run_sync(0, 1);
  CHECK(st1(net.s[0], "x", NULL) == RPCI_MS_DEAD);
  /* x never refutes (it does not exist): n1 declares it dead in time */
  run(60000);
  CHECK(st1(net.s[1], "x", NULL) == RPCI_MS_DEAD);
  CHECK(st1(net.s[0], "x", NULL) == RPCI_MS_DEAD);
  rpci_buf_free(&body);
  rpci_buf_free(&resp);
  rpci_buf_free(&next);
}

static void test_leave(void) {
  net_reset();
  REQUIRE(cluster(4, 0));
  CHECK(rpci_swim_leave(net.s[3], tnow(3)) == 0);
  CHECK(rpci_swim_leave_pending(net.s[3]));
  drain(3);
  int pending_ms = 0;
  while (rpci_swim_leave_pending(net.s[3]) && pending_ms < 10000) {
    run(10);
    pending_ms += 10;
  }
  CHECK(!rpci_swim_leave_pending(net.s[3]));
  crash(3);
  run(60000);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(state_of(i, 3), RPCI_MS_LEFT);
    CHECK(events(i, RPCI_SWIM_EV_LEFT, 3) == 1);
    CHECK(events(i, RPCI_SWIM_EV_FAILED, 3) == 0);
  }
}

static void test_restart(void) {
  net_reset();
  REQUIRE(cluster(4, 0));
  crash(2);
  run(60000);
  for (int i = 0; i < 4; i++)
    if (i != 2) CHECK_EQ_INT(state_of(i, 2), RPCI_MS_DEAD);
  start_node(2, 100, 0);
  join(2, 0);
  run(3000);
  for (int i = 0; i < 4; i++) {
    if (i == 2) continue;
    CHECK_EQ_INT(state_of(i, 2), RPCI_MS_ALIVE);
    CHECK(inc_of(i, 2) == 100);
    CHECK(events(i, RPCI_SWIM_EV_RECOVERED, 2) == 1);
  }
  CHECK(all_hold(RPCI_MS_ALIVE));
  /* A restart with a lower incarnation refutes the dead record instead. */
  crash(1);
  run(60000);
  start_node(1, 0, 0);
  join(1, 0);
  run(5000);
  CHECK(all_hold(RPCI_MS_ALIVE));
  CHECK(inc_of(0, 1) > 1);
}

static void test_tags(void) {
  net_reset();
  REQUIRE(cluster(4, 0));
  rpci_tag t[2] = {{"role", "db"}, {"zone", "eu"}};
  uint64_t before = inc_of(0, 1);
  CHECK(rpci_swim_set_tags(net.s[1], tnow(1), t, 2) == 0);
  drain(1);
  run(2000);
  for (int i = 0; i < 4; i++) {
    if (i == 1) continue;
    rpci_swim_member m;
    REQUIRE(rpci_swim_find(net.s[i], "n1", &m) == 0);
    CHECK(m.incarnation == before + 1 && m.ntags == 2);
    CHECK(m.ntags == 2 && strcmp(m.tags[0].key, "role") == 0 && strcmp(m.tags[1].value, "eu") == 0);
    CHECK(events(i, RPCI_SWIM_EV_UPDATED, 1) == 1);
  }
  /* too many / too long tags are refused, nothing changes */
  rpci_tag big[33];
  for (int i = 0; i < 33; i++) big[i].key = big[i].value = "k";
  CHECK(rpci_swim_set_tags(net.s[1], tnow(1), big, 33) == -1);
  char longv[600];
  memset(longv, 'v', sizeof longv - 1);
  longv[sizeof longv - 1] = 0;
  rpci_tag lv = {"k", longv};
  CHECK(rpci_swim_set_tags(net.s[1], tnow(1), &lv, 1) == -1);
  rpci_swim_stats st;
  rpci_swim_get_stats(net.s[1], &st);
  CHECK(st.incarnation == before + 1);
  CHECK(rpci_swim_set_rpc_addr(net.s[1], tnow(1), "r1b") == 0);
  drain(1);
  run(2000);
  rpci_swim_member m;
  REQUIRE(rpci_swim_find(net.s[0], "n1", &m) == 0);
  CHECK(strcmp(m.rpc_addr, "r1b") == 0 && m.ntags == 2);
}

static void test_reap(void) {
  net_reset();
  for (int i = 0; i < 4; i++) {
    rpci_swim_cfg c = base_cfg(i, 1);
    c.reap_ms = 20000;
    net.s[i] = rpci_swim_new(&c, tnow(i));
    net.max_inc[i] = 1;
  }
  net.n = 4;
  for (int i = 1; i < 4; i++) join(i, 0);
  run(3000);
  REQUIRE(all_hold(RPCI_MS_ALIVE));
  crash(3);
  for (int t = 0; t < 90000; t += 100) {
    run(100);
    if (state_of(0, 3) == -1 && state_of(1, 3) == -1 && state_of(2, 3) == -1) break;
  }
  CHECK(state_of(0, 3) == -1 && state_of(1, 3) == -1 && state_of(2, 3) == -1);
  CHECK(events(0, RPCI_SWIM_EV_REAPED, 3) == 1);
  int64_t failed_at = -1, reaped_at = -1;
  for (int k = 0; k < net.nev[0]; k++) {
    if (strcmp(net.ev[0][k].name, "n3")) continue;
    if (net.ev[0][k].type == RPCI_SWIM_EV_FAILED) failed_at = net.ev[0][k].t;
    if (net.ev[0][k].type == RPCI_SWIM_EV_REAPED) reaped_at = net.ev[0][k].t;
  }
  /* reaped reap_ms after death, checked every reap_ms / 8 */
  CHECK(failed_at > 0 && reaped_at - failed_at >= 20000 && reaped_at - failed_at <= 22500 + 1);
  CHECK(rpci_swim_count(net.s[0]) == 3);
  /* the tombstone does not come back through push-pull */
  run_sync(0, 1);
  run_sync(1, 2);
  run(10000);
  CHECK(state_of(0, 3) == -1 && state_of(2, 3) == -1);
}

static void test_partition_heal(void) {
  net_reset();
  REQUIRE(cluster(6, 0));
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      if ((i < 3) != (j < 3)) net.block[i][j] = 1;
  run(120000);
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      if ((i < 3) != (j < 3)) CHECK_EQ_INT(state_of(i, j), RPCI_MS_DEAD);
  for (int i = 0; i < 6; i++) CHECK(events(i, RPCI_SWIM_EV_PARTITIONED, -1) == 1);
  rpci_swim_stats st;
  rpci_swim_get_stats(net.s[0], &st);
  CHECK(st.partitioned == 1);
  memset(net.block, 0, sizeof net.block);
  int64_t heal_start = net.now;
  int healed = 0;
  for (int t = 0; t < 120000 && !healed; t += 500) {
    run(500);
    healed = all_hold(RPCI_MS_ALIVE);
  }
  fprintf(stderr, "healed after %lld ms\n", (long long)(net.now - heal_start));
  CHECK(healed);
  for (int i = 0; i < 6; i++) CHECK(events(i, RPCI_SWIM_EV_HEALED, -1) == 1);
  rpci_swim_get_stats(net.s[0], &st);
  CHECK(st.partitioned == 0);
  CHECK(net.inc_decreased == 0);
}

static void test_clock_jumps(void) {
  net_reset();
  REQUIRE(cluster(4, 0));
  rpci_swim_stats a, b;
  rpci_swim_get_stats(net.s[1], &a);
  net.off[1] = -10000; /* backwards 10 s: treated as no time passing */
  run(5000);
  rpci_swim_get_stats(net.s[1], &b);
  CHECK(b.probes == a.probes); /* nothing fires twice or early */
  run(12000);
  rpci_swim_get_stats(net.s[1], &b);
  CHECK(b.probes > a.probes);
  CHECK(all_hold(RPCI_MS_ALIVE));
  /* forwards one hour: overdue timers run once; nobody is declared dead */
  net.off[2] = 3600 * 1000;
  run(30000);
  CHECK(all_hold(RPCI_MS_ALIVE));
  for (int i = 0; i < 4; i++) CHECK(events(i, RPCI_SWIM_EV_FAILED, -1) == 0);
  CHECK(net.inc_decreased == 0);
}

static void test_stall_lifeguard(void) {
  /* A node stalled for 3 s runs its timers before reading what arrived
   * meanwhile. With Lifeguard it suspects nobody (its judgements wait for
   * the queued input) and its health score rises. */
  for (int lg = 0; lg >= -1; lg--) {
    net_reset();
    REQUIRE(cluster(5, lg));
    int sus = 0;
    for (int k = 0; k < 10; k++) {
      run(1000 + 137 * k);
      /* stall right after a ping left: its ack arrives during the stall */
      for (int w = 0; w < 3000 && net.s[0]->probe.phase != 1; w++) run(1);
      net.stalled[0] = net.now + 3000;
      run(3500);
    }
    for (int j = 1; j < 5; j++) sus += events(0, RPCI_SWIM_EV_SUSPECTED, j);
    if (lg == 0) {
      CHECK(sus == 0);
      for (int j = 1; j < 5; j++) CHECK(events(0, RPCI_SWIM_EV_FAILED, j) == 0);
    } else {
      CHECK(sus > 0); /* plain SWIM does suspect (the comparison is fair) */
    }
    run(30000);
    CHECK(all_hold(RPCI_MS_ALIVE));
  }
}

static void test_malformed(void) {
  rpci_swim *s = single();
  rpci_swim_stats st;
  static const uint8_t junk[][8] = {{0xff},
                                    {0x80},
                                    {0x81, 0x01},
                                    {0x82, 0x01, 0x82},
                                    {0x82, 0x01, 0x80},
                                    {0x9f, 0x01, 0xff},
                                    {0xa1, 0x01, 0x02}};
  static const size_t jl[] = {1, 1, 2, 3, 3, 3, 3};
  uint64_t expect_bad = 0;
  for (size_t i = 0; i < sizeof jl / sizeof jl[0]; i++) {
    rpci_swim_recv(s, net.now, "g1", junk[i], jl[i]);
    expect_bad += i != 2; /* [1] alone is an empty, valid datagram */
  }
  rpci_swim_recv(s, net.now, "g1", NULL, 0);
  expect_bad++;
  rpci_swim_get_stats(s, &st);
  CHECK_EQ_INT(st.malformed, expect_bad);
  /* an unknown message type before a valid alive: skipped, alive taken */
  rpci_buf b = RPCI_BUF_INIT;
  static const uint8_t unk[] = {0x82, 0x19, 0x01, 0x00, 0x80};
  CHECK(rpci_buf_append(&b, unk, sizeof unk) == 0);
  rpci_galive a = alive_of("fresh", 3);
  CHECK(rpci_genc_alive(&b, &a) == 0);
  feed(s, &b, 2);
  rpci_swim_get_stats(s, &st);
  CHECK(st.unknown_msgs == 1 && st.malformed == expect_bad);
  CHECK(st1(s, "fresh", NULL) == RPCI_MS_ALIVE);
  /* unknown proto version: counted, dropped */
  static const uint8_t v9[] = {0x82, 0x09, 0x82, 0x03, 0x01};
  rpci_swim_recv(s, net.now, "g1", v9, sizeof v9);
  rpci_swim_get_stats(s, &st);
  CHECK(st.unknown_msgs == 2);
  /* a bad message after a good one: the good one counts */
  b.len = 0;
  a = alive_of("good", 1);
  CHECK(rpci_genc_alive(&b, &a) == 0);
  static const uint8_t bad[] = {0x82, 0x05, 0x00};
  CHECK(rpci_buf_append(&b, bad, sizeof bad) == 0);
  feed(s, &b, 2);
  rpci_swim_get_stats(s, &st);
  CHECK(st.malformed == expect_bad + 1);
  CHECK(st1(s, "good", NULL) == RPCI_MS_ALIVE);
  /* sync bodies: garbage and datagram messages are refused */
  rpci_buf resp = RPCI_BUF_INIT, next = RPCI_BUF_INIT;
  CHECK(rpci_swim_sync_serve(s, net.now, junk[0], 1, &resp) == -1 && resp.len == 0);
  rpci_buf pkt = RPCI_BUF_INIT;
  CHECK(rpci_genc_envelope(&pkt, 1, b.data, 0) == 0);
  CHECK(rpci_swim_sync_step(s, net.now, pkt.data, pkt.len, &next) == -1);
  b.len = 0;
  CHECK(rpci_genc_ack(&b, RPCI_GM_ACK, 1) == 0);
  pkt.len = 0;
  CHECK(rpci_genc_envelope(&pkt, 1, b.data, b.len) == 0);
  CHECK(rpci_swim_sync_serve(s, net.now, pkt.data, pkt.len, &resp) == -1);
  CHECK(rpci_swim_sync_step(s, net.now, pkt.data, pkt.len, &next) == -1);
  /* Random bytes and bit flips of a valid datagram never crash. */
  uint8_t buf[256];
  for (int round = 0; round < 20000; round++) {
    size_t n = trand() % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)trand();
    if (round % 2) buf[0] = 0x80 | (buf[0] & 0x1f);
    rpci_swim_recv(s, net.now, "g1", buf, n);
    rpci_swim_tick(s, net.now);
    drain(0);
  }
  rpci_buf_free(&b);
  rpci_buf_free(&pkt);
  rpci_buf_free(&resp);
  rpci_buf_free(&next);
  CHECK(net.oversize == 0);
}

static void test_max_packet(void) {
  /* Small packets, big tags and churn: nothing over max_packet. */
  net_reset();
  net.max_packet = 300;
  REQUIRE(cluster(8, 0));
  char v[8][120];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 8; i++) {
      memset(v[i], 'a' + (round + i) % 26, 100);
      v[i][100] = 0;
      rpci_tag t = {"payload", v[i]};
      CHECK(rpci_swim_set_tags(net.s[i], tnow(i), &t, 1) == 0);
      drain(i);
    }
    run(700);
  }
  run(5000);
  CHECK(net.oversize == 0);
  CHECK(all_hold(RPCI_MS_ALIVE));
  /* a record that cannot fit a datagram is refused */
  char big[400];
  memset(big, 'b', 399);
  big[399] = 0;
  rpci_tag t = {"k", big};
  CHECK(rpci_swim_set_tags(net.s[0], tnow(0), &t, 1) == -1);
  net.max_packet = 0;
}

static void test_loss(void) {
  /* 5% loss for 10 minutes: nobody declared dead. */
  net_reset();
  REQUIRE(cluster(8, 0));
  net.loss = 0.05;
  run(600000);
  for (int i = 0; i < 8; i++) CHECK(events(i, RPCI_SWIM_EV_FAILED, -1) == 0);
  net.loss = 0;
  run(5000);
  CHECK(all_hold(RPCI_MS_ALIVE));
}

static void test_config(void) {
  rpci_swim_cfg c;
  memset(&c, 0, sizeof c);
  CHECK(rpci_swim_new(&c, 0) == NULL);
  c.name = "x";
  CHECK(rpci_swim_new(&c, 0) == NULL);
  c.gossip_addr = "g";
  char longname[70];
  memset(longname, 'n', 69);
  longname[69] = 0;
  rpci_swim *s = rpci_swim_new(&c, 0);
  CHECK(s != NULL);
  rpci_swim_member m;
  CHECK(s && rpci_swim_member_at(s, 0, &m) == 0 && m.is_self && strcmp(m.rpc_addr, "") == 0);
  CHECK(s && rpci_swim_member_at(s, 1, &m) == -1);
  CHECK(s && rpci_swim_next_deadline(s) >= 0);
  rpci_swim_free(s);
  c.name = longname;
  CHECK(rpci_swim_new(&c, 0) == NULL);
  CHECK(strcmp(rpci_mstate_name(RPCI_MS_LEFT), "left") == 0);
  CHECK(strcmp(rpci_swim_ev_name(RPCI_SWIM_EV_REAPED), "reaped") == 0);
  CHECK(strcmp(rpci_swim_ev_name(RPCI_SWIM_EV_JOINED), "joined") == 0);
}

static void test_outputs_decode(void) {
  /* Every datagram any test above made decoded completely. */
  CHECK(undecoded_total + net.undecoded == 0);
}

int main(void) {
  RUN(test_suspicion_timeout);
  RUN(test_codec);
  RUN(test_bcast);
  RUN(test_config);
  RUN(test_join_pushpull);
  RUN(test_probe_ack);
  RUN(test_indirect_nack);
  RUN(test_one_way);
  RUN(test_suspect_to_dead);
  RUN(test_refute);
  RUN(test_precedence);
  RUN(test_dead_not_revived);
  RUN(test_leave);
  RUN(test_restart);
  RUN(test_tags);
  RUN(test_reap);
  RUN(test_partition_heal);
  RUN(test_clock_jumps);
  RUN(test_stall_lifeguard);
  RUN(test_malformed);
  RUN(test_max_packet);
  RUN(test_loss);
  RUN(test_outputs_decode);
  net_reset();
  return TEST_END();
}
