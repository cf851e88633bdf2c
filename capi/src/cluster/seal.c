/*
 * The cluster keyring: see seal.h for the contract and the wire layout.
 *
 * Design notes (beyond seal.h)
 * - Sealing: the sender subkey and its AES-GCM handle are made lazily on the
 *   first seal after the ring is created or its primary changes, each time
 *   with a fresh random epoch and the counter at 0. A counter that reached
 *   2^64 - 1 is never used: a new epoch is drawn instead. The counter is
 *   advanced before the AEAD runs, so even a failed encryption never leaves
 *   a nonce to be used again.
 * - The nonce is 4 zero bytes then the counter's 8 header bytes; the
 *   associated data is the 29 header bytes then the context byte.
 * - Opening: every key whose id matches is tried (two different keys share
 *   an id with chance 2^-32); no match is NO_KEY, matches that all fail are
 *   AUTH. Receive subkeys live in a 64-set, 4-way cache of ready AES-GCM
 *   handles indexed by epoch, least recently used way evicted. A subkey is
 *   cached only after a packet authenticated under it, so forged packets
 *   with random epochs cost an HKDF each but cannot evict real senders.
 * - Every key slot has a serial number that the cache stores instead of the
 *   key id: removing a key drops exactly its entries, and a key added later
 *   with a colliding id cannot meet stale ones.
 * - Key material (keys, subkeys, PRKs) is zeroed with gnutls_memset when it
 *   is dropped; key text is never copied into messages or logs.
 */
#include "cluster/seal.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/sealkey.h"

#define SEAL_VERSION 1
#define SEAL_HDR 29
#define SEAL_TAG 16
#define SEAL_EPOCH 16
#define SEAL_OFF_ID 1
#define SEAL_OFF_EPOCH 5
#define SEAL_OFF_CTR 21
#define SEAL_NONCE 12
#define CACHE_SETS 64
#define CACHE_WAYS 4

static const char seal_info[] = "rpcnet cluster v1";

typedef struct seal_key {
  uint8_t key[RPCI_SEALKEY_LEN];
  uint8_t id[RPCI_SEALKEY_ID_LEN];
  uint64_t serial;
} seal_key;

typedef struct rx_entry {
  gnutls_aead_cipher_hd_t h; /* NULL: free way */
  uint64_t serial;
  uint8_t epoch[SEAL_EPOCH];
  uint64_t used; /* LRU clock */
} rx_entry;

struct rpci_keyring {
  seal_key keys[RPCI_KEYRING_MAX]; /* keys[0] is the primary */
  int nkeys;
  uint64_t next_serial;
  gnutls_aead_cipher_hd_t tx; /* NULL until the next seal makes it */
  uint8_t epoch[SEAL_EPOCH];
  uint64_t counter; /* next nonce under tx */
  rx_entry cache[CACHE_SETS][CACHE_WAYS];
  uint64_t clock;
  rpci_buf plain; /* what open returns */
};

/* ---- subkeys ------------------------------------------------------------ */

/* HKDF-SHA256(ikm = key, salt = epoch, info = seal_info) into a ready
 * AES-256-GCM handle. Returns 0 or -1. */
static int derive(const uint8_t *key, const uint8_t *epoch, gnutls_aead_cipher_hd_t *h) {
  uint8_t prk[32], sub[32];
  gnutls_datum_t ikm = {(unsigned char *)key, RPCI_SEALKEY_LEN};
  gnutls_datum_t salt = {(unsigned char *)epoch, SEAL_EPOCH};
  gnutls_datum_t info = {(unsigned char *)seal_info, sizeof seal_info - 1};
  gnutls_datum_t p = {prk, sizeof prk}, s = {sub, sizeof sub};
  int rc = -1;
  *h = NULL;
  if (gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, prk) == 0 &&
      gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &p, &info, sub, sizeof sub) == 0 &&
      gnutls_aead_cipher_init(h, GNUTLS_CIPHER_AES_256_GCM, &s) == 0)
    rc = 0;
  gnutls_memset(prk, 0, sizeof prk);
  gnutls_memset(sub, 0, sizeof sub);
  if (rc) *h = NULL;
  return rc;
}

static void drop_handle(gnutls_aead_cipher_hd_t *h) {
  if (*h) gnutls_aead_cipher_deinit(*h);
  *h = NULL;
}

/* ---- receive cache ------------------------------------------------------ */

static rx_entry *cache_set(rpci_keyring *kr, const uint8_t *epoch) {
  return kr->cache[(epoch[0] | (unsigned)epoch[1] << 8) % CACHE_SETS];
}

