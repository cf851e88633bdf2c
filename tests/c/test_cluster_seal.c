/*
 * Keyring tests (capi/src/cluster/seal.h): round trips, tampering, contexts,
 * plaintext rings, rotation between two rings, nonce uniqueness, the end of
 * an epoch, key formats and key errors, the receive cache, and one
 * known-answer packet made by an independent implementation
 * (tests/fuzz/gen_cluster_open.py).
 */
#include "cluster/seal.h"
#include "testutil.h"

/* One raw key per length, as base64 and as hex (same bytes). */
#define B64_16 "EBceJSwzOkFIT1ZdZGtyeQ=="
#define HEX_16 "10171e252c333a41484f565d646b7279"
#define B64_24 "GB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5"
#define HEX_24 "181f262d343b424950575e656c737a81888f969da4abb2b9"
#define B64_32 "ICcuNTxDSlFYX2ZtdHuCiZCXnqWss7rByM/W3eTr8vk="
#define HEX_32 "20272e353c434a51585f666d747b828990979ea5acb3bac1c8cfd6dde4ebf2f9"
#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2 B64_32
#define K3 HEX_16

static rpci_keyring *ring(const char *keys) {
  char err[128] = "";
  rpci_keyring *kr = rpci_keyring_new(keys, err, sizeof err);
  if (!kr) fprintf(stderr, "keyring: %s\n", err);
  return kr;
}

/* Seals msg[0..len) with a, opens with b; returns the open result and
 * checks the payload on success. */
static int pass(rpci_keyring *a, rpci_keyring *b, int ctx_a, int ctx_b, const uint8_t *msg,
                size_t len) {
  rpci_buf out = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_keyring_seal(a, ctx_a, msg, len, &out), RPCI_SEAL_OK);
  const uint8_t *plain = NULL;
  size_t plen = 99;
  int rc = rpci_keyring_open(b, ctx_b, out.data, out.len, &plain, &plen);
  if (rc == RPCI_SEAL_OK) {
    CHECK_EQ_INT(plen, len);
    CHECK(len == 0 || memcmp(plain, msg, len) == 0);
  }
  rpci_buf_free(&out);
  return rc;
}

