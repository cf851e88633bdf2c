/*
 * Push-pull (anti-entropy) of the SWIM core, transport-agnostic: the
 * driver (or the simulator) carries the bodies; this file encodes,
 * answers and merges them.
 *
 * Rounds (docs/cluster.md, "Push-pull"):
 *   initiator                          receiver
 *   hello {hash, count, own record} -> merges the record; same hash and
 *                                      count: in-sync; else its digest
 *   (digest) push {records the      -> merges the records; answers the
 *     receiver lacks or holds older,   records asked for
 *     names it holds newer}
 *   (records) merges them; done.
 *
 * Design notes
 * - The receiver keeps nothing between rounds: each request is answered
 *   from the current table, so concurrent exchanges cannot confuse it.
 * - Digest entries are (name, incarnation, state) with suspect reported as
 *   alive (suspicions spread by gossip, not by anti-entropy); "newer" is the
 *   precedence of swim_state.c: higher incarnation, then left > dead >
 *   alive.
 * - Dead and left records carry their age, so a tombstone is reaped at
 *   about the same time everywhere and never bounces back from a peer that
 *   has not reaped it yet (records older than reap_ms are not taken).
 * - A body is [proto_version, one message]; anything else is malformed and
 *   counted.
 * - Merging follows rpci_swim_on_record (swim_state.c); a peer's dead
 *   record about a member held alive only makes that member refute.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"

static void record_of(const rpci_swim *s, uint32_t i, rpci_grecord *r) {
  rpci_swim_m_alive(s, i, &r->a);
  int st = s->m[i].state;
  r->state = st == RPCI_MS_SUSPECT ? RPCI_MS_ALIVE : st;
  r->age_ms = 0;
  if ((st == RPCI_MS_DEAD || st == RPCI_MS_LEFT) && s->now > s->m[i].changed)
    r->age_ms = (uint64_t)(s->now - s->m[i].changed);
}

/* Exactly one known message in a body. */
static int open_body(const uint8_t *p, size_t len, rpci_gmsg *m) {
  rpci_gdec d;
  rpci_gmsg extra;
  if (!p || rpci_gdec_open(&d, p, len) != 0) return -1;
  if (rpci_gdec_next(&d, m) != 1) return -1;
  if (rpci_gdec_next(&d, &extra) != 0) return -1;
  return 0;
}

static int wrap(rpci_buf *out, rpci_buf *msg) {
  int r = rpci_genc_envelope(out, 1, msg->data, msg->len);
  rpci_buf_free(msg);
  return r;
}

static void merge(rpci_swim *s, rpci_glist l) {
  rpci_grecord r;
  s->in_sync = 1;
  s->notify_left = RPCI_SWIM_NOTIFY_MAX;
  while (rpci_glist_record(&l, &r)) rpci_swim_on_record(s, &r);
  s->in_sync = 0;
}

/* [20, [records of idx[0..n)]] or [19, [records], [wants]] into msg. */
static int enc_records(const rpci_swim *s, rpci_buf *msg, const uint32_t *idx, size_t n) {
  if (rpci_genc_list_head(msg, n)) return -1;
  for (size_t k = 0; k < n; k++) {
    rpci_grecord r;
    record_of(s, idx[k], &r);
    if (rpci_genc_record(msg, &r)) return -1;
  }
  return 0;
}

int rpci_swim_sync_start(rpci_swim *s, int64_t now_ms, rpci_buf *req) {
  if (now_ms > s->now) s->now = now_ms;
  rpci_galive a;
  rpci_swim_m_alive(s, 0, &a);
  rpci_buf msg = RPCI_BUF_INIT;
  if (rpci_genc_hello(&msg, s->digest, s->n, &a)) {
    rpci_buf_free(&msg);
    return -1;
  }
  return wrap(req, &msg);
}

static int serve_digest(const rpci_swim *s, rpci_buf *msg) {
  if (rpci_genc_msg_head(msg, RPCI_GM_SYNC_DIGEST, 2) || rpci_genc_list_head(msg, s->n)) return -1;
  for (uint32_t i = 0; i < s->n; i++) {
    int st = s->m[i].state == RPCI_MS_SUSPECT ? RPCI_MS_ALIVE : s->m[i].state;
    if (rpci_genc_digest_entry(msg, rpci_gstr_c(rpci_swim_m_name(s, i)), s->m[i].inc, st))
      return -1;
  }
  return 0;
}

