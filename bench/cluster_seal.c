/*
 * rpcnet_cluster_seal: what the cluster keyring (capi/src/cluster/seal.h)
 * costs per gossip datagram, in real time.
 *
 * Design notes
 * - Rows: seal alone, open alone (receive subkey cached), seal + open of
 *   the same datagram, and open of a datagram from a sender not in the
 *   cache (HKDF + AES-GCM key setup + decrypt: what the cache saves), each
 *   for a 1150-byte payload (a full gossip datagram) and a 64-byte one.
 * - A memcpy of the payload into an output buffer, in the same run, is the
 *   baseline the table prints beside them.
 */
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/seal.h"

#define KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define COLD 512 /* distinct senders for the cold row (more than the cache holds) */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile size_t g_sink;

static void row(const char *what, size_t size, double ns) {
  printf("%-28s %6zu %10.0f %9.2f\n", what, size, ns, size / ns);
}

static void measure(size_t size, long iters) {
  rpci_keyring *tx = rpci_keyring_new(KEY, NULL, 0), *rx = rpci_keyring_new(KEY, NULL, 0);
  if (!tx || !rx) abort();
  uint8_t *msg = malloc(size);
  for (size_t i = 0; i < size; i++) msg[i] = (uint8_t)(i * 31 + 7);
  rpci_buf out = RPCI_BUF_INIT, copy = RPCI_BUF_INIT;
  const uint8_t *plain;
  size_t plen;

  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    copy.len = 0;
    rpci_buf_append(&copy, msg, size);
    g_sink += copy.data[size - 1];
  }
  row("memcpy (baseline)", size, (now_ns() - t0) / iters);

  t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    out.len = 0;
    rpci_keyring_seal(tx, RPCI_SEAL_GOSSIP, msg, size, &out);
  }
  row("seal", size, (now_ns() - t0) / iters);

  t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    if (rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen)) abort();
    g_sink += plen;
  }
  row("open (subkey cached)", size, (now_ns() - t0) / iters);

  t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    out.len = 0;
    rpci_keyring_seal(tx, RPCI_SEAL_GOSSIP, msg, size, &out);
    if (rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen)) abort();
    g_sink += plen;
  }
  row("seal + open", size, (now_ns() - t0) / iters);

  /* one datagram from each of COLD senders, opened round-robin: every open
   * misses the 256-entry cache */
  rpci_buf *cold = calloc(COLD, sizeof *cold);
  for (int i = 0; i < COLD; i++) {
    rpci_keyring *s = rpci_keyring_new(KEY, NULL, 0);
    rpci_keyring_seal(s, RPCI_SEAL_GOSSIP, msg, size, &cold[i]);
    rpci_keyring_free(s);
  }
  long cold_iters = iters / 4;
  t0 = now_ns();
  for (long i = 0; i < cold_iters; i++) {
    const rpci_buf *b = &cold[i % COLD];
    if (rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, b->data, b->len, &plain, &plen)) abort();
    g_sink += plen;
  }
  row("open (new sender: HKDF)", size, (now_ns() - t0) / cold_iters);
  for (int i = 0; i < COLD; i++) rpci_buf_free(&cold[i]);
  free(cold);
  rpci_buf_free(&out);
  rpci_buf_free(&copy);
  free(msg);
  rpci_keyring_free(tx);
  rpci_keyring_free(rx);
}

int main(int argc, char **argv) {
  long iters = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 50000 : 400000;
  printf("# AES-256-GCM via GnuTLS %s, %ld iterations per row\n", gnutls_check_version(NULL),
         iters);
  printf("%-28s %6s %10s %9s\n", "operation", "bytes", "ns/op", "GB/s");
  measure(1150, iters);
  measure(64, iters);
  return 0;
}
