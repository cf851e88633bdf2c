/*
 * swimsim: see swimsim.h for the model and the invariants.
 *
 * Every call into a core is followed by after(): its datagrams become
 * delivery events, its push-pull jobs become request events, its
 * membership events go to the callback, its own incarnation is checked and
 * its timer is re-armed. Events for a node that is down are dropped; for a
 * stalled node they are re-queued at the end of the stall, behind the
 * RESUME event that runs its (late) timers first.
 */
#include "swimsim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/msg.h"
#include "cluster/swim_int.h"

enum { E_TICK, E_PKT, E_SYNC_REQ, E_SYNC_RESP, E_RESUME, E_STOP };

typedef struct sev {
  int64_t t;
  uint64_t seq;
  int type;
  int node; /* where the event happens */
  int from;
  uint32_t tag; /* timer sequence, or the initiator's generation */
  uint8_t *data;
  size_t len;
} sev;

typedef struct snode {
  swimsim *sim;
  int id;
  rpci_swim *s;
  int up, left, leaving;
  uint32_t gen;
  int64_t stalled_until, leave_deadline;
  int64_t off_ms;
  uint32_t timer_seq;
  int64_t timer_at;
  uint64_t max_alive_inc, last_inc;
  int group;
  uint32_t *view; /* per member: 0 unknown, else inc << 3 | state << 1 | 1 */
  char name[16], addr[16], rpc[16];
} snode;

struct swimsim {
  swimsim_cfg cfg;
  snode *nodes;
  int n;
  sev *heap;
  size_t nh, caph;
  uint64_t seq;
  int64_t now;
  uint64_t rng[4];
  int groups_on;
  uint64_t *blocks;
  size_t nblocks, capblocks;
  swimsim_stats st;
  char violation[256];
};

#define VIEW_INC_MAX ((1u << 29) - 1)

/* ---- randomness -------------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t srand64(swimsim *sim) {
  uint64_t *r = sim->rng;
  uint64_t out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
  r[2] ^= r[0];
  r[3] ^= r[1];
  r[1] ^= r[2];
  r[0] ^= r[3];
  r[2] ^= t;
  r[3] = rotl(r[3], 45);
  return out;
}

static double srand01(swimsim *sim) { return (double)(srand64(sim) >> 11) * 0x1.0p-53; }

/* ---- event heap -------------------------------------------------------- */

static int ev_less(const sev *a, const sev *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(swimsim *sim, sev e) {
  if (sim->nh == sim->caph) {
    size_t n = sim->caph ? sim->caph * 2 : 1024;
    sev *h = realloc(sim->heap, n * sizeof *h);
    if (!h) {
      free(e.data);
      sim->st.pkts_lost++;
      return;
    }
    sim->heap = h;
    sim->caph = n;
  }
  e.seq = sim->seq++;
  size_t i = sim->nh++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!ev_less(&e, &sim->heap[p])) break;
    sim->heap[i] = sim->heap[p];
    i = p;
  }
  sim->heap[i] = e;
}

static sev pop(swimsim *sim) {
  sev top = sim->heap[0], last = sim->heap[--sim->nh];
  size_t i = 0, n = sim->nh;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const sev *best = &last;
    if (l < n && ev_less(&sim->heap[l], best)) {
      m = l;
      best = &sim->heap[l];
    }
    if (r < n && ev_less(&sim->heap[r], best)) m = r;
    if (m == i) break;
    sim->heap[i] = sim->heap[m];
    i = m;
  }
  if (n) sim->heap[i] = last;
  return top;
}

