/*
 * libFuzzer target: push-pull bodies. The first input byte picks the side:
 * even feeds the rest to rpci_swim_sync_serve, odd to rpci_swim_sync_step
 * (as the response to an exchange the core started). Checks (abort on
 * failure): a refused body leaves the response empty; an accepted one
 * yields a response that is a valid sync response (in-sync, digest,
 * records) which a second core can step on; a further request from
 * sync_step is a push that a second core serves; datagrams stay within
 * max_packet and decode completely; the own incarnation never decreases.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/msg.h"
#include "cluster/swim.h"

#define MAXP 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(rpci_swim *s) {
  rpci_swim_tx tx;
  while (rpci_swim_poll_tx(s, &tx)) {
    if (tx.len > MAXP) abort();
    rpci_gdec d;
    rpci_gmsg m;
    int r = rpci_gdec_open(&d, tx.data, tx.len);
    while (r == 0 && (r = rpci_gdec_next(&d, &m)) == 1) r = 0;
    if (r != 0) abort();
  }
  rpci_swim_sync_job job;
  while (rpci_swim_poll_sync(s, &job)) {
  }
  rpci_swim_event ev;
  while (rpci_swim_poll_event(s, &ev)) {
  }
}

static rpci_swim *make(const char *name, uint64_t inc) {
  rpci_swim_cfg c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.gossip_addr = "g0";
  c.rpc_addr = "r0";
  c.incarnation = inc;
  c.seed = 3;
  c.max_packet = MAXP;
  rpci_swim *s = rpci_swim_new(&c, 5000);
  if (!s) abort();
  rpci_buf b = RPCI_BUF_INIT, pkt = RPCI_BUF_INIT;
  static const char *names[] = {"m1", "m2", "m3"};
  for (int i = 0; i < 3; i++) {
    rpci_galive a;
    memset(&a, 0, sizeof a);
    a.name = rpci_gstr_c(names[i]);
    a.addr = rpci_gstr_c("g1");
    a.rpc_addr = rpci_gstr_c("r1");
    a.inc = 2;
    a.pmin = a.pmax = 1;
    if (rpci_genc_alive(&b, &a)) abort();
  }
  if (rpci_genc_accuse(&b, RPCI_GM_DEAD, rpci_gstr_c("m3"), 2, rpci_gstr_c("m1"))) abort();
  if (rpci_genc_envelope(&pkt, 4, b.data, b.len)) abort();
  rpci_swim_recv(s, 5000, "g1", pkt.data, pkt.len);
  rpci_buf_free(&b);
  rpci_buf_free(&pkt);
  drain(s);
  return s;
}

static int body_type(const rpci_buf *b) {
  rpci_gdec d;
  rpci_gmsg m;
  if (rpci_gdec_open(&d, b->data, b->len) != 0 || rpci_gdec_next(&d, &m) != 1) return -1;
  return m.type;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  rpci_swim *s = make("self", 9), *peer = make("other", 4);
  rpci_buf out = RPCI_BUF_INIT, next = RPCI_BUF_INIT;
  rpci_swim_stats st;
  if (data[0] % 2 == 0) {
    int r = rpci_swim_sync_serve(s, 6000, data + 1, size - 1, &out);
    drain(s);
    if (r != 0 && r != -1) abort();
    if (r == -1 && out.len != 0) abort();
    if (r == 0) {
      int t = body_type(&out);
      if (t != RPCI_GM_SYNC_INSYNC && t != RPCI_GM_SYNC_DIGEST && t != RPCI_GM_SYNC_RECORDS)
        abort();
      if (rpci_swim_sync_step(peer, 6000, out.data, out.len, &next) < 0) abort();
      drain(peer);
    }
  } else {
    rpci_buf hello = RPCI_BUF_INIT;
    if (rpci_swim_sync_start(s, 6000, &hello)) abort();
    rpci_buf_free(&hello);
    int r = rpci_swim_sync_step(s, 6000, data + 1, size - 1, &next);
    drain(s);
    if (r < -1 || r > 1) abort();
    if (r == 1) {
      if (body_type(&next) != RPCI_GM_SYNC_PUSH) abort();
      if (rpci_swim_sync_serve(peer, 6000, next.data, next.len, &out) != 0) abort();
      drain(peer);
      if (body_type(&out) != RPCI_GM_SYNC_RECORDS) abort();
    } else if (next.len != 0) {
      abort();
    }
  }
  rpci_swim_get_stats(s, &st);
  if (st.incarnation < 9) abort();
  rpci_swim_tick(s, 100000);
  drain(s);
  rpci_buf_free(&out);
  rpci_buf_free(&next);
  rpci_swim_free(s);
  rpci_swim_free(peer);
  return 0;
}
