/*
 * Failure detection and the datagram side of the SWIM core: probe rounds,
 * indirect probes (as requester and as helper), acks and nacks, gossip
 * rounds, reconnection to dead members, and the dispatch of received
 * messages.
 *
 * Design notes
 * - One probe at a time. A probe starts every probe_interval * (score + 1);
 *   it pings the target, and at probe_timeout * (score + 1) without an ack
 *   asks indirect_checks random alive members to ping it (with want_nack
 *   under Lifeguard) and pings it directly once more. Without any ack by
 *   the end of the interval the target becomes suspect (this node's own
 *   accusation). Any ack carrying the probe's sequence number ends it.
 * - Probe order: every round visits the records in a fresh pseudo-random
 *   order, index (a + j * b) mod n0 with b coprime to n0, skipping self and
 *   dead/left records; no per-member storage.
 * - Helpers ping the target with their own sequence number and forward the
 *   ack under the requester's; without an ack within 4/5 of probe_timeout
 *   they send a nack if asked. At most RPCI_SWIM_RELAY_MAX relays at once
 *   (more are dropped and counted in tx_dropped).
 * - Pings are answered to the address they came from. A ping addressed to
 *   "" (a join) is answered with this node's alive record before the ack;
 *   the joiner takes the seed's name from that record, queues a join
 *   push-pull with it and brings its next periodic push-pull forward to
 *   2..5 probe intervals later. A ping from a
 *   member held dead is answered with a suspect message about it, so that
 *   it refutes (under Lifeguard, also from a member held suspect). A ping
 *   from an unknown member (whose alive broadcast missed this node, e.g.
 *   two nodes that joined at the same time) is answered with a ping in the
 *   join form, whose reply carries its record (once per datagram).
 * - Gossip: every gossip_interval, when broadcasts are queued, to
 *   gossip_nodes random members that are alive, suspect, or dead for less
 *   than reconnect_interval_ms (memberlist's gossip to the dead).
 * - Reconnect: every reconnect_interval_ms, with probability
 *   dead / (alive + suspect + 1) (Serf's rule: about one attempt per dead
 *   member per interval cluster-wide), one random dead member is pinged
 *   with a suspect message about itself attached and offered a push-pull.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"

static rpci_gstr self_name(const rpci_swim *s) { return rpci_gstr_c(rpci_swim_m_name(s, 0)); }

/* Runs `call` (an encoder appending to s->stage) and stages its message for
 * addr; on failure the partial bytes are discarded. */
#define STAGE(s, addr, call)                    \
  do {                                          \
    size_t stage_off_ = (s)->stage.len;         \
    if ((call) == 0)                            \
      rpci_swim_stage((s), (addr), stage_off_); \
    else                                        \
      (s)->stage.len = stage_off_;              \
  } while (0)

static int eligible(const rpci_swim *s, uint32_t i, int want, int64_t except, int64_t dead_window,
                    int need_rpc) {
  if (i == 0 || (int64_t)i == except) return 0;
  const rpci_mem *m = &s->m[i];
  int ok = (want >> m->state) & 1;
  if (!ok && m->state == RPCI_MS_DEAD && dead_window > 0 && s->now - m->changed < dead_window)
    ok = 1;
  if (ok && need_rpc && !*rpci_swim_m_rpc(s, i)) ok = 0;
  return ok;
}

static uint32_t pick_ex(rpci_swim *s, uint32_t *out, uint32_t k, int want, int64_t except,
                        int64_t dead_window, int need_rpc) {
  uint32_t got = 0;
  if (s->n < 2 || k == 0) return 0;
  for (uint32_t t = 0; t < 8 * k + 16 && got < k; t++) {
    uint32_t i = (uint32_t)rpci_swim_randn(s, s->n);
    if (!eligible(s, i, want, except, dead_window, need_rpc)) continue;
    int dup = 0;
    for (uint32_t j = 0; j < got; j++) dup |= out[j] == i;
    if (!dup) out[got++] = i;
  }
  if (got < k) { /* few eligible: scan from a random start */
    uint32_t start = (uint32_t)rpci_swim_randn(s, s->n);
    for (uint32_t c = 0; c < s->n && got < k; c++) {
      uint32_t i = (start + c) % s->n;
      if (!eligible(s, i, want, except, dead_window, need_rpc)) continue;
      int dup = 0;
      for (uint32_t j = 0; j < got; j++) dup |= out[j] == i;
      if (!dup) out[got++] = i;
    }
  }
  return got;
}

uint32_t rpci_swim_pick(rpci_swim *s, uint32_t *out, uint32_t k, int want, int64_t except) {
  return pick_ex(s, out, k, want, except, 0, 0);
}