/* ---- helpers ----------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void violation(swimsim *sim, const char *fmt, ...) {
  sim->st.violations++;
  if (sim->violation[0]) return;
  int n = snprintf(sim->violation, sizeof sim->violation, "t=%lld us: ", (long long)sim->now);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sim->violation + n, sizeof sim->violation - (size_t)n, fmt, ap);
  va_end(ap);
}

static int64_t node_ms(const swimsim *sim, const snode *nd) { return sim->now / 1000 + nd->off_ms; }

static int node_of(const swimsim *sim, const char *s) {
  if (!s || (s[0] != 'n' && s[0] != 'g' && s[0] != 'r') || s[1] < '0' || s[1] > '9') return -1;
  long v = strtol(s + 1, NULL, 10);
  return v >= 0 && v < sim->n ? (int)v : -1;
}

static int blocked(const swimsim *sim, int a, int b) {
  if (sim->groups_on && sim->nodes[a].group != sim->nodes[b].group) return 1;
  uint64_t key = (uint64_t)a << 32 | (uint32_t)b;
  for (size_t k = 0; k < sim->nblocks; k++)
    if (sim->blocks[k] == key) return 1;
  return 0;
}

static int64_t latency(swimsim *sim, int a, int b) {
  uint64_t span = (uint64_t)(sim->cfg.lat_max_us - sim->cfg.lat_min_us) + 1;
  uint64_t h = mix64(sim->cfg.seed ^ mix64((uint64_t)a << 32 | (uint32_t)b));
  return sim->cfg.lat_min_us + (int64_t)(h % span) + (int64_t)(srand64(sim) % 51);
}

/* ---- invariants (trace hook) ------------------------------------------- */

static void trace(void *ud, const rpci_swim *s, const char *name, uint64_t inc, int state,
                  int removed) {
  (void)s;
  snode *obs = ud;
  swimsim *sim = obs->sim;
  int j = node_of(sim, name);
  if (j < 0 || !obs->view) return;
  uint32_t e = obs->view[j];
  if (removed) {
    obs->view[j] = 0;
    return;
  }
  if (inc > VIEW_INC_MAX) {
    violation(sim, "%s: %s incarnation %llu too large to track", obs->name, name,
              (unsigned long long)inc);
    return;
  }
  int live = state == RPCI_MS_ALIVE || state == RPCI_MS_SUSPECT;
  snode *subj = &sim->nodes[j];
  if (live && inc > subj->max_alive_inc)
    violation(sim, "%s holds %s alive/suspect at incarnation %llu, never produced (max %llu)",
              obs->name, name, (unsigned long long)inc, (unsigned long long)subj->max_alive_inc);
  if (e) {
    uint64_t old_inc = e >> 3;
    int old_state = (int)(e >> 1 & 3);
    if (inc < old_inc)
      violation(sim, "%s saw %s's incarnation decrease %llu -> %llu", obs->name, name,
                (unsigned long long)old_inc, (unsigned long long)inc);
    if ((old_state == RPCI_MS_DEAD || old_state == RPCI_MS_LEFT) && live && inc <= old_inc)
      violation(sim, "%s revived %s without a higher incarnation (%llu -> %llu)", obs->name, name,
                (unsigned long long)old_inc, (unsigned long long)inc);
  }
  obs->view[j] = (uint32_t)(inc << 3 | (uint64_t)state << 1 | 1);
}

/* ---- after a call into a core ------------------------------------------ */

static void stop_node(swimsim *sim, snode *nd) {
  rpci_swim_free(nd->s);
  nd->s = NULL;
  nd->up = 0;
  nd->leaving = 0;
  nd->timer_at = -1;
  sim->st.running--;
}

static void send_sync(swimsim *sim, int from, int to, int type, uint32_t tag, rpci_buf *body) {
  if (to < 0 || blocked(sim, from, to) || blocked(sim, to, from)) {
    rpci_buf_free(body);
    return;
  }
  sim->st.sync_bytes += body->len;
  sev e = {0};
  e.t = sim->now + latency(sim, from, to);
  e.type = type;
  e.node = to;
  e.from = from;
  e.tag = tag;
  e.len = body->len;
  e.data = rpci_buf_detach(body, NULL);
  push(sim, e);
}