static gnutls_aead_cipher_hd_t cache_get(rpci_keyring *kr, uint64_t serial, const uint8_t *epoch) {
  rx_entry *set = cache_set(kr, epoch);
  for (int w = 0; w < CACHE_WAYS; w++) {
    rx_entry *e = &set[w];
    if (e->h && e->serial == serial && memcmp(e->epoch, epoch, SEAL_EPOCH) == 0) {
      e->used = ++kr->clock;
      return e->h;
    }
  }
  return NULL;
}

/* Takes ownership of h, evicting the least recently used way if needed. */
static void cache_put(rpci_keyring *kr, uint64_t serial, const uint8_t *epoch,
                      gnutls_aead_cipher_hd_t h) {
  rx_entry *set = cache_set(kr, epoch), *victim = &set[0];
  for (int w = 0; w < CACHE_WAYS && victim->h; w++)
    if (!set[w].h || set[w].used < victim->used) victim = &set[w];
  drop_handle(&victim->h);
  victim->h = h;
  victim->serial = serial;
  memcpy(victim->epoch, epoch, SEAL_EPOCH);
  victim->used = ++kr->clock;
}

/* Drops the entries of one key (every key when serial is 0). */
static void cache_drop(rpci_keyring *kr, uint64_t serial) {
  for (int s = 0; s < CACHE_SETS; s++)
    for (int w = 0; w < CACHE_WAYS; w++) {
      rx_entry *e = &kr->cache[s][w];
      if (e->h && (serial == 0 || e->serial == serial)) drop_handle(&e->h);
    }
}

/* ---- key management ----------------------------------------------------- */

static int find_key(const rpci_keyring *kr, const uint8_t *key) {
  for (int i = 0; i < kr->nkeys; i++)
    if (memcmp(kr->keys[i].key, key, RPCI_SEALKEY_LEN) == 0) return i;
  return -1;
}

/* Forget the sealer: the next seal draws a new epoch under the primary. */
static void tx_reset(rpci_keyring *kr) { drop_handle(&kr->tx); }

/* Parses one key, trimming blanks around it. Returns 0 or -1. */
static int parse_trimmed(const char *s, size_t len, uint8_t *key, uint8_t *id) {
  while (len && (*s == ' ' || *s == '\t')) s++, len--;
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  return rpci_sealkey_parse(s, len, key, id);
}

/* Appends a parsed key. The ring must have room and not hold it. */
static void push_key(rpci_keyring *kr, const uint8_t *key, const uint8_t *id) {
  seal_key *k = &kr->keys[kr->nkeys++];
  memcpy(k->key, key, RPCI_SEALKEY_LEN);
  memcpy(k->id, id, RPCI_SEALKEY_ID_LEN);
  k->serial = kr->next_serial++;
}

static void set_err(char *err, size_t errlen, int pos, const char *what) {
  if (err && errlen) snprintf(err, errlen, "cluster key %d: %s", pos, what);
}

static int blank(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return *s == 0;
}

/* Adds the key of text[0..len), or says why not. */
static const char *add_listed(rpci_keyring *kr, const char *text, size_t len) {
  uint8_t key[RPCI_SEALKEY_LEN], id[RPCI_SEALKEY_ID_LEN];
  const char *bad = NULL;
  if (parse_trimmed(text, len, key, id) != 0)
    bad = "not base64 or hex of 16, 24 or 32 bytes";
  else if (find_key(kr, key) >= 0)
    bad = "listed twice";
  else if (kr->nkeys == RPCI_KEYRING_MAX)
    bad = "more than 8 keys";
  else
    push_key(kr, key, id);
  gnutls_memset(key, 0, sizeof key);
  return bad;
}

rpci_keyring *rpci_keyring_new(const char *keys, char *err, size_t errlen) {
  rpci_keyring *kr = calloc(1, sizeof *kr);
  if (!kr) {
    set_err(err, errlen, 0, "out of memory");
    return NULL;
  }
  kr->next_serial = 1;
  const char *p = keys ? keys : "";
  if (blank(p)) return kr;
  for (int pos = 1;; pos++) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *bad = add_listed(kr, p, len);
    if (bad) {
      set_err(err, errlen, pos, bad);
      rpci_keyring_free(kr);
      return NULL;
    }
    if (!end) return kr;
    p = end + 1;
  }
}

void rpci_keyring_free(rpci_keyring *kr) {
  if (!kr) return;
  tx_reset(kr);
  cache_drop(kr, 0);
  if (kr->plain.data) gnutls_memset(kr->plain.data, 0, kr->plain.cap);
  rpci_buf_free(&kr->plain);
  gnutls_memset(kr, 0, sizeof *kr);
  free(kr);
}

