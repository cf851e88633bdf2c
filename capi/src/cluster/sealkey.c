/* Cluster key text: see sealkey.h for the design notes. */
#include "cluster/sealkey.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int b64_val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Hex of 16, 24 or 32 bytes into raw. Returns the byte count or -1. */
static int hex_decode(const char *s, size_t len, uint8_t *raw) {
  if (len != 32 && len != 48 && len != 64) return -1;
  for (size_t i = 0; i < len; i += 2) {
    int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);
    if (hi < 0 || lo < 0) return -1;
    raw[i / 2] = (uint8_t)(hi << 4 | lo);
  }
  return (int)(len / 2);
}

/* Padded standard base64 of at most 48 bytes into raw. Returns the byte
 * count or -1. */
static int b64_decode(const char *s, size_t len, uint8_t *raw) {
  if (len == 0 || len % 4 != 0 || len > 64) return -1;
  size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
  int n = 0;
  for (size_t i = 0; i < len; i += 4) {
    uint32_t acc = 0;
    for (size_t j = 0; j < 4; j++) {
      int v = b64_val(s[i + j]);
      if (v < 0 && !(i + j >= len - pad && s[i + j] == '=')) return -1;
      acc = acc << 6 | (uint32_t)(v < 0 ? 0 : v);
    }
    raw[n++] = (uint8_t)(acc >> 16);
    raw[n++] = (uint8_t)(acc >> 8);
    raw[n++] = (uint8_t)acc;
  }
  /* the bits the padding drops must be zero (canonical form only) */
  uint32_t last = (uint32_t)b64_val(s[len - 1 - pad]);
  if ((pad == 1 && (last & 0x3)) || (pad == 2 && (last & 0xf))) return -1;
  return n - (int)pad;
}

static int all_hex(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (hex_val(s[i]) < 0) return 0;
  return 1;
}

int rpci_sealkey_parse(const char *text, size_t len, uint8_t key[RPCI_SEALKEY_LEN],
                       uint8_t id[RPCI_SEALKEY_ID_LEN]) {
  uint8_t raw[48], digest[32];
  int n = all_hex(text, len) ? hex_decode(text, len, raw) : -1;
  if (n < 0) n = b64_decode(text, len, raw);
  int rc = -1;
  if ((n == 16 || n == 24 || n == 32) &&
      gnutls_hash_fast(GNUTLS_DIG_SHA256, raw, (size_t)n, key) == 0 &&
      gnutls_hash_fast(GNUTLS_DIG_SHA256, key, RPCI_SEALKEY_LEN, digest) == 0) {
    memcpy(id, digest, RPCI_SEALKEY_ID_LEN);
    rc = 0;
  } else {
    gnutls_memset(key, 0, RPCI_SEALKEY_LEN);
  }
  gnutls_memset(raw, 0, sizeof raw);
  gnutls_memset(digest, 0, sizeof digest);
  return rc;
}