static void round_trip(void) {
  rpci_keyring *a = ring(K1), *b = ring(K1);
  REQUIRE(a && b);
  static uint8_t msg[1150];
  tu_fill(msg, sizeof msg, 7);
  size_t sizes[] = {0, 1, 1150};
  for (int i = 0; i < 3; i++) {
    for (int ctx = RPCI_SEAL_GOSSIP; ctx <= RPCI_SEAL_SYNC; ctx++) {
      CHECK_EQ_INT(pass(a, b, ctx, ctx, msg, sizes[i]), RPCI_SEAL_OK);
      CHECK_EQ_INT(pass(a, a, ctx, ctx, msg, sizes[i]), RPCI_SEAL_OK); /* own packets too */
    }
    /* appends to what the buffer holds; the layout of the header */
    rpci_buf out = RPCI_BUF_INIT;
    rpci_buf_append(&out, "xyz", 3);
    CHECK_EQ_INT(rpci_keyring_seal(a, RPCI_SEAL_GOSSIP, msg, sizes[i], &out), RPCI_SEAL_OK);
    CHECK_EQ_INT(out.len, 3 + sizes[i] + RPCI_SEAL_OVERHEAD);
    CHECK(memcmp(out.data, "xyz", 3) == 0);
    CHECK_EQ_INT(out.data[3], 1);
    CHECK(sizes[i] == 0 || memcmp(out.data + 3 + 29, msg, sizes[i]) != 0); /* encrypted */
    const uint8_t *plain;
    size_t plen;
    CHECK_EQ_INT(rpci_keyring_open(b, RPCI_SEAL_GOSSIP, out.data + 3, out.len - 3, &plain, &plen),
                 RPCI_SEAL_OK);
    rpci_buf_free(&out);
  }
  CHECK_EQ_INT(pass(a, b, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, NULL, 0), RPCI_SEAL_OK);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

static void wrong_key(void) {
  rpci_keyring *a = ring(K1), *b = ring(K2), *c = ring(K2 "," K3);
  REQUIRE(a && b && c);
  const uint8_t msg[] = "membership";
  int rc = pass(a, b, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, sizeof msg);
  CHECK(rc == RPCI_SEAL_NO_KEY || rc == RPCI_SEAL_AUTH);
  rc = pass(a, c, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, sizeof msg);
  CHECK(rc == RPCI_SEAL_NO_KEY || rc == RPCI_SEAL_AUTH);
  /* the header names a key the ring holds, the packet was sealed with another */
  rpci_buf out = RPCI_BUF_INIT, other = RPCI_BUF_INIT;
  rpci_keyring_seal(a, RPCI_SEAL_GOSSIP, msg, sizeof msg, &out);
  rpci_keyring_seal(b, RPCI_SEAL_GOSSIP, msg, sizeof msg, &other);
  memcpy(out.data + 1, other.data + 1, 4);
  const uint8_t *plain;
  size_t plen;
  CHECK_EQ_INT(rpci_keyring_open(b, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen),
               RPCI_SEAL_AUTH);
  CHECK(plain == NULL && plen == 0);
  rpci_buf_free(&out);
  rpci_buf_free(&other);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
  rpci_keyring_free(c);
}

static void tamper(void) {
  rpci_keyring *a = ring(K1), *b = ring(K1 "," K2);
  REQUIRE(a && b);
  uint8_t msg[40];
  tu_fill(msg, sizeof msg, 3);
  rpci_buf out = RPCI_BUF_INIT;
  REQUIRE(rpci_keyring_seal(a, RPCI_SEAL_SYNC, msg, sizeof msg, &out) == RPCI_SEAL_OK);
  const uint8_t *plain;
  size_t plen;
  for (size_t i = 0; i < out.len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      out.data[i] ^= (uint8_t)(1 << bit);
      int rc = rpci_keyring_open(b, RPCI_SEAL_SYNC, out.data, out.len, &plain, &plen);
      if (rc == RPCI_SEAL_OK) fprintf(stderr, "byte %zu bit %d: accepted\n", i, bit);
      CHECK(rc != RPCI_SEAL_OK);
      if (i == 0) CHECK(rc == (bit == 0 ? RPCI_SEAL_PLAIN : RPCI_SEAL_MALFORMED));
      if (i >= 1 && i < 5) CHECK_EQ_INT(rc, RPCI_SEAL_NO_KEY);
      if (i >= 5) CHECK_EQ_INT(rc, RPCI_SEAL_AUTH);
      out.data[i] ^= (uint8_t)(1 << bit);
    }
  }
  /* every truncation and an extra byte fail too */
  for (size_t n = 0; n < out.len; n++) {
    int rc = rpci_keyring_open(b, RPCI_SEAL_SYNC, out.data, n, &plain, &plen);
    CHECK(rc == (n == 0 || n < RPCI_SEAL_OVERHEAD ? RPCI_SEAL_MALFORMED : RPCI_SEAL_AUTH));
  }
  rpci_buf_push(&out, 0);
  CHECK_EQ_INT(rpci_keyring_open(b, RPCI_SEAL_SYNC, out.data, out.len, &plain, &plen),
               RPCI_SEAL_AUTH);
  out.len--;
  CHECK_EQ_INT(rpci_keyring_open(b, RPCI_SEAL_SYNC, out.data, out.len, &plain, &plen),
               RPCI_SEAL_OK);
  rpci_buf_free(&out);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

static void context_mismatch(void) {
  rpci_keyring *a = ring(K1), *b = ring(K1);
  REQUIRE(a && b);
  const uint8_t msg[] = "push-pull";
  CHECK_EQ_INT(pass(a, b, RPCI_SEAL_GOSSIP, RPCI_SEAL_SYNC, msg, sizeof msg), RPCI_SEAL_AUTH);
  CHECK_EQ_INT(pass(a, b, RPCI_SEAL_SYNC, RPCI_SEAL_GOSSIP, msg, sizeof msg), RPCI_SEAL_AUTH);
  CHECK_EQ_INT(pass(a, b, RPCI_SEAL_SYNC, RPCI_SEAL_SYNC, msg, sizeof msg), RPCI_SEAL_OK);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

static void plaintext(void) {
  rpci_keyring *p = ring(""), *q = ring(NULL), *k = ring(K1);
  REQUIRE(p && q && k);
  CHECK_EQ_INT(rpci_keyring_count(p), 0);
  CHECK_EQ_INT(rpci_keyring_count(q), 0);
  const uint8_t msg[] = "hello";
  rpci_buf out = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_keyring_seal(p, RPCI_SEAL_GOSSIP, msg, 5, &out), RPCI_SEAL_OK);
  CHECK_EQ_INT(out.len, 6);
  CHECK(out.data[0] == 0 && memcmp(out.data + 1, msg, 5) == 0);
  rpci_buf_free(&out);
  CHECK_EQ_INT(pass(p, q, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, 5), RPCI_SEAL_OK);
  CHECK_EQ_INT(pass(p, q, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, 0), RPCI_SEAL_OK);
  CHECK_EQ_INT(pass(p, k, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, 5), RPCI_SEAL_PLAIN);
  CHECK_EQ_INT(pass(k, p, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, 5), RPCI_SEAL_SEALED);
  const uint8_t *plain;
  size_t plen;
  const uint8_t v2[] = {2, 0, 0};
  CHECK_EQ_INT(rpci_keyring_open(p, 1, v2, 3, &plain, &plen), RPCI_SEAL_MALFORMED);
  CHECK_EQ_INT(rpci_keyring_open(k, 1, v2, 3, &plain, &plen), RPCI_SEAL_MALFORMED);
  CHECK_EQ_INT(rpci_keyring_open(p, 1, v2, 0, &plain, &plen), RPCI_SEAL_MALFORMED);
  /* a plaintext ring given a key starts sealing */
  CHECK_EQ_INT(rpci_keyring_add(p, K1), 0);
  CHECK_EQ_INT(pass(p, k, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, 5), RPCI_SEAL_OK);
  rpci_keyring_free(p);
  rpci_keyring_free(q);
  rpci_keyring_free(k);
}

/* Both directions must get through. */
static void both_ways(rpci_keyring *a, rpci_keyring *b, int step) {
  uint8_t msg[100];
  tu_fill(msg, sizeof msg, (uint32_t)step);
  int ab = pass(a, b, RPCI_SEAL_GOSSIP, RPCI_SEAL_GOSSIP, msg, sizeof msg);
  int ba = pass(b, a, RPCI_SEAL_SYNC, RPCI_SEAL_SYNC, msg, sizeof msg);
  if (ab || ba) fprintf(stderr, "rotation step %d: a->b %d, b->a %d\n", step, ab, ba);
  CHECK(ab == RPCI_SEAL_OK && ba == RPCI_SEAL_OK);
}

static void rotation(void) {
  /* B seals with k2, which A lacks; once B makes k1 primary A reads it. */
  rpci_keyring *a = ring(K1), *b = ring(K2 "," K1);
  REQUIRE(a && b);
  CHECK_EQ_INT(pass(b, a, 1, 1, (const uint8_t *)"x", 1), RPCI_SEAL_NO_KEY);
  CHECK_EQ_INT(pass(a, b, 1, 1, (const uint8_t *)"x", 1), RPCI_SEAL_OK);
  CHECK_EQ_INT(rpci_keyring_use(b, K1), 0);
  both_ways(a, b, 0);
  CHECK_EQ_INT(rpci_keyring_remove(b, K2), 0);
  rpci_keyring_free(a);
  rpci_keyring_free(b);

  /* The documented procedure, one ring at a time, never losing a message. */
  a = ring(K1);
  b = ring(K1);
  REQUIRE(a && b);
  both_ways(a, b, 1);
  CHECK_EQ_INT(rpci_keyring_add(b, K2), 0);
  both_ways(a, b, 2);
  CHECK_EQ_INT(rpci_keyring_add(a, K2), 0);
  both_ways(a, b, 3);
  CHECK_EQ_INT(rpci_keyring_use(a, K2), 0);
  both_ways(a, b, 4);
  CHECK_EQ_INT(rpci_keyring_use(b, K2), 0);
  both_ways(a, b, 5);
  CHECK_EQ_INT(rpci_keyring_remove(a, K1), 0);
  both_ways(a, b, 6);
  CHECK_EQ_INT(rpci_keyring_remove(b, K1), 0);
  both_ways(a, b, 7);
  CHECK_EQ_INT(rpci_keyring_count(a), 1);
  CHECK_EQ_INT(rpci_keyring_count(b), 1);
  /* k1 is gone everywhere: a ring with only k1 is locked out */
  rpci_keyring *old = ring(K1);
  CHECK_EQ_INT(pass(old, a, 1, 1, (const uint8_t *)"x", 1), RPCI_SEAL_NO_KEY);
  CHECK_EQ_INT(pass(a, old, 1, 1, (const uint8_t *)"x", 1), RPCI_SEAL_NO_KEY);
  rpci_keyring_free(old);

  /* management errors */
  CHECK_EQ_INT(rpci_keyring_remove(a, K2), -1); /* the primary */
  CHECK_EQ_INT(rpci_keyring_remove(a, K1), 0);  /* not there: nothing to do */
  CHECK_EQ_INT(rpci_keyring_use(a, K1), -1);    /* not installed */
  CHECK_EQ_INT(rpci_keyring_add(a, "nonsense"), -1);
  CHECK_EQ_INT(rpci_keyring_use(a, "nonsense"), -1);
  CHECK_EQ_INT(rpci_keyring_remove(a, "nonsense"), -1);
  CHECK_EQ_INT(rpci_keyring_add(a, K2), 0);     /* again: harmless */
  CHECK_EQ_INT(rpci_keyring_add(a, HEX_32), 0); /* K2 written in hex: the same key */
  CHECK_EQ_INT(rpci_keyring_count(a), 1);
  const char *more[] = {K1,
                        B64_16,
                        B64_24,
                        "MDEyMzQ1Njc4OWFiY2RlZg==",
                        "ZmVkY2JhOTg3NjU0MzIxMA==",
                        "ZmVkY2JhOTg3NjU0MzIxMQ==",
                        "ZmVkY2JhOTg3NjU0MzIxMw=="};
  for (int i = 0; i < 7; i++) CHECK_EQ_INT(rpci_keyring_add(a, more[i]), 0);
  CHECK_EQ_INT(rpci_keyring_count(a), RPCI_KEYRING_MAX);
  CHECK_EQ_INT(rpci_keyring_add(a, "ZmVkY2JhOTg3NjU0MzIxMg=="), -1); /* full */
  both_ways(a, b, 8);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

/* (epoch, counter) of a sealed packet as 24 bytes. */
typedef struct nonce_id {
  uint8_t b[24];
} nonce_id;

static int cmp_nonce(const void *x, const void *y) { return memcmp(x, y, sizeof(nonce_id)); }

static void unique_nonces(void) {
  enum { N = 10000 };
  rpci_keyring *a = ring(K1), *b = ring(K1);
  REQUIRE(a && b);
  nonce_id *ids = calloc(2 * N + 2, sizeof *ids);
  REQUIRE(ids);
  rpci_buf out = RPCI_BUF_INIT;
  size_t n = 0;
  for (int i = 0; i < N; i++) {
    for (int s = 0; s < 2; s++) {
      out.len = 0;
      rpci_keyring_seal(s ? b : a, RPCI_SEAL_GOSSIP, (const uint8_t *)"m", 1, &out);
      memcpy(ids[n++].b, out.data + 5, 24);
    }
    if (i == N / 2) { /* a new primary starts a new epoch */
      CHECK_EQ_INT(rpci_keyring_add(a, K2), 0);
      CHECK_EQ_INT(rpci_keyring_use(a, K2), 0);
    }
  }
  /* within one sealer the counter counts up by one */
  CHECK(memcmp(ids[0].b, ids[2].b, 16) == 0);
  CHECK_EQ_INT(ids[2].b[23], ids[0].b[23] + 1);
  CHECK(memcmp(ids[0].b, ids[1].b, 16) != 0); /* two sealers, two epochs */
  qsort(ids, n, sizeof *ids, cmp_nonce);
  size_t dups = 0;
  for (size_t i = 1; i < n; i++) dups += memcmp(ids[i - 1].b, ids[i].b, 24) == 0;
  CHECK_EQ_INT(dups, 0);
  free(ids);
  rpci_buf_free(&out);
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

static void epoch_end(void) {
  rpci_keyring *a = ring(K1), *b = ring(K1);
  REQUIRE(a && b);
  rpci_buf out[4] = {RPCI_BUF_INIT, RPCI_BUF_INIT, RPCI_BUF_INIT, RPCI_BUF_INIT};
  rpci_keyring_seal(a, RPCI_SEAL_GOSSIP, (const uint8_t *)"0", 1, &out[0]);
  rpci_keyring_set_counter(a, UINT64_MAX - 2);
  for (int i = 1; i < 4; i++)
    CHECK_EQ_INT(rpci_keyring_seal(a, RPCI_SEAL_GOSSIP, (const uint8_t *)"0", 1, &out[i]),
                 RPCI_SEAL_OK);
  static const uint8_t max2[8] = {255, 255, 255, 255, 255, 255, 255, 253};
  static const uint8_t max1[8] = {255, 255, 255, 255, 255, 255, 255, 254};
  static const uint8_t zero[8] = {0};
  CHECK(memcmp(out[1].data + 21, max2, 8) == 0);
  CHECK(memcmp(out[2].data + 21, max1, 8) == 0);
  CHECK(memcmp(out[3].data + 21, zero, 8) == 0);            /* never 2^64 - 1 ... */
  CHECK(memcmp(out[2].data + 5, out[3].data + 5, 16) != 0); /* ... a new epoch instead */
  CHECK(memcmp(out[1].data + 5, out[2].data + 5, 16) == 0);
  for (int i = 0; i < 4; i++) {
    const uint8_t *plain;
    size_t plen;
    CHECK_EQ_INT(rpci_keyring_open(b, RPCI_SEAL_GOSSIP, out[i].data, out[i].len, &plain, &plen),
                 RPCI_SEAL_OK);
    rpci_buf_free(&out[i]);
  }
  rpci_keyring_free(a);
  rpci_keyring_free(b);
}

static void key_formats(void) {
  const char *b64[] = {B64_16, B64_24, B64_32}, *hex[] = {HEX_16, HEX_24, HEX_32};
  for (int i = 0; i < 3; i++) {
    rpci_keyring *a = ring(b64[i]), *b = ring(hex[i]);
    REQUIRE(a && b);
    CHECK_EQ_INT(rpci_keyring_count(a), 1);
    CHECK_EQ_INT(pass(a, b, 1, 1, (const uint8_t *)"fmt", 3), RPCI_SEAL_OK);
    CHECK_EQ_INT(pass(b, a, 2, 2, (const uint8_t *)"fmt", 3), RPCI_SEAL_OK);
    rpci_keyring_free(a);
    rpci_keyring_free(b);
  }
  /* upper-case hex, blanks around list entries */
  rpci_keyring *u = ring("10171E252C333A41484F565D646B7279"), *l = ring(" " K1 " ,\t" HEX_16 " ");
  REQUIRE(u && l);
  CHECK_EQ_INT(rpci_keyring_count(l), 2);
  CHECK_EQ_INT(rpci_keyring_use(l, HEX_16), 0);
  CHECK_EQ_INT(pass(l, u, 1, 1, (const uint8_t *)"x", 1), RPCI_SEAL_OK);
  rpci_keyring_free(u);
  rpci_keyring_free(l);
}

/* new() fails, the message names the position and never the key. */
static void expect_bad(const char *keys, const char *pos, const char *secret) {
  char err[256] = "";
  rpci_keyring *kr = rpci_keyring_new(keys, err, sizeof err);
  CHECK(kr == NULL);
  rpci_keyring_free(kr);
  if (!tu_contains(err, pos)) fprintf(stderr, "'%s' lacks '%s'\n", err, pos);
  CHECK(tu_contains(err, pos));
  if (secret && *secret) {
    char part[9];
    snprintf(part, sizeof part, "%s", secret);
    CHECK(!tu_contains(err, secret) && !tu_contains(err, part));
  }
}

static void bad_keys(void) {
  const char *bad[] = {
      "EBceJSwzOkFIT1ZdZGtyeRA=",           /* base64 of 17 bytes */
      "EBceJSwzOkFIT1ZdZGtyeQ",             /* padding missing */
      "EBceJSwzOkFIT1ZdZGtye*==",           /* not base64 */
      "EBceJSwzOkFIT1ZdZGtyeR==",           /* non-canonical last char */
      "10171e252c333a41484f565d646b727",    /* 31 hex digits */
      "10171e252c333a41484f565d646b72790a", /* 17 bytes of hex */
      "10171e252c333a41484f565d646b72_9",   /* neither alphabet */
      "correct horse battery staple!!",     /* a password */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char list[256];
    expect_bad(bad[i], "key 1", bad[i]);
    snprintf(list, sizeof list, "%s,%s", K1, bad[i]);
    expect_bad(list, "key 2", bad[i]);
  }
  expect_bad(K1 ",", "key 2", NULL);
  expect_bad(K1 ",," K2, "key 2", NULL);
  expect_bad(K1 "," K2 "," HEX_32, "key 3", NULL); /* K2 twice */
  expect_bad(K1 "," B64_16 "," B64_24 "," HEX_32
                ",MDEyMzQ1Njc4OWFiY2RlZg==,"
                "ZmVkY2JhOTg3NjU0MzIxMA==,ZmVkY2JhOTg3NjU0MzIxMQ==,ZmVkY2JhOTg3NjU0MzIxMg==,"
                "ZmVkY2JhOTg3NjU0MzIxMw==",
             "key 9", NULL);
  /* a NULL err is fine */
  CHECK(rpci_keyring_new("junk", NULL, 0) == NULL);
  CHECK_EQ_INT(strcmp(rpci_seal_err_name(RPCI_SEAL_MALFORMED), "malformed"), 0);
  CHECK_EQ_INT(strcmp(rpci_seal_err_name(RPCI_SEAL_NO_KEY), "unknown key"), 0);
  CHECK_EQ_INT(strcmp(rpci_seal_err_name(RPCI_SEAL_AUTH), "authentication failed"), 0);
  CHECK_EQ_INT(strcmp(rpci_seal_err_name(RPCI_SEAL_PLAIN), "plaintext refused"), 0);
  CHECK_EQ_INT(strcmp(rpci_seal_err_name(RPCI_SEAL_SEALED), "sealed but no keys"), 0);
}

/* Many senders (more than the receive cache holds), each seen twice. */
static void many_senders(void) {
  enum { S = 600 };
  rpci_keyring **s = calloc(S, sizeof *s), *rx = ring(K2 "," K1);
  REQUIRE(s && rx);
  rpci_buf out = RPCI_BUF_INIT;
  int bad = 0;
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < S; i++) {
      if (!s[i]) s[i] = ring(i % 2 ? K1 : K2);
      out.len = 0;
      char msg[16];
      int n = snprintf(msg, sizeof msg, "%d/%d", i, round);
      rpci_keyring_seal(s[i], RPCI_SEAL_GOSSIP, (const uint8_t *)msg, (size_t)n, &out);
      const uint8_t *plain;
      size_t plen;
      int rc = rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen);
      bad += rc != RPCI_SEAL_OK || plen != (size_t)n || memcmp(plain, msg, (size_t)n) != 0;
    }
  CHECK_EQ_INT(bad, 0);
  /* removing a key forgets its cached subkeys */
  out.len = 0;
  rpci_keyring_seal(s[1], RPCI_SEAL_GOSSIP, (const uint8_t *)"k1", 2, &out);
  CHECK_EQ_INT(rpci_keyring_remove(rx, K1), 0);
  const uint8_t *plain;
  size_t plen;
  CHECK_EQ_INT(rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen),
               RPCI_SEAL_NO_KEY);
  CHECK_EQ_INT(rpci_keyring_add(rx, K1), 0);
  CHECK_EQ_INT(rpci_keyring_open(rx, RPCI_SEAL_GOSSIP, out.data, out.len, &plain, &plen),
               RPCI_SEAL_OK);
  for (int i = 0; i < S; i++) rpci_keyring_free(s[i]);
  free(s);
  rpci_buf_free(&out);
  rpci_keyring_free(rx);
}

