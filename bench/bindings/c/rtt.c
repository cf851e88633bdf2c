/*
 * rtt: unary 64 B round trips against an external server, one call in
 * flight; prints "p50_us p99_us" on one line. The C row of
 * bench/bindings/run.sh (every language's client measures the same way
 * against the same server process).
 *
 *   rtt CA_FILE ADDR CALLS
 */
#include <rpcnet/rpcnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: rtt CA_FILE ADDR CALLS\n");
    return 2;
  }
  int n = atoi(argv[3]);
  rpcnet_config *cfg = rpcnet_config_new();
  rpcnet_config_set(cfg, "ca_file", argv[1]);
  rpcnet_config_set(cfg, "server_name", "localhost");
  rpcnet_client *cli = rpcnet_client_connect(cfg, argv[2]);
  rpcnet_config_free(cfg);
  if (!cli || n <= 0) {
    fprintf(stderr, "rtt: %s\n", rpcnet_last_error());
    return 1;
  }
  double *t = malloc(sizeof *t * (size_t)n);
  char payload[64];
  memset(payload, 'x', sizeof payload);
  for (int i = 0; i < n + n / 10; i++) { /* the first tenth warms up */
    void *resp;
    size_t len;
    double t0 = now_us();
    int rc = rpcnet_client_call(cli, "echo", payload, sizeof payload, &resp, &len, 5000);
    double dt = now_us() - t0;
    if (rc != RPCNET_OK) {
      fprintf(stderr, "rtt: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
      return 1;
    }
    rpcnet_free(resp);
    if (i >= n / 10) t[i - n / 10] = dt;
  }
  qsort(t, (size_t)n, sizeof *t, cmp);
  printf("%.1f %.1f\n", t[n / 2], t[(int)(n * 0.99)]);
  free(t);
  rpcnet_client_close(cli);
  return 0;
}
