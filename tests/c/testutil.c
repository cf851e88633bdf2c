/* Test harness helpers: see testutil.h. */
#include "testutil.h"

#include <time.h>

int tu_failed_checks;
int tu_cases_passed, tu_cases_failed;

static const char *pki_dir_unlocked(void) {
  static char dir[1024];
  if (dir[0]) return dir;
  snprintf(dir, sizeof dir, "%s/test-pki", RPCNET_BINARY_DIR);
  char cmd[3000];
  snprintf(cmd, sizeof cmd, "bash '%s/scripts/gen-certs.sh' '%s'", RPCNET_SOURCE_DIR, dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "gen-certs.sh failed\n");
    abort();
  }
  return dir;
}

const char *tu_pki(const char *name) {
  static char slots[8][1200];
  static int next;
  char *s = slots[next++ & 7];
  snprintf(s, sizeof slots[0], "%s/%s", tu_pki_dir(), name);
  return s;
}

int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *tu_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
    free(p);
    p = NULL;
  }
  fclose(f);
  if (!p) return NULL;
  p[n] = 0;
  if (len) *len = (size_t)n;
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint8_t *tu_hex_decode(const char *hex, size_t *len) {
  size_t n = strlen(hex);
  if (n % 2) return NULL;
  uint8_t *out = malloc(n / 2 + 1);
  if (!out) return NULL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(out);
      return NULL;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return out;
}

/* ---- Helpers for the black-box core API tests ---- */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <unistd.h>

rpcnet_config *tu_config(const char *key, ...) {
  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg) return NULL;
  va_list ap;
  va_start(ap, key);
  for (const char *k = key; k; k = va_arg(ap, const char *)) {
    const char *v = va_arg(ap, const char *);
    if (v && v[0] == '@') v = tu_pki(v + 1);
    int rc = rpcnet_config_set(cfg, k, v);
    if (rc != RPCNET_OK) {
      int secret = strstr(k, "_pem") != NULL; /* do not print PEM contents */
      fprintf(stderr, "tu_config: %s=%s: %s (%s)\n", k, secret ? "<pem>" : v,
              rpcnet_status_name(rc), rpcnet_last_error());
      rpcnet_config_free(cfg);
      cfg = NULL;
      break;
    }
  }
  va_end(ap);
  return cfg;
}

rpcnet_server *tu_server_start(rpcnet_config *cfg, const char *addr) {
  if (!cfg) return NULL;
  rpcnet_server *srv = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg);
  if (!srv) {
    fprintf(stderr, "rpcnet_server_new: %s\n", rpcnet_last_error());
    return NULL;
  }
  int rc = rpcnet_server_listen(srv, addr);
  if (rc != RPCNET_OK) {
    fprintf(stderr, "rpcnet_server_listen(%s): %s (%s)\n", addr, rpcnet_status_name(rc),
            rpcnet_last_error());
    rpcnet_server_free(srv);
    return NULL;
  }
  return srv;
}

const char *tu_server_addr(const rpcnet_server *srv, int ipv6) {
  static char slots[8][64];
  static int next;
  char *s = slots[next++ & 7];
  snprintf(s, sizeof slots[0], ipv6 ? "[::1]:%d" : "127.0.0.1:%d", rpcnet_server_port(srv));
  return s;
}

rpcnet_client *tu_client_for(const rpcnet_server *srv) {
  rpcnet_config *cfg = tu_config("ca_file", "@ca.pem", NULL);
  if (!cfg) return NULL;
  const char *addr = tu_server_addr(srv, 0);
  rpcnet_client *cli = rpcnet_client_connect(cfg, addr);
  rpcnet_config_free(cfg);
  if (!cli) fprintf(stderr, "rpcnet_client_connect(%s): %s\n", addr, rpcnet_last_error());
  return cli;
}

void tu_fill(void *buf, size_t len, uint32_t seed) {
  uint8_t *p = buf;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (i % 7 == 3) ? 0 : (uint8_t)x; /* NUL bytes at regular places */
  }
}

int tu_contains(const char *haystack, const char *needle) {
  return haystack && needle && strcasestr(haystack, needle) != NULL;
}

void tu_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

const char *tu_pki_dir_locked(void) {
  char path[1100];
  snprintf(path, sizeof path, "%s/test-pki.lock", RPCNET_BINARY_DIR);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0)
    while (flock(fd, LOCK_EX) != 0) {
    }
  const char *dir = pki_dir_unlocked();
  if (fd >= 0) close(fd); /* releases the lock */
  return dir;
}

/* Always under the lock: test programs run in parallel share the PKI. */
const char *tu_pki_dir(void) { return tu_pki_dir_locked(); }