/* A packet from tests/fuzz/gen_cluster_open.py (Python 'cryptography'):
 * K1, epoch 00..0f, counter 1, gossip context, payload "hello". */
static void known_answer(void) {
  size_t n = 0;
  uint8_t *pkt = tu_hex_decode(
      "012f287b4d000102030405060708090a0b0c0d0e0f0000000000000001992cee0634f634dba0b1b04d4502d7f3"
      "f171c1761c",
      &n);
  rpci_keyring *kr = ring(HEX_16 "," K1);
  REQUIRE(pkt && kr);
  const uint8_t *plain;
  size_t plen;
  CHECK_EQ_INT(rpci_keyring_open(kr, RPCI_SEAL_GOSSIP, pkt, n, &plain, &plen), RPCI_SEAL_OK);
  CHECK(plen == 5 && memcmp(plain, "hello", 5) == 0);
  CHECK_EQ_INT(rpci_keyring_open(kr, RPCI_SEAL_SYNC, pkt, n, &plain, &plen), RPCI_SEAL_AUTH);
  /* our own seal carries the same key id */
  rpci_keyring *k1 = ring(K1);
  rpci_buf out = RPCI_BUF_INIT;
  rpci_keyring_seal(k1, RPCI_SEAL_GOSSIP, (const uint8_t *)"hello", 5, &out);
  CHECK(memcmp(out.data, pkt, 5) == 0);
  rpci_buf_free(&out);
  rpci_keyring_free(k1);
  rpci_keyring_free(kr);
  free(pkt);
}

int main(void) {
  RUN(round_trip);
  RUN(wrong_key);
  RUN(tamper);
  RUN(context_mismatch);
  RUN(plaintext);
  RUN(rotation);
  RUN(unique_nonces);
  RUN(epoch_end);
  RUN(key_formats);
  RUN(bad_keys);
  RUN(many_senders);
  RUN(known_answer);
  return TEST_END();
}
