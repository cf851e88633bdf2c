/*
 * Membership rules of the SWIM core: what alive, suspect and dead news does
 * to a record, refutation, Lifeguard's suspicion timers and local health,
 * the partition detector and reaping.
 *
 * Design notes
 * - Precedence for one member: a higher incarnation wins; at an equal
 *   incarnation left > dead > suspect > alive. A record held dead or left is
 *   only revived by an alive record with a strictly higher incarnation,
 *   which only the member itself can have produced (only a node raises its
 *   own incarnation). Suspect news never touches a dead or left record.
 * - News that changes a record is re-broadcast; news that does not is
 *   dropped (that is what stops gossip). Records learned from a push-pull
 *   about members not known before are added silently (a joiner learning
 *   the whole cluster must not re-gossip it); every other change learned by
 *   push-pull is re-broadcast like gossip.
 * - A dead record from a push-pull peer about a member held alive changes
 *   nothing here: the member is sent a ping with a suspect message about
 *   itself (at most RPCI_SWIM_NOTIFY_MAX per push-pull body) so that it
 *   refutes if it is alive; if it is not, this node's own probes find out.
 *   (memberlist turns such records into a local suspicion that it gossips:
 *   after a partition, one push-pull across the cut then makes a whole
 *   side suspect itself, a storm of suspicions and refutations.)
 * - Suspicion timers are a binary min-heap on the deadline; a record in
 *   state suspect has exactly one heap entry (rpci_mem.susp) and any state
 *   change away from suspect removes it.
 * - Lifeguard (lifeguard on): the timeout starts at max and shrinks towards
 *   min as independent confirmations arrive (rpci_swim_suspicion_timeout_ms);
 *   local health (score) rises on missed nacks, failed probes, refutations
 *   and stalls, and falls on successful probes. After a stall, judgements
 *   wait until grace_until so that input queued during the stall is read
 *   before anybody is suspected or declared dead. Plain SWIM: fixed min
 *   timeout, no confirmations, no score, no grace.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"

/* ---- suspicion timeout (pure) ------------------------------------------ */

static int64_t susp_min(int mult, int interval, size_t n) {
  double scale = n > 1 ? log10((double)n) : 0.0;
  if (scale < 1.0) scale = 1.0;
  return (int64_t)mult * (int64_t)floor(scale * 1000.0) * interval / 1000;
}

static int susp_k(size_t n) {
  int k = RPCI_SWIM_SUSP_K;
  return (int64_t)n - 2 < k ? 0 : k;
}

int64_t rpci_swim_suspicion_timeout_ms(int suspicion_mult, int suspicion_max_mult,
                                       int probe_interval_ms, size_t n, int c) {
  int64_t min = susp_min(suspicion_mult, probe_interval_ms, n);
  int64_t max = (int64_t)suspicion_max_mult * min;
  int k = susp_k(n);
  if (c < 0) c = 0;
  if (k < 1 || c >= k || max <= min) return min;
  double frac = log((double)c + 1.0) / log((double)k + 1.0);
  int64_t t = (int64_t)floor((double)max - frac * (double)(max - min));
  return t < min ? min : t;
}

/* ---- suspicion heap ---------------------------------------------------- */

static void heap_swap(rpci_swim *s, uint32_t a, uint32_t b) {
  rpci_susp t = s->susp[a];
  s->susp[a] = s->susp[b];
  s->susp[b] = t;
  s->m[s->susp[a].mem].susp = a + 1;
  s->m[s->susp[b].mem].susp = b + 1;
}

static void heap_up(rpci_swim *s, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (s->susp[p].deadline <= s->susp[i].deadline) return;
    heap_swap(s, p, i);
    i = p;
  }
}

static void heap_down(rpci_swim *s, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->nsusp && s->susp[l].deadline < s->susp[m].deadline) m = l;
    if (r < s->nsusp && s->susp[r].deadline < s->susp[m].deadline) m = r;
    if (m == i) return;
    heap_swap(s, i, m);
    i = m;
  }
}

void rpci_swim_susp_cancel(rpci_swim *s, uint32_t mem) {
  uint32_t slot = s->m[mem].susp;
  if (!slot) return;
  uint32_t i = slot - 1, last = s->nsusp - 1;
  s->m[mem].susp = 0;
  if (i != last) {
    s->susp[i] = s->susp[last];
    s->m[s->susp[i].mem].susp = i + 1;
  }
  s->nsusp--;
  if (i < s->nsusp) {
    uint32_t moved = s->susp[i].mem;
    heap_up(s, i);
    heap_down(s, s->m[moved].susp - 1);
  }
  if (s->nsusp == 0 && s->capsusp > 64) {
    free(s->susp);
    s->susp = NULL;
    s->capsusp = 0;
  }
}

