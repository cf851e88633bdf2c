/*
 * Cluster key text: turns one key as an operator writes it (base64 like
 * memberlist, or hex) into the 32-byte AES-256 key the keyring uses and its
 * 4-byte key id. Used by seal.c only; separate so that it can be tested and
 * read on its own.
 *
 * Design notes
 * - Accepted forms, tried in this order: exactly 32, 48 or 64 hex digits
 *   (either case) are hex of a 16, 24 or 32-byte key; anything else must be
 *   standard base64 (RFC 4648 alphabet, '=' padding required) of 16, 24 or
 *   32 bytes. The two forms overlap only for a 32-character base64 text made
 *   of hex digits alone (a 24-byte key, chance about 10^-15 for a random
 *   key): such a text is read as hex.
 * - key = SHA-256(raw bytes): one length for every form.
 *   id = the first 4 bytes of SHA-256(key): it names the key on the wire
 *   without revealing anything about it.
 * - Decoded bytes live on the stack and are zeroed before returning; nothing
 *   here logs or copies the text.
 */
#ifndef RPCI_CLUSTER_SEALKEY_H
#define RPCI_CLUSTER_SEALKEY_H

#include <stddef.h>
#include <stdint.h>

#define RPCI_SEALKEY_LEN 32
#define RPCI_SEALKEY_ID_LEN 4

/* Parses text[0..len) (no surrounding whitespace). Returns 0, filling key
 * and id, or -1 (not hex or base64 of 16, 24 or 32 bytes; the hash failed). */
int rpci_sealkey_parse(const char *text, size_t len, uint8_t key[RPCI_SEALKEY_LEN],
                       uint8_t id[RPCI_SEALKEY_ID_LEN]);

#endif
