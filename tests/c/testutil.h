/*
 * Minimal test harness for the C tests. Each test file is one program that
 * runs its cases with RUN(name) and ends with TEST_END(), which prints
 * "N passed, N failed" and returns non-zero on any failure.
 * CHECK records a failure and continues; REQUIRE also leaves the case.
 */
#ifndef RPCNET_TESTUTIL_H
#define RPCNET_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int tu_failed_checks;
extern int tu_cases_passed, tu_cases_failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      tu_failed_checks++;                                                      \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
  do {                                                                                          \
    long long tu_a = (long long)(a), tu_b = (long long)(b);                                     \
    if (tu_a != tu_b) {                                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, \
              #b, tu_a, tu_b);                                                                  \
      tu_failed_checks++;                                                                       \
    }                                                                                           \
  } while (0)

#define REQUIRE(cond)                                                            \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
      tu_failed_checks++;                                                        \
      return;                                                                    \
    }                                                                            \
  } while (0)

#define RUN(fn)                             \
  do {                                      \
    int tu_before = tu_failed_checks;       \
    fprintf(stderr, "-- %s\n", #fn);        \
    fn();                                   \
    if (tu_failed_checks == tu_before) {    \
      tu_cases_passed++;                    \
    } else {                                \
      tu_cases_failed++;                    \
      fprintf(stderr, "FAILED: %s\n", #fn); \
    }                                       \
  } while (0)

#define TEST_END()                                                     \
  (printf("%d passed, %d failed\n", tu_cases_passed, tu_cases_failed), \
   (tu_cases_failed || tu_cases_passed == 0) ? 1 : 0)

/* Directory holding a fresh test PKI (scripts/gen-certs.sh), made once per
 * build tree. Never NULL; aborts when certtool fails. */
const char *tu_pki_dir(void);
/* tu_pki_dir()/name in a static buffer (one of 8 rotating slots). */
const char *tu_pki(const char *name);
/* Monotonic milliseconds. */
int64_t tu_now_ms(void);
/* Reads a whole file (for vectors). Returns malloc'd NUL-terminated text. */
char *tu_read_file(const char *path, size_t *len);
/* Decodes hex into a malloc'd buffer; returns NULL on bad hex. */
uint8_t *tu_hex_decode(const char *hex, size_t *len);

/* ---- Helpers for the black-box core API tests (tests/c/test_core_*.c) ---- */
#include <rpcnet/rpcnet.h>

/* A config from NULL-terminated key/value pairs (the value of a key that
 * names a PKI file may be given as "@name", which means tu_pki("name")).
 * Returns NULL, after printing why, when a key is rejected. */
rpcnet_config *tu_config(const char *key, ...);
/* rpcnet_server_new + rpcnet_server_listen(addr); the config is freed.
 * Returns NULL, after printing rpcnet_last_error(), on failure. */
rpcnet_server *tu_server_start(rpcnet_config *cfg, const char *addr);
/* "127.0.0.1:<port of srv>" (or "[::1]:<port>" when ipv6) in one of 8
 * rotating static buffers. */
const char *tu_server_addr(const rpcnet_server *srv, int ipv6);
/* A client trusting ca.pem connected to srv over IPv4, or NULL after printing
 * rpcnet_last_error(). */
rpcnet_client *tu_client_for(const rpcnet_server *srv);
/* Fills buf with a pattern that depends on seed and holds NUL bytes. */
void tu_fill(void *buf, size_t len, uint32_t seed);
/* Case-insensitive substring search (NULL-safe). */
int tu_contains(const char *haystack, const char *needle);
/* Sleeps ms milliseconds. */
void tu_sleep_ms(int ms);
/* tu_pki_dir() under an exclusive flock on <build>/test-pki.lock, so that test
 * programs run in parallel (ctest -j) do not generate the PKI at the same
 * time (which can mix one run's CA with another's certificates). */
const char *tu_pki_dir_locked(void);

#endif