/* Starts a suspicion of member mem accused by `who`. Out of memory: the
 * member stays suspect without a timer until news about it arrives. */
static void susp_start(rpci_swim *s, uint32_t mem, uint64_t who) {
  if (s->nsusp == s->capsusp) {
    uint32_t n = s->capsusp ? s->capsusp * 2 : 8;
    rpci_susp *p = realloc(s->susp, (size_t)n * sizeof *p);
    if (!p) return;
    s->susp = p;
    s->capsusp = n;
  }
  size_t live = rpci_swim_live(s);
  rpci_susp *x = &s->susp[s->nsusp];
  memset(x, 0, sizeof *x);
  x->mem = mem;
  x->start = s->now;
  x->min = rpci_swim_suspicion_timeout_ms(s->cfg.suspicion_mult, s->cfg.suspicion_max_mult,
                                          s->cfg.probe_interval_ms, live, RPCI_SWIM_SUSP_K);
  x->k = s->lifeguard ? susp_k(live) : 0;
  x->max = s->lifeguard ? x->min * s->cfg.suspicion_max_mult : x->min;
  x->deadline = x->start + (x->k < 1 ? x->min : x->max);
  x->who[0] = who;
  x->nwho = 1;
  s->m[mem].susp = ++s->nsusp;
  heap_up(s, s->nsusp - 1);
}

/* A confirmation from `who`. Returns 1 when it was new information. */
static int susp_confirm(rpci_swim *s, uint32_t mem, uint64_t who) {
  uint32_t slot = s->m[mem].susp;
  if (!slot) return 0;
  rpci_susp *x = &s->susp[slot - 1];
  if (x->n >= x->k) return 0;
  for (int i = 0; i < x->nwho; i++)
    if (x->who[i] == who) return 0;
  x->who[x->nwho++] = who;
  x->n++;
  double frac = log((double)x->n + 1.0) / log((double)x->k + 1.0);
  int64_t t = x->n >= x->k ? x->min : (int64_t)floor((double)x->max - frac * (x->max - x->min));
  if (t < x->min) t = x->min;
  x->deadline = x->start + t;
  heap_up(s, slot - 1);
  return 1;
}

static void bc_accuse(rpci_swim *s, int type, const char *name, uint64_t inc, rpci_gstr from,
                      int refine) {
  s->scratch.len = 0;
  if (rpci_genc_accuse(&s->scratch, type, rpci_gstr_c(name), inc, from) == 0)
    rpci_swim_broadcast(s, name, 0, refine);
}

static rpci_gstr self_name(const rpci_swim *s) { return rpci_gstr_c(rpci_swim_m_name(s, 0)); }

void rpci_swim_susp_tick(rpci_swim *s) {
  while (s->nsusp && s->susp[0].deadline <= s->now) {
    if (s->lifeguard && s->now < s->grace_until) {
      s->susp[0].deadline = s->grace_until;
      heap_down(s, 0);
      continue;
    }
    uint32_t mem = s->susp[0].mem;
    rpci_swim_susp_cancel(s, mem);
    if (s->m[mem].state != RPCI_MS_SUSPECT) continue;
    char name[RPCI_SWIM_MAX_NAME + 1];
    strcpy(name, rpci_swim_m_name(s, mem));
    uint64_t inc = s->m[mem].inc;
    rpci_swim_m_set_state(s, mem, RPCI_MS_DEAD, inc);
    rpci_swim_emit(s, RPCI_SWIM_EV_FAILED, name, inc);
    bc_accuse(s, RPCI_GM_DEAD, name, inc, self_name(s), 0);
  }
}

/* ---- local health ------------------------------------------------------ */

void rpci_swim_awareness(rpci_swim *s, int delta) {
  if (!s->lifeguard) return;
  int v = s->score + delta;
  if (v > s->cfg.awareness_max - 1) v = s->cfg.awareness_max - 1;
  if (v < 0) v = 0;
  s->score = v;
}

/* ---- broadcasts and refutation ----------------------------------------- */

void rpci_swim_bc_alive(rpci_swim *s, uint32_t i) {
  rpci_galive a;
  char name[RPCI_SWIM_MAX_NAME + 1];
  strcpy(name, rpci_swim_m_name(s, i));
  rpci_swim_m_alive(s, i, &a);
  s->scratch.len = 0;
  if (rpci_genc_alive(&s->scratch, &a) == 0) rpci_swim_broadcast(s, name, 1, 0);
}