static void after(swimsim *sim, snode *nd, int was_tick) {
  rpci_swim *s = nd->s;
  rpci_swim_tx tx;
  while (rpci_swim_poll_tx(s, &tx)) {
    sim->st.pkts_sent++;
    sim->st.bytes_sent += tx.len;
    int to = node_of(sim, tx.addr);
    if (to < 0 || blocked(sim, nd->id, to) || (sim->cfg.loss > 0 && srand01(sim) < sim->cfg.loss)) {
      sim->st.pkts_lost++;
      continue;
    }
    sev e = {0};
    e.t = sim->now + latency(sim, nd->id, to);
    e.type = E_PKT;
    e.node = to;
    e.from = nd->id;
    e.len = tx.len;
    e.data = malloc(tx.len);
    if (!e.data) continue;
    memcpy(e.data, tx.data, tx.len);
    push(sim, e);
  }
  rpci_swim_sync_job job;
  while (rpci_swim_poll_sync(s, &job)) {
    rpci_buf req = RPCI_BUF_INIT;
    if (rpci_swim_sync_start(s, node_ms(sim, nd), &req)) {
      rpci_buf_free(&req);
      continue;
    }
    sim->st.syncs++;
    send_sync(sim, nd->id, node_of(sim, job.rpc_addr), E_SYNC_REQ, nd->gen, &req);
  }
  rpci_swim_event ev;
  while (rpci_swim_poll_event(s, &ev))
    if (sim->cfg.on_event) sim->cfg.on_event(sim->cfg.ud, sim, nd->id, &ev);
  rpci_swim_stats st;
  rpci_swim_get_stats(s, &st);
  if (st.incarnation < nd->last_inc)
    violation(sim, "%s: own incarnation decreased %llu -> %llu", nd->name,
              (unsigned long long)nd->last_inc, (unsigned long long)st.incarnation);
  nd->last_inc = st.incarnation;
  if (!nd->left && st.incarnation > nd->max_alive_inc) nd->max_alive_inc = st.incarnation;
  if (nd->leaving && (!rpci_swim_leave_pending(s) || sim->now >= nd->leave_deadline)) {
    stop_node(sim, nd);
    return;
  }
  int64_t d = rpci_swim_next_deadline(s);
  int64_t t = (d - nd->off_ms) * 1000;
  if (t <= sim->now) t = was_tick ? sim->now + 1000 : sim->now;
  if (t != nd->timer_at) {
    nd->timer_at = t;
    sev e = {0};
    e.t = t;
    e.type = E_TICK;
    e.node = nd->id;
    e.tag = ++nd->timer_seq;
    push(sim, e);
  }
}

/* ---- lifecycle --------------------------------------------------------- */

swimsim *swimsim_new(const swimsim_cfg *cfg) {
  if (!cfg || cfg->max_nodes < 1) return NULL;
  swimsim *sim = calloc(1, sizeof *sim);
  if (!sim) return NULL;
  sim->cfg = *cfg;
  if (sim->cfg.lat_min_us <= 0) sim->cfg.lat_min_us = 200;
  if (sim->cfg.lat_max_us < sim->cfg.lat_min_us) sim->cfg.lat_max_us = 2000;
  if (sim->cfg.lat_max_us < sim->cfg.lat_min_us) sim->cfg.lat_max_us = sim->cfg.lat_min_us;
  sim->n = cfg->max_nodes;
  sim->now = 1000000;
  uint64_t x = cfg->seed;
  for (int i = 0; i < 4; i++) sim->rng[i] = mix64(x += 0x9e3779b97f4a7c15ull);
  sim->nodes = calloc((size_t)sim->n, sizeof *sim->nodes);
  if (!sim->nodes) {
    free(sim);
    return NULL;
  }
  for (int i = 0; i < sim->n; i++) {
    snode *nd = &sim->nodes[i];
    nd->sim = sim;
    nd->id = i;
    nd->timer_at = -1;
    snprintf(nd->name, sizeof nd->name, "n%d", i);
    snprintf(nd->addr, sizeof nd->addr, "g%d", i);
    snprintf(nd->rpc, sizeof nd->rpc, "r%d", i);
  }
  return sim;
}

