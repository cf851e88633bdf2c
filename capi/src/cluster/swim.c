/*
 * The SWIM core's public face: configuration, the calls of swim.h that feed
 * it (recv, tick, join, leave, tags), the event and push-pull job queues,
 * inspection and statistics. The rules live in swim_state.c, failure
 * detection in swim_probe.c, push-pull in swim_sync.c, datagram assembly in
 * swim_out.c, the record table in swim_member.c.
 *
 * Design notes
 * - Every public call that changes state follows the same shape: clamp the
 *   time (never backwards), do the work, rpci_swim_flush. So outputs are
 *   complete when the call returns and the caller drains them.
 * - Randomness: xoshiro256** seeded by splitmix64 from (seed, name); no
 *   other source. Same seed and inputs give the same outputs.
 * - Stall detection (Lifeguard): a tick that comes more than
 *   RPCI_SWIM_LATE_MS after the earliest timer it should have run means
 *   this node could not run on time (a stall, or a clock jump forward):
 *   every judgement (probe timeouts, suspicion timeouts) waits until
 *   grace_until = now + probe_timeout / 5, so that the input queued
 *   meanwhile (acks, refutations) is read first. Past probe_timeout of
 *   lateness its local health score also rises by
 *   1 + lateness / probe_interval.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"

#define FAR_FUTURE (INT64_MAX / 4)

/* ---- randomness -------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rpci_swim_rand(rpci_swim *s) {
  uint64_t *r = s->rng;
  uint64_t out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
  r[2] ^= r[0];
  r[3] ^= r[1];
  r[1] ^= r[2];
  r[0] ^= r[3];
  r[2] ^= t;
  r[3] = rotl(r[3], 45);
  return out;
}

uint64_t rpci_swim_randn(rpci_swim *s, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t lim = UINT64_MAX - UINT64_MAX % n, v;
  do v = rpci_swim_rand(s);
  while (v >= lim);
  return v % n;
}

/* ---- names ------------------------------------------------------------- */

const char *rpci_mstate_name(int st) {
  static const char *const n[] = {"alive", "suspect", "dead", "left"};
  return st >= 0 && st <= 3 ? n[st] : "unknown";
}

const char *rpci_swim_ev_name(int type) {
  static const char *const n[] = {"joined",    "left",        "failed", "updated", "recovered",
                                  "suspected", "partitioned", "healed", "reaped"};
  return type >= 1 && type <= 9 ? n[type - 1] : "unknown";
}

/* ---- shared helpers ---------------------------------------------------- */

uint32_t rpci_swim_live(const rpci_swim *s) {
  return s->count[RPCI_MS_ALIVE] + s->count[RPCI_MS_SUSPECT] + 1;
}

int rpci_swim_limit(const rpci_swim *s) {
  uint32_t n = rpci_swim_live(s) + 1; /* ceil(log10(N + 1)) */
  int digits = 0;
  for (uint64_t p = 1; p < n; p *= 10) digits++;
  if (digits < 1) digits = 1;
  return s->cfg.retransmit_mult * digits;
}

void rpci_swim_emit(rpci_swim *s, int type, const char *name, uint64_t inc) {
  if (s->evn == RPCI_SWIM_EVQ_MAX) { /* drop the oldest */
    s->evh = (s->evh + 1) % s->evcap;
    s->evn--;
    s->st_.events_dropped++;
  }
  if (s->evn == s->evcap) {
    uint32_t n = s->evcap ? s->evcap * 2 : 16;
    rpci_evq_ent *q = malloc((size_t)n * sizeof *q);
    if (!q) {
      s->st_.events_dropped++;
      return;
    }
    for (uint32_t i = 0; i < s->evn; i++) q[i] = s->evq[(s->evh + i) % s->evcap];
    free(s->evq);
    s->evq = q;
    s->evh = 0;
    s->evcap = n;
  }
  rpci_evq_ent *e = &s->evq[(s->evh + s->evn) % s->evcap];
  e->type = type;
  e->inc = inc;
  size_t l = strlen(name);
  if (l > RPCI_SWIM_MAX_NAME) l = RPCI_SWIM_MAX_NAME;
  memcpy(e->name, name, l);
  e->name[l] = 0;
  s->evn++;
}

