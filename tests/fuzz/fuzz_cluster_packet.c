/*
 * libFuzzer target: one gossip datagram fed to rpci_swim_recv of a core
 * that already holds members in every state, then a few ticks (probes,
 * suspicion timeouts, gossip, reaping). Checks (abort on failure): every
 * datagram the core emits fits max_packet and decodes completely; its own
 * incarnation never decreases; every record can be inspected and its
 * state is valid; the member count matches the inspection.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/msg.h"
#include "cluster/swim.h"

#define MAXP 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_out(rpci_swim *s) {
  rpci_swim_tx tx;
  while (rpci_swim_poll_tx(s, &tx)) {
    if (tx.len > MAXP || !tx.addr || !*tx.addr) abort();
    rpci_gdec d;
    rpci_gmsg m;
    if (rpci_gdec_open(&d, tx.data, tx.len) != 0) abort();
    int r;
    while ((r = rpci_gdec_next(&d, &m)) == 1) {
    }
    if (r != 0) abort();
  }
  rpci_swim_sync_job job;
  while (rpci_swim_poll_sync(s, &job))
    if (!job.name || !*job.rpc_addr) abort();
  rpci_swim_event ev;
  while (rpci_swim_poll_event(s, &ev))
    if (ev.type < RPCI_SWIM_EV_JOINED || ev.type > RPCI_SWIM_EV_REAPED) abort();
}

static void feed(rpci_swim *s, int64_t now, const rpci_buf *msgs, size_t n) {
  rpci_buf pkt = RPCI_BUF_INIT;
  if (rpci_genc_envelope(&pkt, n, msgs->data, msgs->len)) abort();
  rpci_swim_recv(s, now, "g1", pkt.data, pkt.len);
  rpci_buf_free(&pkt);
}

static rpci_swim *make(void) {
  rpci_swim_cfg c;
  memset(&c, 0, sizeof c);
  c.name = "self";
  c.gossip_addr = "g0";
  c.rpc_addr = "r0";
  c.incarnation = 5;
  c.seed = 7;
  c.max_packet = MAXP;
  c.reap_ms = 20000;
  rpci_swim *s = rpci_swim_new(&c, 1000);
  if (!s) abort();
  rpci_buf b = RPCI_BUF_INIT;
  static const char *names[] = {"m1", "m2", "m3", "m4", "m5"};
  static const char *addrs[] = {"g1", "g2", "g3", "g4", "g5"};
  for (int i = 0; i < 5; i++) {
    rpci_galive a;
    memset(&a, 0, sizeof a);
    a.name = rpci_gstr_c(names[i]);
    a.addr = rpci_gstr_c(addrs[i]);
    a.rpc_addr = rpci_gstr_c(i % 2 ? "" : "r9");
    a.inc = 3;
    a.pmin = a.pmax = 1;
    if (rpci_genc_alive(&b, &a)) abort();
  }
  if (rpci_genc_accuse(&b, RPCI_GM_SUSPECT, rpci_gstr_c("m2"), 3, rpci_gstr_c("m1")) ||
      rpci_genc_accuse(&b, RPCI_GM_DEAD, rpci_gstr_c("m3"), 3, rpci_gstr_c("m1")) ||
      rpci_genc_accuse(&b, RPCI_GM_DEAD, rpci_gstr_c("m4"), 4, rpci_gstr_c("m4")))
    abort();
  feed(s, 1000, &b, 8);
  rpci_buf_free(&b);
  check_out(s);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rpci_swim *s = make();
  rpci_swim_stats st;
  rpci_swim_get_stats(s, &st);
  uint64_t inc = st.incarnation;
  rpci_swim_recv(s, 1001, "g2", data, size);
  check_out(s);
  static const int64_t times[] = {1002, 1600, 2500, 5000, 40000, 200000};
  for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
    rpci_swim_tick(s, times[k]);
    check_out(s);
    if (k == 2) { /* the same datagram again, later (replays are harmless) */
      rpci_swim_recv(s, times[k], "g3", data, size);
      check_out(s);
    }
    rpci_swim_get_stats(s, &st);
    if (st.incarnation < inc) abort();
    inc = st.incarnation;
  }
  size_t n = rpci_swim_count(s);
  rpci_swim_member m;
  for (size_t i = 0; i < n; i++) {
    if (rpci_swim_member_at(s, i, &m)) abort();
    if (m.state < RPCI_MS_ALIVE || m.state > RPCI_MS_LEFT || !*m.name || !*m.gossip_addr) abort();
    for (size_t t = 0; t < m.ntags; t++)
      if (!m.tags[t].key || !m.tags[t].value) abort();
    rpci_swim_member f;
    if (rpci_swim_find(s, m.name, &f)) abort();
  }
  if (rpci_swim_member_at(s, n, &m) != -1) abort();
  rpci_swim_free(s);
  return 0;
}