void swimsim_free(swimsim *sim) {
  if (!sim) return;
  for (int i = 0; i < sim->n; i++) {
    rpci_swim_free(sim->nodes[i].s);
    free(sim->nodes[i].view);
  }
  for (size_t k = 0; k < sim->nh; k++) free(sim->heap[k].data);
  free(sim->heap);
  free(sim->nodes);
  free(sim->blocks);
  free(sim);
}

int64_t swimsim_now(const swimsim *sim) { return sim->now; }

static int start_core(swimsim *sim, int i, uint64_t inc) {
  snode *nd = &sim->nodes[i];
  if (nd->s) stop_node(sim, nd);
  if (!nd->view) {
    nd->view = calloc((size_t)sim->n, sizeof *nd->view);
    if (!nd->view) return -1;
  } else {
    memset(nd->view, 0, (size_t)sim->n * sizeof *nd->view);
  }
  rpci_swim_cfg c = sim->cfg.swim;
  c.name = nd->name;
  c.gossip_addr = nd->addr;
  c.rpc_addr = nd->rpc;
  c.incarnation = inc;
  c.seed = mix64(sim->cfg.seed ^ mix64((uint64_t)i << 20 | ++nd->gen));
  nd->s = rpci_swim_new(&c, node_ms(sim, nd));
  if (!nd->s) return -1;
  rpci_swim_set_trace(nd->s, trace, nd);
  nd->up = 1;
  nd->left = nd->leaving = 0;
  nd->stalled_until = 0;
  nd->last_inc = inc;
  if (inc > nd->max_alive_inc) nd->max_alive_inc = inc;
  sim->st.running++;
  return 0;
}

int swimsim_start(swimsim *sim, int i, uint64_t incarnation) {
  if (i < 0 || i >= sim->n || start_core(sim, i, incarnation)) return -1;
  after(sim, &sim->nodes[i], 0);
  return 0;
}

void swimsim_join(swimsim *sim, int i, const int *seeds, int n) {
  snode *nd = &sim->nodes[i];
  if (!nd->up) return;
  const char *addrs[16];
  int k = 0;
  for (int j = 0; j < n && k < 16; j++)
    if (seeds[j] >= 0 && seeds[j] < sim->n) addrs[k++] = sim->nodes[seeds[j]].addr;
  rpci_swim_join(nd->s, node_ms(sim, nd), addrs, (size_t)k);
  after(sim, nd, 0);
}

int swimsim_bootstrap(swimsim *sim, int n) {
  if (n > sim->n) return -1;
  rpci_buf m = RPCI_BUF_INIT, body = RPCI_BUF_INIT;
  int r = rpci_genc_msg_head(&m, RPCI_GM_SYNC_PUSH, 3) || rpci_genc_list_head(&m, (size_t)n);
  for (int i = 0; i < n && !r; i++) {
    rpci_grecord rec;
    memset(&rec, 0, sizeof rec);
    rec.a.name = rpci_gstr_c(sim->nodes[i].name);
    rec.a.addr = rpci_gstr_c(sim->nodes[i].addr);
    rec.a.rpc_addr = rpci_gstr_c(sim->nodes[i].rpc);
    rec.a.inc = 1;
    rec.a.pmin = RPCI_SWIM_PROTO_MIN;
    rec.a.pmax = RPCI_SWIM_PROTO_MAX;
    rec.state = RPCI_MS_ALIVE;
    r = rpci_genc_record(&m, &rec);
  }
  if (!r) r = rpci_genc_list_head(&m, 0) || rpci_genc_envelope(&body, 1, m.data, m.len);
  rpci_buf_free(&m);
  for (int i = 0; i < n && !r; i++) {
    if (start_core(sim, i, 1)) r = -1;
    sim->nodes[i].max_alive_inc = 1;
  }
  for (int i = 0; i < n && !r; i++) {
    snode *nd = &sim->nodes[i];
    rpci_buf resp = RPCI_BUF_INIT;
    if (rpci_swim_sync_serve(nd->s, node_ms(sim, nd), body.data, body.len, &resp)) r = -1;
    rpci_buf_free(&resp);
    after(sim, nd, 0);
  }
  rpci_buf_free(&body);
  return r ? -1 : 0;
}