void rpci_swim_job(rpci_swim *s, uint32_t i, int is_join) {
  const char *rpc = rpci_swim_m_rpc(s, i), *name = rpci_swim_m_name(s, i);
  if (!*rpc) return;
  for (uint32_t j = 0; j < s->jobn; j++) {
    rpci_job *x = &s->jobs[(s->jobh + j) % s->jobcap];
    if (strcmp(x->name, name) == 0) {
      x->is_join |= is_join;
      return;
    }
  }
  if (s->jobn >= RPCI_SWIM_JOBQ_MAX) {
    s->st_.tx_dropped++;
    return;
  }
  if (s->jobn == s->jobcap) {
    uint32_t n = s->jobcap ? s->jobcap * 2 : 4;
    rpci_job *q = malloc((size_t)n * sizeof *q);
    if (!q) {
      s->st_.tx_dropped++;
      return;
    }
    for (uint32_t j = 0; j < s->jobn; j++) q[j] = s->jobs[(s->jobh + j) % s->jobcap];
    free(s->jobs);
    s->jobs = q;
    s->jobh = 0;
    s->jobcap = n;
  }
  rpci_job *x = &s->jobs[(s->jobh + s->jobn) % s->jobcap];
  strcpy(x->name, name);
  strcpy(x->rpc, rpc);
  x->is_join = is_join;
  s->jobn++;
}

void rpci_swim_set_trace(rpci_swim *s, rpci_swim_trace_fn fn, void *ud) {
  s->trace = fn;
  s->trace_ud = ud;
}

/* ---- lifecycle --------------------------------------------------------- */

static int str_ok(const char *p, size_t min, size_t max) {
  if (!p) return min == 0;
  size_t n = strlen(p);
  return n >= min && n <= max;
}

static void defaults(rpci_swim_cfg *c) {
#define DEF(f, v) \
  if (c->f <= 0) c->f = (v)
  DEF(probe_interval_ms, 800);
  DEF(probe_timeout_ms, 400);
  DEF(indirect_checks, 3);
  DEF(retransmit_mult, 4);
  DEF(suspicion_mult, 3);
  DEF(suspicion_max_mult, 6);
  DEF(awareness_max, 8);
  DEF(gossip_interval_ms, 200);
  DEF(gossip_nodes, 3);
  DEF(reconnect_interval_ms, 10000);
  DEF(reap_ms, 900000);
  DEF(partition_window_ms, 30000);
  DEF(max_packet, 1150);
#undef DEF
  if (c->sync_interval_ms == 0) c->sync_interval_ms = 30000;
  if (c->probe_timeout_ms >= c->probe_interval_ms) c->probe_timeout_ms = c->probe_interval_ms / 2;
  if (c->probe_timeout_ms < 1) c->probe_timeout_ms = 1;
  if (c->max_packet < 256) c->max_packet = 256;
  if (c->max_packet > 65000) c->max_packet = 65000;
}