static int serve_wants(const rpci_swim *s, rpci_glist wants, rpci_buf *msg) {
  uint32_t *idx = malloc((wants.left ? wants.left : 1) * sizeof *idx);
  if (!idx) return -1;
  size_t n = 0;
  rpci_gstr name;
  while (rpci_glist_name(&wants, &name)) {
    int64_t i = rpci_swim_m_find(s, name.p, name.n);
    if (i >= 0) idx[n++] = (uint32_t)i;
  }
  int r = rpci_genc_msg_head(msg, RPCI_GM_SYNC_RECORDS, 2) || enc_records(s, msg, idx, n) ? -1 : 0;
  free(idx);
  return r;
}

int rpci_swim_sync_serve(rpci_swim *s, int64_t now_ms, const uint8_t *req, size_t req_len,
                         rpci_buf *resp) {
  if (now_ms > s->now) s->now = now_ms;
  rpci_gmsg m;
  rpci_buf msg = RPCI_BUF_INIT;
  int r = -1;
  if (open_body(req, req_len, &m) == 0) {
    if (m.type == RPCI_GM_SYNC_HELLO) {
      rpci_swim_on_alive(s, &m.a, RPCI_ORIGIN_PEER, NULL);
      if (m.hash == s->digest && m.count == s->n)
        r = rpci_genc_insync(&msg);
      else
        r = serve_digest(s, &msg);
    } else if (m.type == RPCI_GM_SYNC_PUSH) {
      merge(s, m.l1);
      r = serve_wants(s, m.l2, &msg);
    }
  }
  if (r == 0) r = wrap(resp, &msg);
  rpci_buf_free(&msg);
  if (r != 0) s->st_.malformed++;
  rpci_swim_flush(s);
  return r;
}

/* 1 when (inc, state) a is newer than b. */
static int newer(uint64_t ia, int sa, uint64_t ib, int sb) {
  return ia > ib || (ia == ib && rpci_swim_rank(sa) > rpci_swim_rank(sb));
}

/* Compares a digest with the table: builds the push request, or returns 0
 * when there is nothing to exchange. */
static int step_digest(rpci_swim *s, rpci_glist l, rpci_buf *msg) {
  uint8_t *seen = calloc(s->n, 1);
  uint32_t *push = malloc((size_t)s->n * sizeof *push);
  rpci_buf wants = RPCI_BUF_INIT;
  size_t npush = 0, nwant = 0;
  int r = -1;
  if (!seen || !push) goto out;
  rpci_gstr name;
  uint64_t inc;
  int st;
  while (rpci_glist_digest(&l, &name, &inc, &st)) {
    int64_t i = rpci_swim_m_find(s, name.p, name.n);
    if (i >= 0) {
      if (seen[i]) continue;
      seen[i] = 1;
      const rpci_mem *m = &s->m[i];
      if (newer(m->inc, m->state, inc, st)) {
        push[npush++] = (uint32_t)i;
        continue;
      }
      if (!newer(inc, st, m->inc, m->state)) continue;
    }
    if (rpci_genc_str(&wants, name)) goto out;
    nwant++;
  }
  for (uint32_t i = 0; i < s->n; i++)
    if (!seen[i]) push[npush++] = i;
  if (npush == 0 && nwant == 0) {
    r = 0;
    goto out;
  }
  if (rpci_genc_msg_head(msg, RPCI_GM_SYNC_PUSH, 3) || enc_records(s, msg, push, npush) ||
      rpci_genc_list_head(msg, nwant) || rpci_buf_append(msg, wants.data, wants.len))
    goto out;
  r = 1;
out:
  free(seen);
  free(push);
  rpci_buf_free(&wants);
  return r;
}

int rpci_swim_sync_step(rpci_swim *s, int64_t now_ms, const uint8_t *resp, size_t resp_len,
                        rpci_buf *next_req) {
  if (now_ms > s->now) s->now = now_ms;
  rpci_gmsg m;
  int r = -1;
  if (open_body(resp, resp_len, &m) == 0) {
    if (m.type == RPCI_GM_SYNC_INSYNC) {
      r = 0;
    } else if (m.type == RPCI_GM_SYNC_RECORDS) {
      merge(s, m.l1);
      r = 0;
    } else if (m.type == RPCI_GM_SYNC_DIGEST) {
      rpci_buf msg = RPCI_BUF_INIT;
      r = step_digest(s, m.l1, &msg);
      if (r == 1 && wrap(next_req, &msg)) r = -1;
      rpci_buf_free(&msg);
    }
  }
  if (r < 0) s->st_.malformed++;
  rpci_swim_flush(s);
  return r;
}