void swimsim_crash(swimsim *sim, int i) {
  if (sim->nodes[i].up) stop_node(sim, &sim->nodes[i]);
}

void swimsim_leave(swimsim *sim, int i) {
  snode *nd = &sim->nodes[i];
  if (!nd->up || nd->left) return;
  nd->left = nd->leaving = 1;
  nd->leave_deadline = sim->now + 5000000;
  rpci_swim_leave(nd->s, node_ms(sim, nd));
  sev e = {0};
  e.t = nd->leave_deadline;
  e.type = E_STOP;
  e.node = i;
  e.tag = nd->gen;
  push(sim, e);
  after(sim, nd, 0);
}

void swimsim_stall(swimsim *sim, int i, int64_t dur_us) {
  snode *nd = &sim->nodes[i];
  if (!nd->up) return;
  int64_t until = sim->now + dur_us;
  if (until <= nd->stalled_until) return;
  nd->stalled_until = until;
  sev e = {0};
  e.t = until;
  e.type = E_RESUME;
  e.node = i;
  e.tag = nd->gen;
  push(sim, e);
}

void swimsim_clock_jump(swimsim *sim, int i, int64_t delta_ms) {
  snode *nd = &sim->nodes[i];
  nd->off_ms += delta_ms;
  if (nd->up && sim->now >= nd->stalled_until) {
    nd->timer_at = -1;
    after(sim, nd, 0);
  }
}

void swimsim_set_loss(swimsim *sim, double loss) { sim->cfg.loss = loss; }

void swimsim_block(swimsim *sim, int from, int to, int on) {
  uint64_t key = (uint64_t)from << 32 | (uint32_t)to;
  for (size_t k = 0; k < sim->nblocks; k++) {
    if (sim->blocks[k] != key) continue;
    if (!on) sim->blocks[k] = sim->blocks[--sim->nblocks];
    return;
  }
  if (!on) return;
  if (sim->nblocks == sim->capblocks) {
    size_t n = sim->capblocks ? sim->capblocks * 2 : 16;
    uint64_t *b = realloc(sim->blocks, n * sizeof *b);
    if (!b) return;
    sim->blocks = b;
    sim->capblocks = n;
  }
  sim->blocks[sim->nblocks++] = key;
}

void swimsim_set_group(swimsim *sim, int i, int group) { sim->nodes[i].group = group; }
void swimsim_groups(swimsim *sim, int on) { sim->groups_on = on; }

/* ---- the event loop ---------------------------------------------------- */

/* Re-queues e at the end of the node's stall; returns 1 when it did. */
static int defer_if_stalled(swimsim *sim, snode *nd, sev *e) {
  if (sim->now >= nd->stalled_until) return 0;
  e->t = nd->stalled_until;
  push(sim, *e);
  return 1;
}

static void handle(swimsim *sim, sev *e) {
  snode *nd = &sim->nodes[e->node];
  switch (e->type) {
    case E_TICK:
      if (!nd->up || e->tag != nd->timer_seq || sim->now < nd->stalled_until) break;
      nd->timer_at = -1;
      rpci_swim_tick(nd->s, node_ms(sim, nd));
      after(sim, nd, 1);
      break;
    case E_RESUME:
      if (!nd->up || e->tag != nd->gen || sim->now < nd->stalled_until) break;
      nd->timer_at = -1;
      rpci_swim_tick(nd->s, node_ms(sim, nd)); /* timers first, then the queue */
      after(sim, nd, 1);
      break;
    case E_STOP:
      if (nd->up && e->tag == nd->gen && nd->leaving) stop_node(sim, nd);
      break;
    case E_PKT:
      if (!nd->up) {
        sim->st.pkts_lost++;
        break;
      }
      if (defer_if_stalled(sim, nd, e)) return;
      rpci_swim_recv(nd->s, node_ms(sim, nd), sim->nodes[e->from].addr, e->data, e->len);
      after(sim, nd, 0);
      break;
    case E_SYNC_REQ: {
      if (!nd->up) break;
      if (defer_if_stalled(sim, nd, e)) return;
      rpci_buf resp = RPCI_BUF_INIT;
      int r = rpci_swim_sync_serve(nd->s, node_ms(sim, nd), e->data, e->len, &resp);
      after(sim, nd, 0);
      if (r == 0 && nd->up)
        send_sync(sim, e->node, e->from, E_SYNC_RESP, e->tag, &resp);
      else
        rpci_buf_free(&resp);
      break;
    }
    case E_SYNC_RESP: {
      if (!nd->up || e->tag != nd->gen) break;
      if (defer_if_stalled(sim, nd, e)) return;
      rpci_buf next = RPCI_BUF_INIT;
      int r = rpci_swim_sync_step(nd->s, node_ms(sim, nd), e->data, e->len, &next);
      after(sim, nd, 0);
      if (r == 1 && nd->up)
        send_sync(sim, e->node, e->from, E_SYNC_REQ, nd->gen, &next);
      else
        rpci_buf_free(&next);
      break;
    }
  }
  free(e->data);
}

