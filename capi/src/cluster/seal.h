/*
 * The cluster keyring: seals and opens gossip datagrams and push-pull bodies
 * with AES-256-GCM (GnuTLS) under a shared cluster key.
 *
 * Design notes
 * - Nonces never repeat: each sealer draws a random 16-byte epoch when it is
 *   created and derives a per-sender subkey
 *   HKDF-SHA256(ikm = cluster key, salt = epoch, info = "rpcnet cluster v1")
 *   and uses a 64-bit counter as the nonce (zero-padded to 96 bits). A
 *   subkey sees at most 2^64 messages; two senders share a subkey only if
 *   their random epochs collide (2^-128). memberlist's random 96-bit nonces
 *   under one key are only safe to about 2^32 packets.
 * - Layout: version (1 byte, 1) | key id (4 bytes: the first 4 bytes of
 *   SHA-256(key)) | epoch (16) | counter (8, big-endian) | ciphertext |
 *   tag (16). The 29-byte header is the AEAD's associated data together with
 *   a caller-chosen context byte (gossip datagram or push-pull body), so a
 *   datagram cannot be replayed as a sync body or the other way round.
 * - Keys: 16, 24 or 32 bytes given as base64 (like memberlist) or hex; each
 *   is expanded with SHA-256 to 32 bytes. The keyring holds up to 8 keys; the
 *   first is the primary and the only one that seals; all of them open.
 *   Rotation: install the new key everywhere, make it primary everywhere,
 *   then remove the old one.
 * - An empty keyring means plaintext: version byte 0 followed by the
 *   payload. A keyring with keys refuses plaintext and the other way round.
 * - Derived receive subkeys are cached (a small table keyed by key id +
 *   epoch, least recently used evicted), so opening costs one AEAD decrypt.
 * - Thread-safety: a keyring is used under its owner's lock (the cluster
 *   node's mutex); rpci_keyring_open and _seal are not reentrant.
 */
#ifndef RPCI_CLUSTER_SEAL_H
#define RPCI_CLUSTER_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

#define RPCI_SEAL_OVERHEAD 45 /* header 29 + tag 16 */
#define RPCI_KEYRING_MAX 8

enum rpci_seal_ctx { RPCI_SEAL_GOSSIP = 1, RPCI_SEAL_SYNC = 2 };

enum rpci_seal_err {
  RPCI_SEAL_OK = 0,
  RPCI_SEAL_MALFORMED = -1, /* too short, unknown version */
  RPCI_SEAL_NO_KEY = -2,    /* sealed with a key id not in the ring */
  RPCI_SEAL_AUTH = -3,      /* authentication failed (wrong key, tampering) */
  RPCI_SEAL_PLAIN = -4,     /* plaintext arrived but the ring has keys */
  RPCI_SEAL_SEALED = -5,    /* sealed arrived but the ring is empty */
  RPCI_SEAL_NOMEM = -6
};

typedef struct rpci_keyring rpci_keyring;

/* A keyring from a comma-separated key list ("" or NULL: no keys, plaintext).
 * On error returns NULL and, when err is not NULL, writes a message naming
 * the bad key's position (never the key) into err[errlen]. */
rpci_keyring *rpci_keyring_new(const char *keys, char *err, size_t errlen);
void rpci_keyring_free(rpci_keyring *kr);
/* Number of keys (0: plaintext). */
int rpci_keyring_count(const rpci_keyring *kr);
/* Key management for rotation. Return 0, or -1 (bad key, ring full, or
 * removing the primary). */
int rpci_keyring_add(rpci_keyring *kr, const char *key);
int rpci_keyring_use(rpci_keyring *kr, const char *key);
int rpci_keyring_remove(rpci_keyring *kr, const char *key);

/* Appends the sealed form of in[0..len) to out. Returns RPCI_SEAL_OK or
 * RPCI_SEAL_NOMEM. */
int rpci_keyring_seal(rpci_keyring *kr, int ctx, const uint8_t *in, size_t len, rpci_buf *out);
/* Opens a sealed message: on success *plain and *plain_len point into a buffer
 * owned by the keyring, valid until the next call on it. Returns an
 * rpci_seal_err. */
int rpci_keyring_open(rpci_keyring *kr, int ctx, const uint8_t *in, size_t len,
                      const uint8_t **plain, size_t *plain_len);
/* A short stable description of an error: "malformed", "unknown key",
 * "authentication failed", "plaintext refused", "sealed but no keys". */
const char *rpci_seal_err_name(int err);

/* Testing only: sets the next counter of the sealer's current epoch (to
 * reach the end of an epoch without 2^64 seals). The epoch exists from the
 * first seal after creation or rpci_keyring_use; before that the next seal
 * starts a new epoch at counter 0 anyway. */
void rpci_keyring_set_counter(rpci_keyring *kr, uint64_t counter);

#endif