int rpci_keyring_count(const rpci_keyring *kr) { return kr->nkeys; }

int rpci_keyring_add(rpci_keyring *kr, const char *key) {
  uint8_t k[RPCI_SEALKEY_LEN], id[RPCI_SEALKEY_ID_LEN];
  int rc = -1;
  if (key && parse_trimmed(key, strlen(key), k, id) == 0) {
    if (find_key(kr, k) >= 0) {
      rc = 0; /* already there: adding twice is harmless during rotation */
    } else if (kr->nkeys < RPCI_KEYRING_MAX) {
      push_key(kr, k, id);
      if (kr->nkeys == 1) tx_reset(kr); /* the ring was plaintext */
      rc = 0;
    }
  }
  gnutls_memset(k, 0, sizeof k);
  return rc;
}

int rpci_keyring_use(rpci_keyring *kr, const char *key) {
  uint8_t k[RPCI_SEALKEY_LEN], id[RPCI_SEALKEY_ID_LEN];
  int i = key && parse_trimmed(key, strlen(key), k, id) == 0 ? find_key(kr, k) : -1;
  gnutls_memset(k, 0, sizeof k);
  if (i < 0) return -1;
  if (i > 0) {
    seal_key tmp = kr->keys[i];
    memmove(&kr->keys[1], &kr->keys[0], (size_t)i * sizeof tmp);
    kr->keys[0] = tmp;
    gnutls_memset(&tmp, 0, sizeof tmp);
    tx_reset(kr);
  }
  return 0;
}

int rpci_keyring_remove(rpci_keyring *kr, const char *key) {
  uint8_t k[RPCI_SEALKEY_LEN], id[RPCI_SEALKEY_ID_LEN];
  int ok = key && parse_trimmed(key, strlen(key), k, id) == 0;
  int i = ok ? find_key(kr, k) : -1;
  gnutls_memset(k, 0, sizeof k);
  if (!ok || i == 0) return -1; /* bad key, or the primary */
  if (i < 0) return 0;          /* not in the ring: nothing to do */
  cache_drop(kr, kr->keys[i].serial);
  memmove(&kr->keys[i], &kr->keys[i + 1], (size_t)(kr->nkeys - i - 1) * sizeof kr->keys[0]);
  kr->nkeys--;
  gnutls_memset(&kr->keys[kr->nkeys], 0, sizeof kr->keys[0]);
  return 0;
}

void rpci_keyring_set_counter(rpci_keyring *kr, uint64_t counter) { kr->counter = counter; }

/* ---- seal and open ------------------------------------------------------ */

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* Nonce and associated data of a header. */
static void nonce_aad(const uint8_t *hdr, int ctx, uint8_t *nonce, uint8_t *aad) {
  memset(nonce, 0, SEAL_NONCE - 8);
  memcpy(nonce + SEAL_NONCE - 8, hdr + SEAL_OFF_CTR, 8);
  memcpy(aad, hdr, SEAL_HDR);
  aad[SEAL_HDR] = (uint8_t)ctx;
}

/* A new epoch and subkey for the primary. Returns 0 or -1. */
static int tx_rekey(rpci_keyring *kr) {
  tx_reset(kr);
  if (gnutls_rnd(GNUTLS_RND_NONCE, kr->epoch, SEAL_EPOCH) != 0) return -1;
  kr->counter = 0;
  return derive(kr->keys[0].key, kr->epoch, &kr->tx);
}

int rpci_keyring_seal(rpci_keyring *kr, int ctx, const uint8_t *in, size_t len, rpci_buf *out) {
  static const uint8_t empty[1];
  if (!in) in = empty;
  if (kr->nkeys == 0) {
    if (len > SIZE_MAX - 1 || rpci_buf_reserve(out, len + 1)) return RPCI_SEAL_NOMEM;
    out->data[out->len] = 0;
    memcpy(out->data + out->len + 1, in, len);
    out->len += len + 1;
    return RPCI_SEAL_OK;
  }
  if (len > SIZE_MAX - RPCI_SEAL_OVERHEAD) return RPCI_SEAL_NOMEM;
  if ((!kr->tx || kr->counter == UINT64_MAX) && tx_rekey(kr)) return RPCI_SEAL_NOMEM;
  if (rpci_buf_reserve(out, len + RPCI_SEAL_OVERHEAD)) return RPCI_SEAL_NOMEM;
  uint8_t *hdr = out->data + out->len, nonce[SEAL_NONCE], aad[SEAL_HDR + 1];
  hdr[0] = SEAL_VERSION;
  memcpy(hdr + SEAL_OFF_ID, kr->keys[0].id, RPCI_SEALKEY_ID_LEN);
  memcpy(hdr + SEAL_OFF_EPOCH, kr->epoch, SEAL_EPOCH);
  put_be64(hdr + SEAL_OFF_CTR, kr->counter++);
  nonce_aad(hdr, ctx, nonce, aad);
  size_t clen = len + SEAL_TAG;
  if (gnutls_aead_cipher_encrypt(kr->tx, nonce, sizeof nonce, aad, sizeof aad, SEAL_TAG, in, len,
                                 hdr + SEAL_HDR, &clen) != 0 ||
      clen != len + SEAL_TAG)
    return RPCI_SEAL_NOMEM;
  out->len += SEAL_HDR + clen;
  return RPCI_SEAL_OK;
}