void swimsim_run_until(swimsim *sim, int64_t t_us) {
  while (sim->nh && sim->heap[0].t <= t_us) {
    sev e = pop(sim);
    if (e.t > sim->now) sim->now = e.t;
    sim->st.events++;
    handle(sim, &e);
  }
  if (t_us > sim->now) sim->now = t_us;
}

/* ---- observation ------------------------------------------------------- */

int swimsim_up(const swimsim *sim, int i) { return i >= 0 && i < sim->n && sim->nodes[i].up; }

int swimsim_stalled(const swimsim *sim, int i) { return sim->now < sim->nodes[i].stalled_until; }

int swimsim_state(const swimsim *sim, int obs, int subj) {
  const snode *o = &sim->nodes[obs];
  if (!o->up || !o->view) return -1;
  uint32_t e = o->view[subj];
  return e ? (int)(e >> 1 & 3) : -1;
}

int swimsim_converged(const swimsim *sim) {
  for (int i = 0; i < sim->n; i++) {
    if (!sim->nodes[i].up) continue;
    for (int j = 0; j < sim->n; j++)
      if (j != i && sim->nodes[j].up && swimsim_state(sim, i, j) != RPCI_MS_ALIVE) return 0;
  }
  return 1;
}

int swimsim_count_holding(const swimsim *sim, int subj, int st) {
  int c = 0;
  for (int i = 0; i < sim->n; i++)
    if (i != subj && sim->nodes[i].up && swimsim_state(sim, i, subj) == st) c++;
  return c;
}

rpci_swim *swimsim_core(swimsim *sim, int i) { return sim->nodes[i].s; }

void swimsim_get_stats(const swimsim *sim, swimsim_stats *st) { *st = sim->st; }

const char *swimsim_violation(const swimsim *sim) {
  return sim->violation[0] ? sim->violation : NULL;
}

uint64_t swimsim_audit(swimsim *sim) {
  uint64_t bad = 0;
  for (int i = 0; i < sim->n; i++) {
    snode *nd = &sim->nodes[i];
    if (!nd->up) continue;
    size_t n = rpci_swim_count(nd->s), known = 0;
    for (size_t k = 0; k < n; k++) {
      rpci_swim_member m;
      if (rpci_swim_member_at(nd->s, k, &m) || m.is_self) continue;
      known++;
      int j = node_of(sim, m.name);
      uint32_t e = j < 0 ? 0 : nd->view[j];
      if (!e || (int)(e >> 1 & 3) != m.state || (e >> 3) != m.incarnation) {
        bad++;
        violation(sim, "audit: %s holds %s differently from its trace (%llu, %llu)", nd->name,
                  m.name, (unsigned long long)m.incarnation, (unsigned long long)(e >> 3));
      }
    }
    size_t inview = 0;
    for (int j = 0; j < sim->n; j++) inview += nd->view[j] != 0;
    if (inview != known) {
      bad++;
      violation(sim, "audit: %s has %zu records, its trace %zu", nd->name, known, inview);
    }
  }
  return bad;
}