void rpci_swim_refute(rpci_swim *s, uint64_t accused) {
  uint64_t inc = s->m[0].inc;
  if (accused > inc) inc = accused;
  if (inc < UINT64_MAX) inc++;
  rpci_swim_m_set_state(s, 0, RPCI_MS_ALIVE, inc);
  s->st_.refutes++;
  rpci_swim_awareness(s, 1);
  rpci_swim_bc_alive(s, 0);
}

/* Our record reached someone in an old version: send it the current one
 * (at most once per received datagram). */
static void stale_refresh(rpci_swim *s, const char *from_addr) {
  if (!from_addr || !*from_addr || s->stale_reply_done) return;
  rpci_galive a;
  rpci_swim_m_alive(s, 0, &a);
  size_t off = s->stage.len;
  if (rpci_genc_alive(&s->stage, &a) == 0) {
    rpci_swim_stage(s, from_addr, off);
    s->stale_reply_done = 1;
  } else {
    s->stage.len = off;
  }
}

/* ---- news -------------------------------------------------------------- */

static int is_self(const rpci_swim *s, rpci_gstr name) {
  return rpci_gstr_eq(name, rpci_swim_m_name(s, 0));
}

static int same_record(const rpci_swim *s, uint32_t i, const rpci_galive *a) {
  rpci_galive b;
  rpci_swim_m_alive(s, i, &b);
  rpci_gstr at = a->tags, bt = b.tags;
  static const uint8_t empty = 0xa0;
  if (at.n == 0) at = (rpci_gstr){&empty, 1};
  return a->addr.n == b.addr.n && memcmp(a->addr.p, b.addr.p, a->addr.n) == 0 &&
         a->rpc_addr.n == b.rpc_addr.n &&
         (a->rpc_addr.n == 0 || memcmp(a->rpc_addr.p, b.rpc_addr.p, a->rpc_addr.n) == 0) &&
         at.n == bt.n && memcmp(at.p, bt.p, at.n) == 0 && a->pmin == b.pmin && a->pmax == b.pmax;
}

void rpci_swim_on_alive(rpci_swim *s, const rpci_galive *a, int origin, const char *from_addr) {
  (void)from_addr;
  if (a->pmin > RPCI_SWIM_PROTO_MAX || a->pmax < RPCI_SWIM_PROTO_MIN) return;
  if (is_self(s, a->name)) {
    if (s->left || a->inc < s->m[0].inc) return;
    if (a->inc > s->m[0].inc || !same_record(s, 0, a)) rpci_swim_refute(s, a->inc);
    return;
  }
  int64_t idx = rpci_swim_m_find(s, a->name.p, a->name.n);
  if (idx < 0) {
    idx = rpci_swim_m_insert(s, a, RPCI_MS_ALIVE, s->now);
    if (idx < 0) return;
    rpci_swim_emit(s, RPCI_SWIM_EV_JOINED, rpci_swim_m_name(s, (uint32_t)idx), a->inc);
    if (origin != RPCI_ORIGIN_SYNC) rpci_swim_bc_alive(s, (uint32_t)idx);
    return;
  }
  uint32_t i = (uint32_t)idx;
  if (a->inc <= s->m[i].inc) return;
  int old = s->m[i].state;
  int changed = rpci_swim_m_update(s, i, a);
  if (changed < 0) return;
  rpci_swim_susp_cancel(s, i);
  rpci_swim_m_set_state(s, i, RPCI_MS_ALIVE, a->inc);
  int ev = old == RPCI_MS_LEFT                             ? RPCI_SWIM_EV_JOINED
           : old == RPCI_MS_DEAD || old == RPCI_MS_SUSPECT ? RPCI_SWIM_EV_RECOVERED
           : changed                                       ? RPCI_SWIM_EV_UPDATED
                                                           : 0;
  if (ev) rpci_swim_emit(s, ev, rpci_swim_m_name(s, i), a->inc);
  rpci_swim_bc_alive(s, i);
}