rpci_swim *rpci_swim_new(const rpci_swim_cfg *cfg, int64_t now_ms) {
  if (!cfg || !str_ok(cfg->name, 1, RPCI_SWIM_MAX_NAME) ||
      !str_ok(cfg->gossip_addr, 1, RPCI_SWIM_MAX_ADDR) ||
      !str_ok(cfg->rpc_addr, 0, RPCI_SWIM_MAX_ADDR))
    return NULL;
  rpci_swim *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->cfg = *cfg;
  defaults(&s->cfg);
  s->cfg.name = s->cfg.gossip_addr = s->cfg.rpc_addr = NULL;
  s->lifeguard = cfg->lifeguard >= 0;
  s->now = now_ms;
  uint64_t x = cfg->seed ^ rpci_swim_name_hash((const uint8_t *)cfg->name, strlen(cfg->name));
  for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&x);
  s->bc = rpci_bcast_new();
  rpci_galive a = {0};
  a.name = rpci_gstr_c(cfg->name);
  a.addr = rpci_gstr_c(cfg->gossip_addr);
  a.rpc_addr = rpci_gstr_c(cfg->rpc_addr ? cfg->rpc_addr : "");
  a.inc = cfg->incarnation;
  a.pmin = RPCI_SWIM_PROTO_MIN;
  a.pmax = RPCI_SWIM_PROTO_MAX;
  if (!s->bc || rpci_swim_m_insert(s, &a, RPCI_MS_ALIVE, now_ms) != 0) {
    rpci_swim_free(s);
    return NULL;
  }
  /* Random phases, so that nodes started together do not act together. */
  s->t_probe = now_ms + (int64_t)rpci_swim_randn(s, (uint64_t)s->cfg.probe_interval_ms);
  s->t_gossip = now_ms + (int64_t)rpci_swim_randn(s, (uint64_t)s->cfg.gossip_interval_ms);
  s->t_sync = s->cfg.sync_interval_ms < 0
                  ? FAR_FUTURE
                  : now_ms + (int64_t)rpci_swim_randn(s, (uint64_t)s->cfg.sync_interval_ms) + 1;
  s->t_reconnect = now_ms + s->cfg.reconnect_interval_ms / 2 +
                   (int64_t)rpci_swim_randn(s, (uint64_t)s->cfg.reconnect_interval_ms / 2 + 1);
  int64_t rp = s->cfg.reap_ms / 8;
  s->t_reap = now_ms + (rp < 100 ? 100 : rp > 60000 ? 60000 : rp);
  return s;
}

void rpci_swim_free(rpci_swim *s) {
  if (!s) return;
  rpci_bcast_free(s->bc);
  free(s->m);
  free(s->buckets);
  free(s->arena);
  free(s->susp);
  free(s->relay);
  rpci_buf_free(&s->stage);
  rpci_buf_free(&s->scratch);
  rpci_buf_free(&s->pkt);
  free(s->st);
  for (uint32_t i = 0; i < s->txn; i++) free(s->txq[(s->txh + i) % s->txcap]);
  free(s->txq);
  free(s->tx_cur);
  free(s->evq);
  free(s->jobs);
  free(s->view_tags);
  free(s->view_str);
  free(s);
}

static void clamp(rpci_swim *s, int64_t now) {
  if (now > s->now) s->now = now;
}

/* ---- inputs ------------------------------------------------------------ */

void rpci_swim_recv(rpci_swim *s, int64_t now_ms, const char *from_addr, const uint8_t *pkt,
                    size_t len) {
  clamp(s, now_ms);
  s->st_.pkts_in++;
  s->st_.bytes_in += len;
  if (from_addr && !str_ok(from_addr, 1, RPCI_SWIM_MAX_ADDR)) from_addr = NULL;
  rpci_gdec d;
  int r = pkt ? rpci_gdec_open(&d, pkt, len) : RPCI_GDEC_MALFORMED;
  if (r == RPCI_GDEC_VERSION) {
    s->st_.unknown_msgs++;
    return;
  }
  if (r != 0) {
    s->st_.malformed++;
    return;
  }
  s->stale_reply_done = s->whois_done = 0;
  s->pkt_alive_name = NULL;
  rpci_gmsg m;
  while ((r = rpci_gdec_next(&d, &m)) > 0) {
    if (r == 2 || m.type >= RPCI_GM_SYNC_HELLO) {
      s->st_.unknown_msgs++;
      continue;
    }
    rpci_swim_handle(s, &m, from_addr);
  }
  if (r < 0) s->st_.malformed++;
  s->pkt_alive_name = NULL;
  rpci_swim_flush(s);
}

/* Earliest time a timer is due; with_gossip 0 leaves out the gossip timer,
 * which goes stale while nothing is queued (so it says nothing about how
 * late a tick is). */
static int64_t next_due(const rpci_swim *s, int with_gossip) {
  int64_t t = s->t_reap;
#define MIN(x) \
  if ((x) < t) t = (x)
  MIN(s->t_sync);
  MIN(s->t_reconnect);
  if (!s->left || s->probe.phase) MIN(s->t_probe);
  if (s->probe.phase == 1) MIN(s->probe.t_timeout);
  if (s->probe.phase == 2) MIN(s->probe.t_end);
  if (with_gossip && rpci_bcast_len(s->bc)) MIN(s->t_gossip);
  if (s->nsusp) MIN(s->susp[0].deadline);
  if (s->nrelay) MIN(rpci_swim_relay_next(s));
#undef MIN
  return t;
}

