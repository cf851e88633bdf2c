/* Test harness helpers: see testutil.h. */
#include "testutil.h"

#include <time.h>

int tu_failed_checks;
int tu_cases_passed, tu_cases_failed;

const char *tu_pki_dir(void) {
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