void rpci_swim_on_suspect(rpci_swim *s, rpci_gstr name, uint64_t inc, rpci_gstr from,
                          const char *from_addr) {
  if (is_self(s, name)) {
    if (s->left) return;
    if (inc >= s->m[0].inc)
      rpci_swim_refute(s, inc);
    else
      stale_refresh(s, from_addr);
    return;
  }
  int64_t idx = rpci_swim_m_find(s, name.p, name.n);
  if (idx < 0) return;
  uint32_t i = (uint32_t)idx;
  rpci_mem *m = &s->m[i];
  if (inc < m->inc || m->state == RPCI_MS_DEAD || m->state == RPCI_MS_LEFT) return;
  char nm[RPCI_SWIM_MAX_NAME + 1];
  strcpy(nm, rpci_swim_m_name(s, i));
  uint64_t who = rpci_swim_name_hash(from.p, from.n);
  if (m->state == RPCI_MS_SUSPECT) {
    if (inc > m->inc) rpci_swim_m_set_state(s, i, RPCI_MS_SUSPECT, inc);
    /* A further accuser refines the queued suspicion (same transmit
     * count): confirmations must not multiply suspicion traffic. */
    if (susp_confirm(s, i, who)) bc_accuse(s, RPCI_GM_SUSPECT, nm, inc, from, 1);
    return;
  }
  rpci_swim_m_set_state(s, i, RPCI_MS_SUSPECT, inc);
  susp_start(s, i, who);
  rpci_swim_emit(s, RPCI_SWIM_EV_SUSPECTED, nm, inc);
  bc_accuse(s, RPCI_GM_SUSPECT, nm, inc, from, 0);
}

void rpci_swim_on_dead(rpci_swim *s, rpci_gstr name, uint64_t inc, rpci_gstr from,
                       const char *from_addr) {
  int leave = name.n == from.n && memcmp(name.p, from.p, name.n) == 0;
  if (is_self(s, name)) {
    if (s->left) return;
    if (inc >= s->m[0].inc)
      rpci_swim_refute(s, inc);
    else
      stale_refresh(s, from_addr);
    return;
  }
  int64_t idx = rpci_swim_m_find(s, name.p, name.n);
  if (idx < 0) return;
  uint32_t i = (uint32_t)idx;
  rpci_mem *m = &s->m[i];
  if (inc < m->inc) return;
  char nm[RPCI_SWIM_MAX_NAME + 1];
  strcpy(nm, rpci_swim_m_name(s, i));
  if (m->state == RPCI_MS_DEAD || m->state == RPCI_MS_LEFT) {
    if (leave && m->state == RPCI_MS_DEAD) {
      rpci_swim_m_set_state(s, i, RPCI_MS_LEFT, inc);
      rpci_swim_emit(s, RPCI_SWIM_EV_LEFT, nm, inc);
      bc_accuse(s, RPCI_GM_DEAD, nm, inc, from, 0);
    } else if (inc > m->inc) {
      rpci_swim_m_set_state(s, i, m->state, inc);
    }
    return;
  }
  rpci_swim_susp_cancel(s, i);
  rpci_swim_m_set_state(s, i, leave ? RPCI_MS_LEFT : RPCI_MS_DEAD, inc);
  rpci_swim_emit(s, leave ? RPCI_SWIM_EV_LEFT : RPCI_SWIM_EV_FAILED, nm, inc);
  bc_accuse(s, RPCI_GM_DEAD, nm, inc, from, 0);
}

void rpci_swim_on_record(rpci_swim *s, const rpci_grecord *r) {
  const rpci_galive *a = &r->a;
  if (r->state == RPCI_MS_ALIVE || r->state == RPCI_MS_SUSPECT) {
    rpci_swim_on_alive(s, a, RPCI_ORIGIN_SYNC, NULL);
    return;
  }
  if (is_self(s, a->name)) {
    if (!s->left && a->inc >= s->m[0].inc) rpci_swim_refute(s, a->inc);
    return;
  }
  int64_t idx = rpci_swim_m_find(s, a->name.p, a->name.n);
  if (idx < 0) {
    if (a->pmin > RPCI_SWIM_PROTO_MAX || a->pmax < RPCI_SWIM_PROTO_MIN) return;
    if (s->cfg.reap_ms > 0 && r->age_ms >= (uint64_t)s->cfg.reap_ms) return;
    int64_t changed = s->now - (int64_t)(r->age_ms > (uint64_t)s->now ? 0 : r->age_ms);
    rpci_swim_m_insert(s, a, r->state, changed);
    return;
  }
  uint32_t i = (uint32_t)idx;
  if (r->state == RPCI_MS_LEFT) {
    rpci_swim_on_dead(s, a->name, a->inc, a->name, NULL);
    return;
  }
  rpci_mem *m = &s->m[i];
  if (m->state == RPCI_MS_ALIVE || m->state == RPCI_MS_SUSPECT) {
    if (a->inc >= m->inc) rpci_swim_notify(s, i, a->inc);
  } else if (a->inc > m->inc) {
    rpci_swim_m_set_state(s, i, m->state, a->inc);
  }
}