/* ---- probing ----------------------------------------------------------- */

static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static void new_round(rpci_swim *s) {
  s->perm_n0 = s->n;
  s->perm_j = 0;
  s->perm_a = rpci_swim_randn(s, s->n);
  s->perm_b = 1;
  if (s->n > 2) {
    do s->perm_b = 1 + rpci_swim_randn(s, s->n - 1);
    while (gcd(s->perm_b, s->n) != 1);
  }
}

static int64_t next_target(rpci_swim *s) {
  uint64_t budget = 2 * (uint64_t)s->n + 4;
  while (budget--) {
    if (s->perm_j >= s->perm_n0) new_round(s);
    uint32_t i = (uint32_t)((s->perm_a + (uint64_t)s->perm_j * s->perm_b) % s->perm_n0);
    s->perm_j++;
    if (i == 0 || i >= s->n) continue;
    int st = s->m[i].state;
    if (st == RPCI_MS_ALIVE || st == RPCI_MS_SUSPECT) return i;
  }
  return -1;
}

/* A ping to member i, with (Lifeguard) a suspect message about it attached
 * when it is suspect. */
static void stage_ping(rpci_swim *s, uint32_t i, uint64_t seq) {
  char addr[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(addr, rpci_swim_m_addr(s, i));
  rpci_gstr target = rpci_gstr_c(rpci_swim_m_name(s, i));
  STAGE(s, addr, rpci_genc_ping(&s->stage, seq, target, self_name(s)));
  if (s->lifeguard && s->m[i].state == RPCI_MS_SUSPECT)
    STAGE(s, addr, rpci_genc_accuse(&s->stage, RPCI_GM_SUSPECT, target, s->m[i].inc, self_name(s)));
}

static void start_probe(rpci_swim *s) {
  int64_t interval = (int64_t)s->cfg.probe_interval_ms * (s->score + 1);
  s->t_probe = s->now + interval;
  int64_t idx = next_target(s);
  if (idx < 0) return;
  uint32_t i = (uint32_t)idx;
  s->probe.phase = 1;
  s->probe.seq = ++s->seq;
  strcpy(s->probe.target, rpci_swim_m_name(s, i));
  s->probe.start = s->now;
  s->probe.t_timeout = s->now + (int64_t)s->cfg.probe_timeout_ms * (s->score + 1);
  s->probe.t_end = s->now + interval;
  s->probe.nacks = s->probe.expected_nacks = 0;
  s->st_.probes++;
  stage_ping(s, i, s->probe.seq);
}

static void probe_timeout(rpci_swim *s) {
  int64_t idx = rpci_swim_m_find(s, (const uint8_t *)s->probe.target, strlen(s->probe.target));
  if (idx < 0 || s->m[idx].state == RPCI_MS_DEAD || s->m[idx].state == RPCI_MS_LEFT) {
    s->probe.phase = 0;
    return;
  }
  uint32_t i = (uint32_t)idx, helpers[16];
  uint32_t k = s->cfg.indirect_checks > 16 ? 16 : (uint32_t)s->cfg.indirect_checks;
  k = rpci_swim_pick(s, helpers, k, 1 << RPCI_MS_ALIVE, i);
  rpci_gstr target = rpci_gstr_c(s->probe.target);
  char taddr[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(taddr, rpci_swim_m_addr(s, i));
  for (uint32_t h = 0; h < k; h++) {
    STAGE(s, rpci_swim_m_addr(s, helpers[h]),
          rpci_genc_indirect(&s->stage, s->probe.seq, target, rpci_gstr_c(taddr), self_name(s),
                             s->lifeguard));
    s->st_.indirect_probes++;
  }
  s->probe.expected_nacks = s->lifeguard ? (int)k : 0;
  stage_ping(s, i, s->probe.seq); /* one more direct try (memberlist's TCP fallback) */
  s->probe.phase = 2;
  if (s->lifeguard) { /* late (after a stall): leave the helpers their time */
    int64_t rest = (int64_t)(s->cfg.probe_interval_ms - s->cfg.probe_timeout_ms) * (s->score + 1);
    if (s->probe.t_end < s->now + rest) s->probe.t_end = s->now + rest;
  }
}

static void probe_failed(rpci_swim *s) {
  s->probe.phase = 0;
  s->st_.probe_failures++;
  int e = s->probe.expected_nacks;
  rpci_swim_awareness(s, e > 0 ? e - s->probe.nacks : 1);
  int64_t idx = rpci_swim_m_find(s, (const uint8_t *)s->probe.target, strlen(s->probe.target));
  if (idx < 0) return;
  int st = s->m[idx].state;
  if (st == RPCI_MS_ALIVE || st == RPCI_MS_SUSPECT) rpci_swim_suspect_local(s, (uint32_t)idx);
}

void rpci_swim_probe_tick(rpci_swim *s) {
  int grace = s->lifeguard && s->now < s->grace_until;
  if (s->probe.phase == 1 && s->now >= s->probe.t_timeout) {
    if (grace)
      s->probe.t_timeout = s->grace_until;
    else
      probe_timeout(s);
  }
  if (s->probe.phase == 2 && s->now >= s->probe.t_end) {
    if (grace)
      s->probe.t_end = s->grace_until;
    else
      probe_failed(s);
  }
  if (s->probe.phase == 0 && !s->left && s->now >= s->t_probe) start_probe(s);
}

/* ---- helpers (relays) -------------------------------------------------- */

static void relay_remove(rpci_swim *s, uint32_t r) { s->relay[r] = s->relay[--s->nrelay]; }

void rpci_swim_relay_tick(rpci_swim *s) {
  for (uint32_t r = 0; r < s->nrelay;) {
    rpci_relay *x = &s->relay[r];
    if (x->deadline > s->now) {
      r++;
      continue;
    }
    if (x->want_nack) STAGE(s, x->reply_to, rpci_genc_ack(&s->stage, RPCI_GM_NACK, x->orig_seq));
    relay_remove(s, r);
  }
}

int64_t rpci_swim_relay_next(const rpci_swim *s) {
  int64_t t = INT64_MAX;
  for (uint32_t r = 0; r < s->nrelay; r++)
    if (s->relay[r].deadline < t) t = s->relay[r].deadline;
  return t;
}

static void on_indirect(rpci_swim *s, const rpci_gmsg *m, const char *from_addr) {
  if (!from_addr || !*from_addr) return;
  if (rpci_gstr_eq(m->target, rpci_swim_m_name(s, 0))) {
    STAGE(s, from_addr, rpci_genc_ack(&s->stage, RPCI_GM_ACK, m->seq));
    return;
  }
  if (s->nrelay >= RPCI_SWIM_RELAY_MAX) {
    s->st_.tx_dropped++;
    return;
  }
  if (s->nrelay == s->caprelay) {
    uint32_t n = s->caprelay ? s->caprelay * 2 : 4;
    rpci_relay *p = realloc(s->relay, (size_t)n * sizeof *p);
    if (!p) return;
    s->relay = p;
    s->caprelay = n;
  }
  rpci_relay *x = &s->relay[s->nrelay++];
  x->my_seq = ++s->seq;
  x->orig_seq = m->seq;
  x->deadline = s->now + (int64_t)s->cfg.probe_timeout_ms * 4 / 5;
  x->want_nack = m->want_nack;
  strcpy(x->reply_to, from_addr);
  char taddr[RPCI_SWIM_MAX_ADDR + 1];
  memcpy(taddr, m->target_addr.p, m->target_addr.n);
  taddr[m->target_addr.n] = 0;
  STAGE(s, taddr, rpci_genc_ping(&s->stage, x->my_seq, m->target, self_name(s)));
}

/* ---- acks, pings ------------------------------------------------------- */

static void on_ack(rpci_swim *s, uint64_t seq) {
  if (s->probe.phase && seq == s->probe.seq) {
    s->probe.phase = 0;
    rpci_swim_awareness(s, -1);
    return;
  }
  for (uint32_t r = 0; r < s->nrelay; r++) {
    if (s->relay[r].my_seq != seq) continue;
    STAGE(s, s->relay[r].reply_to, rpci_genc_ack(&s->stage, RPCI_GM_ACK, s->relay[r].orig_seq));
    relay_remove(s, r);
    return;
  }
  for (uint32_t j = 0; j < s->njoin; j++) {
    if (s->join_seq[j] != seq) continue;
    s->join_seq[j] = s->join_seq[--s->njoin];
    if (!s->pkt_alive_name) return;
    int64_t idx = rpci_swim_m_find(s, (const uint8_t *)s->pkt_alive_name, s->pkt_alive_len);
    if (idx > 0) rpci_swim_job(s, (uint32_t)idx, 1);
    /* One more push-pull, with a random member, a few probe intervals on:
     * it picks up members whose joins overlapped this one. */
    int64_t iv = s->cfg.probe_interval_ms;
    int64_t t = s->now + 2 * iv + (int64_t)rpci_swim_randn(s, (uint64_t)(3 * iv));
    if (s->cfg.sync_interval_ms >= 0 && t < s->t_sync) s->t_sync = t;
    return;
  }
}

static void on_ping(rpci_swim *s, const rpci_gmsg *m, const char *from_addr) {
  if (m->target.n && !rpci_gstr_eq(m->target, rpci_swim_m_name(s, 0))) return;
  if (!from_addr || !*from_addr) return;
  if (m->target.n == 0) {
    rpci_galive a;
    rpci_swim_m_alive(s, 0, &a);
    STAGE(s, from_addr, rpci_genc_alive(&s->stage, &a));
  }
  STAGE(s, from_addr, rpci_genc_ack(&s->stage, RPCI_GM_ACK, m->seq));
  int64_t idx = rpci_swim_m_find(s, m->sender.p, m->sender.n);
  if (idx < 0 && !s->whois_done) {
    /* A member we never heard of (its alive broadcast missed us): ask it,
     * with the join form of ping, for its record. */
    s->whois_done = 1;
    STAGE(s, from_addr,
          rpci_genc_ping(&s->stage, ++s->seq, (rpci_gstr){(const uint8_t *)"", 0}, self_name(s)));
  }
  if (idx <= 0) return;
  int st = s->m[idx].state;
  if (st == RPCI_MS_DEAD || (s->lifeguard && st == RPCI_MS_SUSPECT))
    STAGE(s, from_addr,
          rpci_genc_accuse(&s->stage, RPCI_GM_SUSPECT, m->sender, s->m[idx].inc, self_name(s)));
}

void rpci_swim_handle(rpci_swim *s, const rpci_gmsg *m, const char *from_addr) {
  switch (m->type) {
    case RPCI_GM_PING:
      on_ping(s, m, from_addr);
      break;
    case RPCI_GM_INDIRECT:
      on_indirect(s, m, from_addr);
      break;
    case RPCI_GM_ACK:
      on_ack(s, m->seq);
      break;
    case RPCI_GM_NACK:
      if (s->probe.phase == 2 && m->seq == s->probe.seq) {
        s->probe.nacks++;
        s->st_.nacks_recv++;
      }
      break;
    case RPCI_GM_ALIVE:
      if (!s->pkt_alive_name) {
        s->pkt_alive_name = (const char *)m->a.name.p;
        s->pkt_alive_len = m->a.name.n;
      }
      rpci_swim_on_alive(s, &m->a, RPCI_ORIGIN_GOSSIP, from_addr);
      break;
    case RPCI_GM_SUSPECT:
      rpci_swim_on_suspect(s, m->name, m->inc, m->from, from_addr);
      break;
    case RPCI_GM_DEAD:
      rpci_swim_on_dead(s, m->name, m->inc, m->from, from_addr);
      break;
    default:
      break;
  }
}

/* ---- gossip and reconnect ---------------------------------------------- */

void rpci_swim_gossip_tick(rpci_swim *s) {
  if (s->now < s->t_gossip) return;
  s->t_gossip = s->now + s->cfg.gossip_interval_ms;
  if (rpci_bcast_len(s->bc) == 0) return;
  uint32_t to[16];
  uint32_t k = s->cfg.gossip_nodes > 16 ? 16 : (uint32_t)s->cfg.gossip_nodes;
  k = pick_ex(s, to, k, (1 << RPCI_MS_ALIVE) | (1 << RPCI_MS_SUSPECT), -1,
              s->cfg.reconnect_interval_ms, 0);
  for (uint32_t j = 0; j < k; j++) rpci_swim_stage_gossip(s, rpci_swim_m_addr(s, to[j]));
}

void rpci_swim_reconnect_tick(rpci_swim *s) {
  if (s->now < s->t_reconnect) return;
  s->t_reconnect = s->now + s->cfg.reconnect_interval_ms;
  uint32_t dead = s->count[RPCI_MS_DEAD];
  if (s->left || dead == 0) return;
  uint32_t live = rpci_swim_live(s);
  if (rpci_swim_randn(s, live) >= dead) return;
  uint32_t i;
  if (rpci_swim_pick(s, &i, 1, 1 << RPCI_MS_DEAD, -1) != 1) return;
  char addr[RPCI_SWIM_MAX_ADDR + 1];
  strcpy(addr, rpci_swim_m_addr(s, i));
  rpci_gstr name = rpci_gstr_c(rpci_swim_m_name(s, i));
  STAGE(s, addr, rpci_genc_ping(&s->stage, ++s->seq, name, self_name(s)));
  STAGE(s, addr, rpci_genc_accuse(&s->stage, RPCI_GM_SUSPECT, name, s->m[i].inc, self_name(s)));
  rpci_swim_job(s, i, 0);
}
