/*
 * Outputs of the SWIM core: staging of control messages, datagram
 * assembly with piggybacked broadcasts, and the datagram queue.
 *
 * Design notes
 * - A public call stages the control messages it produces (pings, acks,
 *   indirect requests, direct suspect/alive messages) per destination;
 *   rpci_swim_flush, at the end of the call, packs each destination's
 *   messages in order into datagrams of at most max_packet bytes and fills
 *   the room left in each with broadcasts (rpci_bcast_fill: a quarter
 *   offered to alive messages first). So replies computed from a whole
 *   datagram (an ack and the refutation its suspect message caused) leave
 *   together, and every datagram carries news.
 * - Gossip rounds stage an empty entry: a datagram goes out only if
 *   broadcasts are queued.
 * - The datagram queue holds at most RPCI_SWIM_TXQ_MAX datagrams; past
 *   that new datagrams are dropped and counted (tx_dropped). The caller is
 *   expected to drain it after every call. Storage shrinks when drained.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_int.h"
#include "wire/prim.h"

static void stage_add(rpci_swim *s, const char *addr, size_t off, size_t len) {
  size_t al = strlen(addr);
  if (al == 0 || al > RPCI_SWIM_MAX_ADDR) {
    s->stage.len = off;
    return;
  }
  if (s->nst == s->capst) {
    uint32_t n = s->capst ? s->capst * 2 : 8;
    rpci_stage_ent *p = realloc(s->st, (size_t)n * sizeof *p);
    if (!p) {
      s->stage.len = off;
      return;
    }
    s->st = p;
    s->capst = n;
  }
  rpci_stage_ent *e = &s->st[s->nst++];
  memcpy(e->addr, addr, al + 1);
  e->off = off;
  e->len = len;
  e->done = 0;
}

void rpci_swim_stage(rpci_swim *s, const char *addr, size_t off) {
  stage_add(s, addr, off, s->stage.len - off);
}

void rpci_swim_stage_gossip(rpci_swim *s, const char *addr) { stage_add(s, addr, s->stage.len, 0); }

void rpci_swim_broadcast(rpci_swim *s, const char *name, int is_alive, int refine) {
  size_t budget = (size_t)s->cfg.max_packet - RPCI_GM_ENVELOPE;
  int r = s->scratch.len > budget ? -1
          : refine ? rpci_bcast_refresh(s->bc, name, is_alive, s->scratch.data, s->scratch.len)
                   : rpci_bcast_put(s->bc, name, is_alive, s->scratch.data, s->scratch.len);
  if (r) s->st_.tx_dropped++;
}

static void txq_push(rpci_swim *s, rpci_txd *d) {
  if (s->txn >= RPCI_SWIM_TXQ_MAX) goto drop;
  if (s->txn == s->txcap) {
    uint32_t n = s->txcap ? s->txcap * 2 : 8;
    rpci_txd **q = malloc((size_t)n * sizeof *q);
    if (!q) goto drop;
    for (uint32_t i = 0; i < s->txn; i++) q[i] = s->txq[(s->txh + i) % s->txcap];
    free(s->txq);
    s->txq = q;
    s->txh = 0;
    s->txcap = n;
  }
  s->txq[(s->txh + s->txn) % s->txcap] = d;
  s->txn++;
  s->st_.pkts_out++;
  s->st_.bytes_out += d->len;
  return;
drop:
  free(d);
  s->st_.tx_dropped++;
}

/* Sends s->pkt (count messages) to addr after filling it with broadcasts. */
static void emit(rpci_swim *s, const char *addr, size_t count, size_t budget, int limit) {
  size_t room = budget - s->pkt.len;
  if (room > 0 && rpci_bcast_len(s->bc)) {
    size_t used = 0, share = budget / 4;
    count += rpci_bcast_fill(s->bc, &s->pkt, room, share < room ? share : room, limit, &used);
  }
  if (count == 0) return;
  uint8_t head[9];
  size_t hl = rpci_head_write(head, RPCI_MT_ARRAY, (uint64_t)count + 1);
  size_t len = hl + 1 + s->pkt.len;
  rpci_txd *d = malloc(sizeof *d + len);
  if (!d) {
    s->st_.tx_dropped++;
    return;
  }
  d->len = len;
  strcpy(d->addr, addr);
  memcpy(d->data, head, hl);
  d->data[hl] = RPCI_SWIM_PROTO_MAX;
  memcpy(d->data + hl + 1, s->pkt.data, s->pkt.len);
  txq_push(s, d);
}

void rpci_swim_flush(rpci_swim *s) {
  size_t budget = (size_t)s->cfg.max_packet - RPCI_GM_ENVELOPE;
  int limit = rpci_swim_limit(s);
  for (uint32_t i = 0; i < s->nst; i++) {
    if (s->st[i].done) continue;
    const char *addr = s->st[i].addr;
    size_t count = 0;
    s->pkt.len = 0;
    for (uint32_t j = i; j < s->nst; j++) {
      rpci_stage_ent *e = &s->st[j];
      if (e->done || strcmp(e->addr, addr) != 0) continue;
      e->done = 1;
      if (e->len == 0) continue;
      if (e->len > budget) {
        s->st_.tx_dropped++;
        continue;
      }
      if (s->pkt.len + e->len > budget) {
        emit(s, addr, count, budget, limit);
        s->pkt.len = 0;
        count = 0;
      }
      if (rpci_buf_append(&s->pkt, s->stage.data + e->off, e->len)) {
        s->st_.tx_dropped++;
        continue;
      }
      count++;
    }
    emit(s, addr, count, budget, limit);
  }
  s->nst = 0;
  s->stage.len = 0;
  s->pkt.len = 0;
  if (s->stage.cap > 65536) rpci_buf_free(&s->stage);
  if (s->scratch.cap > 65536) rpci_buf_free(&s->scratch);
  if (s->capst > 64) {
    free(s->st);
    s->st = NULL;
    s->capst = 0;
  }
}

void rpci_swim_release(rpci_swim *s) {
  free(s->tx_cur);
  s->tx_cur = NULL;
}

int rpci_swim_poll_tx(rpci_swim *s, rpci_swim_tx *tx) {
  rpci_swim_release(s);
  if (s->txn == 0) {
    if (s->txcap > 64) {
      free(s->txq);
      s->txq = NULL;
      s->txcap = s->txh = 0;
    }
    return 0;
  }
  rpci_txd *d = s->txq[s->txh];
  s->txh = (s->txh + 1) % s->txcap;
  s->txn--;
  s->tx_cur = d;
  tx->addr = d->addr;
  tx->data = d->data;
  tx->len = d->len;
  return 1;
}