int64_t rpci_swim_next_deadline(const rpci_swim *s) {
  int64_t t = next_due(s, 1);
  return t < s->now ? s->now : t;
}

static int64_t sync_interval(const rpci_swim *s) {
  /* memberlist's pushPullScale: one more interval per doubling past 32. */
  int64_t iv = s->cfg.sync_interval_ms;
  uint32_t n = rpci_swim_live(s), mult = 1;
  for (uint64_t p = 32; p < n; p *= 2) mult++;
  return iv * mult;
}

static void sync_tick(rpci_swim *s) {
  if (s->cfg.sync_interval_ms < 0 || s->now < s->t_sync) return;
  s->t_sync = s->now + sync_interval(s);
  if (s->left) return;
  for (int tries = 0; tries < 8; tries++) {
    uint32_t i;
    if (rpci_swim_pick(s, &i, 1, 1 << RPCI_MS_ALIVE, -1) != 1) return;
    if (*rpci_swim_m_rpc(s, i)) {
      rpci_swim_job(s, i, 0);
      return;
    }
  }
}

void rpci_swim_tick(rpci_swim *s, int64_t now_ms) {
  clamp(s, now_ms);
  int64_t late = s->now - next_due(s, 0);
  if (s->lifeguard && late > RPCI_SWIM_LATE_MS) {
    s->grace_until = s->now + (s->cfg.probe_timeout_ms / 5 > 0 ? s->cfg.probe_timeout_ms / 5 : 1);
    if (late > s->cfg.probe_timeout_ms) {
      int64_t bump = 1 + late / s->cfg.probe_interval_ms;
      rpci_swim_awareness(s, bump > s->cfg.awareness_max ? s->cfg.awareness_max : (int)bump);
    }
  }
  rpci_swim_relay_tick(s);
  rpci_swim_probe_tick(s);
  rpci_swim_susp_tick(s);
  rpci_swim_gossip_tick(s);
  sync_tick(s);
  rpci_swim_reconnect_tick(s);
  if (s->now >= s->t_reap) {
    int64_t rp = s->cfg.reap_ms / 8;
    s->t_reap = s->now + (rp < 100 ? 100 : rp > 60000 ? 60000 : rp);
    rpci_swim_reap(s);
  }
  rpci_swim_flush(s);
}

int rpci_swim_join(rpci_swim *s, int64_t now_ms, const char *const *seed_addrs, size_t n) {
  clamp(s, now_ms);
  rpci_galive a;
  rpci_gstr any = {(const uint8_t *)"", 0};
  for (size_t k = 0; k < n; k++) {
    const char *addr = seed_addrs[k];
    if (!str_ok(addr, 1, RPCI_SWIM_MAX_ADDR)) continue;
    uint64_t seq = ++s->seq;
    size_t off = s->stage.len;
    rpci_swim_m_alive(s, 0, &a);
    if (rpci_genc_ping(&s->stage, seq, any, a.name)) goto nomem;
    rpci_swim_stage(s, addr, off);
    off = s->stage.len;
    if (rpci_genc_alive(&s->stage, &a)) goto nomem;
    rpci_swim_stage(s, addr, off);
    if (s->njoin == RPCI_SWIM_JOIN_MAX) {
      memmove(s->join_seq, s->join_seq + 1, (RPCI_SWIM_JOIN_MAX - 1) * sizeof s->join_seq[0]);
      s->njoin--;
    }
    s->join_seq[s->njoin++] = seq;
  }
  rpci_swim_flush(s);
  return 0;
nomem:
  s->stage.len = 0;
  s->nst = 0;
  return -1;
}