/* Decrypts under keys[i]: 0 on success, -1 when authentication fails. */
static int open_with(rpci_keyring *kr, int i, const uint8_t *in, size_t len, const uint8_t *nonce,
                     const uint8_t *aad, size_t *plen) {
  const uint8_t *epoch = in + SEAL_OFF_EPOCH;
  uint64_t serial = kr->keys[i].serial;
  gnutls_aead_cipher_hd_t h = cache_get(kr, serial, epoch);
  int cached = h != NULL;
  if (!cached && derive(kr->keys[i].key, epoch, &h)) return -1;
  *plen = len - RPCI_SEAL_OVERHEAD;
  int rc = gnutls_aead_cipher_decrypt(h, nonce, SEAL_NONCE, aad, SEAL_HDR + 1, SEAL_TAG,
                                      in + SEAL_HDR, len - SEAL_HDR, kr->plain.data, plen);
  if (rc == 0 && !cached) cache_put(kr, serial, epoch, h);
  if (rc != 0 && !cached) drop_handle(&h);
  return rc == 0 && *plen == len - RPCI_SEAL_OVERHEAD ? 0 : -1;
}

int rpci_keyring_open(rpci_keyring *kr, int ctx, const uint8_t *in, size_t len,
                      const uint8_t **plain, size_t *plain_len) {
  *plain = NULL;
  *plain_len = 0;
  if (len < 1) return RPCI_SEAL_MALFORMED;
  if (in[0] == 0) {
    if (kr->nkeys) return RPCI_SEAL_PLAIN;
    kr->plain.len = 0;
    if (rpci_buf_reserve(&kr->plain, len)) return RPCI_SEAL_NOMEM;
    memcpy(kr->plain.data, in + 1, len - 1);
    *plain = kr->plain.data;
    *plain_len = len - 1;
    return RPCI_SEAL_OK;
  }
  if (in[0] != SEAL_VERSION) return RPCI_SEAL_MALFORMED;
  if (kr->nkeys == 0) return RPCI_SEAL_SEALED;
  if (len < RPCI_SEAL_OVERHEAD) return RPCI_SEAL_MALFORMED;
  kr->plain.len = 0;
  if (rpci_buf_reserve(&kr->plain, len - RPCI_SEAL_OVERHEAD + 1)) return RPCI_SEAL_NOMEM;
  uint8_t nonce[SEAL_NONCE], aad[SEAL_HDR + 1];
  nonce_aad(in, ctx, nonce, aad);
  int found = 0;
  for (int i = 0; i < kr->nkeys; i++) {
    if (memcmp(kr->keys[i].id, in + SEAL_OFF_ID, RPCI_SEALKEY_ID_LEN) != 0) continue;
    found = 1;
    size_t plen = 0;
    if (open_with(kr, i, in, len, nonce, aad, &plen) == 0) {
      *plain = kr->plain.data;
      *plain_len = plen;
      return RPCI_SEAL_OK;
    }
  }
  return found ? RPCI_SEAL_AUTH : RPCI_SEAL_NO_KEY;
}

const char *rpci_seal_err_name(int err) {
  switch (err) {
    case RPCI_SEAL_OK:
      return "ok";
    case RPCI_SEAL_MALFORMED:
      return "malformed";
    case RPCI_SEAL_NO_KEY:
      return "unknown key";
    case RPCI_SEAL_AUTH:
      return "authentication failed";
    case RPCI_SEAL_PLAIN:
      return "plaintext refused";
    case RPCI_SEAL_SEALED:
      return "sealed but no keys";
    case RPCI_SEAL_NOMEM:
      return "out of memory";
    default:
      return "unknown error";
  }
}
