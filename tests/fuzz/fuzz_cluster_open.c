/*
 * libFuzzer target: the cluster keyring's open (capi/src/cluster/seal.h),
 * the first thing every gossip datagram and push-pull body meets.
 *
 * The input is one packet, opened in both contexts by a keyring holding two
 * keys (the K1/K2 of tests/fuzz/gen_cluster_open.py, which seeds the corpus
 * with valid packets) and by a plaintext keyring. Checked:
 *  - the result is one of the documented codes, and a failure returns no
 *    payload;
 *  - a success returns exactly len - 45 bytes (sealed) or len - 1 (plain),
 *    and the same packet does not also open in the other context;
 *  - sealing the input with either ring and opening it again gives the
 *    input back (the round trip holds for any payload).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/seal.h"

#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2 "000102030405060708090a0b0c0d0e0f"

static rpci_keyring *g_keyed, *g_plain;

static void open_checked(rpci_keyring *kr, const uint8_t *data, size_t size, int *opened) {
  for (int ctx = RPCI_SEAL_GOSSIP; ctx <= RPCI_SEAL_SYNC; ctx++) {
    const uint8_t *plain = (const uint8_t *)"x";
    size_t plen = 12345;
    int rc = rpci_keyring_open(kr, ctx, data, size, &plain, &plen);
    if (rc > 0 || rc < RPCI_SEAL_NOMEM || rpci_seal_err_name(rc)[0] == 0) abort();
    if (rc != RPCI_SEAL_OK) {
      if (plain != NULL || plen != 0) abort();
      continue;
    }
    size_t over = rpci_keyring_count(kr) ? RPCI_SEAL_OVERHEAD : 1;
    if (size < over || plen != size - over) abort();
    if (plen && plain == NULL) abort();
    if (plen) (void)((volatile const uint8_t *)plain)[plen - 1];
    opened[ctx - 1] = 1;
  }
}

static void round_trip(rpci_keyring *kr, const uint8_t *data, size_t size) {
  rpci_buf out = RPCI_BUF_INIT;
  if (rpci_keyring_seal(kr, RPCI_SEAL_SYNC, data, size, &out) != RPCI_SEAL_OK) abort();
  const uint8_t *plain = NULL;
  size_t plen = 0;
  if (rpci_keyring_open(kr, RPCI_SEAL_SYNC, out.data, out.len, &plain, &plen) != RPCI_SEAL_OK)
    abort();
  if (plen != size || (size && memcmp(plain, data, size) != 0)) abort();
  rpci_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_keyed) {
    g_keyed = rpci_keyring_new(K1 "," K2, NULL, 0);
    g_plain = rpci_keyring_new("", NULL, 0);
    if (!g_keyed || !g_plain) abort();
  }
  int opened[2] = {0, 0};
  open_checked(g_keyed, data, size, opened);
  if (opened[0] && opened[1]) abort(); /* the context is authenticated */
  int plain_opened[2] = {0, 0};
  open_checked(g_plain, data, size, plain_opened);
  round_trip(g_keyed, data, size);
  round_trip(g_plain, data, size);
  return 0;
}