int rpci_swim_leave(rpci_swim *s, int64_t now_ms) {
  clamp(s, now_ms);
  if (s->left) return 0;
  uint64_t inc = s->m[0].inc < UINT64_MAX ? s->m[0].inc + 1 : UINT64_MAX;
  s->left = 1;
  s->probe.phase = 0;
  rpci_swim_m_set_state(s, 0, RPCI_MS_LEFT, inc);
  rpci_gstr me = rpci_gstr_c(rpci_swim_m_name(s, 0));
  s->scratch.len = 0;
  char name[RPCI_SWIM_MAX_NAME + 1];
  strcpy(name, rpci_swim_m_name(s, 0));
  if (rpci_genc_accuse(&s->scratch, RPCI_GM_DEAD, me, inc, me) == 0)
    rpci_swim_broadcast(s, name, 0, 0);
  s->t_gossip = s->now; /* start spreading it at once */
  rpci_swim_flush(s);
  return 0;
}

int rpci_swim_leave_pending(const rpci_swim *s) {
  return s->left && rpci_bcast_has(s->bc, rpci_swim_m_name(s, 0));
}

/* Replaces this node's record and announces it at a higher incarnation. */
static int set_self(rpci_swim *s, const rpci_galive *a) {
  if (s->left) return -1;
  rpci_buf tmp = RPCI_BUF_INIT;
  int r = rpci_genc_alive(&tmp, a);
  size_t len = tmp.len;
  rpci_buf_free(&tmp);
  if (r || len > (size_t)s->cfg.max_packet - RPCI_GM_ENVELOPE) return -1;
  if (rpci_swim_m_update(s, 0, a) < 0) return -1;
  uint64_t inc = s->m[0].inc < UINT64_MAX ? s->m[0].inc + 1 : UINT64_MAX;
  rpci_swim_m_set_state(s, 0, RPCI_MS_ALIVE, inc);
  rpci_swim_bc_alive(s, 0);
  rpci_swim_flush(s);
  return 0;
}