void rpci_swim_notify(rpci_swim *s, uint32_t i, uint64_t inc) {
  if (s->notify_left == 0) return;
  s->notify_left--;
  char addr[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(addr, rpci_swim_m_addr(s, i));
  rpci_gstr name = rpci_gstr_c(rpci_swim_m_name(s, i));
  size_t off = s->stage.len;
  if (rpci_genc_ping(&s->stage, ++s->seq, name, self_name(s)) == 0)
    rpci_swim_stage(s, addr, off);
  else
    s->stage.len = off;
  off = s->stage.len;
  if (rpci_genc_accuse(&s->stage, RPCI_GM_SUSPECT, name, inc, self_name(s)) == 0)
    rpci_swim_stage(s, addr, off);
  else
    s->stage.len = off;
}

void rpci_swim_suspect_local(rpci_swim *s, uint32_t i) {
  char nm[RPCI_SWIM_MAX_NAME + 1], addr[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(nm, rpci_swim_m_name(s, i));
  strcpy(addr, rpci_swim_m_addr(s, i));
  uint64_t inc = s->m[i].inc;
  rpci_swim_on_suspect(s, rpci_gstr_c(nm), inc, self_name(s), NULL);
  if (!s->lifeguard) return;
  /* Buddy system: tell the member at once so that it can refute. */
  size_t off = s->stage.len;
  if (rpci_genc_accuse(&s->stage, RPCI_GM_SUSPECT, rpci_gstr_c(nm), inc, self_name(s)) == 0)
    rpci_swim_stage(s, addr, off);
  else
    s->stage.len = off;
}

/* ---- partition detector ------------------------------------------------ */

static void part_advance(rpci_swim *s) {
  int64_t slot = s->cfg.partition_window_ms / RPCI_SWIM_PART_SLOTS;
  if (slot < 1) slot = 1;
  int64_t id = s->now / slot;
  int64_t cur = s->part_slot;
  if (id <= cur) return;
  int64_t steps = id - cur;
  if (steps >= RPCI_SWIM_PART_SLOTS) {
    memset(s->part_loss, 0, sizeof s->part_loss);
  } else {
    for (int64_t k = 1; k <= steps; k++) s->part_loss[(cur + k) % RPCI_SWIM_PART_SLOTS] = 0;
  }
  s->part_slot = id;
}

void rpci_swim_part_note(rpci_swim *s, int old_state, int new_state) {
  part_advance(s);
  int partitioned = s->st_.partitioned;
  if (old_state == RPCI_MS_ALIVE && (new_state == RPCI_MS_SUSPECT || new_state == RPCI_MS_DEAD)) {
    if (s->in_sync) return; /* a peer's view during a heal, not a loss seen here */
    s->part_loss[s->part_slot % RPCI_SWIM_PART_SLOTS]++;
    if (!partitioned) {
      uint32_t loss = 0;
      for (int k = 0; k < RPCI_SWIM_PART_SLOTS; k++) loss += s->part_loss[k];
      uint32_t base = s->count[RPCI_MS_ALIVE] + loss;
      if (base >= 3 && loss * 2 > base) {
        s->st_.partitioned = 1;
        s->part_base = base;
        rpci_swim_emit(s, RPCI_SWIM_EV_PARTITIONED, "", s->m[0].inc);
      }
    }
  } else if (partitioned && new_state == RPCI_MS_ALIVE) {
    uint32_t alive = s->count[RPCI_MS_ALIVE];
    uint32_t known = alive + s->count[RPCI_MS_SUSPECT] + s->count[RPCI_MS_DEAD];
    uint32_t need = s->part_base < known ? s->part_base : known;
    if (alive * 2 > need) {
      s->st_.partitioned = 0;
      memset(s->part_loss, 0, sizeof s->part_loss);
      rpci_swim_emit(s, RPCI_SWIM_EV_HEALED, "", s->m[0].inc);
    }
  }
}

/* ---- reaping ----------------------------------------------------------- */

void rpci_swim_reap(rpci_swim *s) {
  if (s->cfg.reap_ms <= 0) return;
  for (uint32_t i = s->n; i-- > 1;) {
    rpci_mem *m = &s->m[i];
    if (m->state != RPCI_MS_DEAD && m->state != RPCI_MS_LEFT) continue;
    if (s->now - m->changed < s->cfg.reap_ms) continue;
    const char *nm = rpci_swim_m_name(s, i);
    rpci_swim_emit(s, RPCI_SWIM_EV_REAPED, nm, m->inc);
    rpci_bcast_drop(s->bc, nm);
    rpci_swim_m_remove(s, i);
  }
}