int rpci_swim_set_tags(rpci_swim *s, int64_t now_ms, const rpci_tag *tags, size_t n) {
  clamp(s, now_ms);
  rpci_buf t = RPCI_BUF_INIT;
  if (rpci_genc_tags(&t, tags, n)) {
    rpci_buf_free(&t);
    return -1;
  }
  char name[RPCI_SWIM_MAX_NAME + 1], addr[RPCI_SWIM_MAX_ADDR + 1], rpc[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(name, rpci_swim_m_name(s, 0));
  strcpy(addr, rpci_swim_m_addr(s, 0));
  strcpy(rpc, rpci_swim_m_rpc(s, 0));
  rpci_galive a = {0};
  a.name = rpci_gstr_c(name);
  a.addr = rpci_gstr_c(addr);
  a.rpc_addr = rpci_gstr_c(rpc);
  a.tags.p = t.data;
  a.tags.n = t.len;
  a.pmin = s->m[0].pmin;
  a.pmax = s->m[0].pmax;
  a.inc = s->m[0].inc;
  int r = set_self(s, &a);
  rpci_buf_free(&t);
  return r;
}

int rpci_swim_set_rpc_addr(rpci_swim *s, int64_t now_ms, const char *rpc_addr) {
  clamp(s, now_ms);
  if (!str_ok(rpc_addr, 0, RPCI_SWIM_MAX_ADDR)) return -1;
  char name[RPCI_SWIM_MAX_NAME + 1], addr[RPCI_SWIM_MAX_ADDR + 1], rpc[RPCI_SWIM_MAX_ADDR + 1];
  uint8_t tags[2048];
  rpci_gstr t = rpci_swim_m_tags(s, 0);
  if (t.n > sizeof tags) return -1;
  memcpy(tags, t.p, t.n);
  strcpy(name, rpci_swim_m_name(s, 0));
  strcpy(addr, rpci_swim_m_addr(s, 0));
  strcpy(rpc, rpc_addr ? rpc_addr : "");
  rpci_galive a = {0};
  a.name = rpci_gstr_c(name);
  a.addr = rpci_gstr_c(addr);
  a.rpc_addr = rpci_gstr_c(rpc);
  a.tags.p = tags;
  a.tags.n = t.n;
  a.pmin = s->m[0].pmin;
  a.pmax = s->m[0].pmax;
  a.inc = s->m[0].inc;
  return set_self(s, &a);
}

/* ---- outputs ----------------------------------------------------------- */

int rpci_swim_poll_sync(rpci_swim *s, rpci_swim_sync_job *job) {
  if (s->jobn == 0) {
    if (s->jobcap > 16) {
      free(s->jobs);
      s->jobs = NULL;
      s->jobcap = s->jobh = 0;
    }
    return 0;
  }
  s->job_cur = s->jobs[s->jobh];
  s->jobh = (s->jobh + 1) % s->jobcap;
  s->jobn--;
  job->name = s->job_cur.name;
  job->rpc_addr = s->job_cur.rpc;
  job->is_join = s->job_cur.is_join;
  return 1;
}

int rpci_swim_poll_event(rpci_swim *s, rpci_swim_event *ev) {
  if (s->evn == 0) {
    if (s->evcap > 64) {
      free(s->evq);
      s->evq = NULL;
      s->evcap = s->evh = 0;
    }
    return 0;
  }
  s->ev_cur = s->evq[s->evh];
  s->evh = (s->evh + 1) % s->evcap;
  s->evn--;
  ev->type = s->ev_cur.type;
  ev->name = s->ev_cur.name;
  ev->incarnation = s->ev_cur.inc;
  return 1;
}

/* ---- inspection -------------------------------------------------------- */

size_t rpci_swim_count(const rpci_swim *s) { return s->n; }

/* Decodes member i's tags into the inspection scratch. The scratch is
 * logically mutable state of a const object (never itself const). */
static void view_tags(const rpci_swim *cs, uint32_t i, const rpci_tag **tags, size_t *n) {
  rpci_swim *s = (rpci_swim *)cs;
  rpci_gstr t = rpci_swim_m_tags(s, i);
  *tags = NULL;
  *n = 0;
  size_t need = t.n + 2 * RPCI_SWIM_MAX_TAGS;
  if (t.n <= 1) return;
  if (!s->view_tags && !(s->view_tags = malloc(RPCI_SWIM_MAX_TAGS * sizeof *s->view_tags))) return;
  if (need > s->view_str_cap) {
    char *p = realloc(s->view_str, need);
    if (!p) return;
    s->view_str = p;
    s->view_str_cap = need;
  }
  size_t off = 0, o = 0, k = 0;
  rpci_gstr key, val;
  while (k < RPCI_SWIM_MAX_TAGS && rpci_gtags_next(t, &off, &key, &val)) {
    char *kp = s->view_str + o;
    memcpy(kp, key.p, key.n);
    kp[key.n] = 0;
    o += key.n + 1;
    char *vp = s->view_str + o;
    if (val.n) memcpy(vp, val.p, val.n);
    vp[val.n] = 0;
    o += val.n + 1;
    s->view_tags[k].key = kp;
    s->view_tags[k].value = vp;
    k++;
  }
  *tags = s->view_tags;
  *n = k;
}

int rpci_swim_member_at(const rpci_swim *s, size_t i, rpci_swim_member *m) {
  if (i >= s->n) return -1;
  uint32_t k = (uint32_t)i;
  m->name = rpci_swim_m_name(s, k);
  m->gossip_addr = rpci_swim_m_addr(s, k);
  m->rpc_addr = rpci_swim_m_rpc(s, k);
  m->state = s->m[k].state;
  m->incarnation = s->m[k].inc;
  m->state_change_ms = s->m[k].changed;
  m->is_self = k == 0;
  view_tags(s, k, &m->tags, &m->ntags);
  return 0;
}

int rpci_swim_find(const rpci_swim *s, const char *name, rpci_swim_member *m) {
  if (!name) return -1;
  int64_t i = rpci_swim_m_find(s, (const uint8_t *)name, strlen(name));
  if (i < 0) return -1;
  return rpci_swim_member_at(s, (size_t)i, m);
}

void rpci_swim_get_stats(const rpci_swim *s, rpci_swim_stats *st) {
  *st = s->st_;
  st->health = s->score;
  st->incarnation = s->m[0].inc;
}
