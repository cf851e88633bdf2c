/*
 * rpcnet_cluster_call_bench: what routing through the cluster adds to a
 * unary call. One worker (a server attached to a cluster node) and one
 * director node in this process over loopback; rounds alternate between
 * rpcnet_client_call on a plain client and rpcnet_cluster_call on the
 * director (same server, same 64-byte request, 1 call in flight), so both
 * see the same machine noise. Prints each round's p50 and the medians.
 *
 *   rpcnet_cluster_call_bench CERT_DIR [CALLS_PER_ROUND] [ROUNDS]
 *
 * CERT_DIR holds server.pem, server-key.pem and ca.pem (scripts/gen-certs.sh).
 */
#include <rpcnet/rpcnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static void echo(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *data = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, data, len);
}

static rpcnet_config *config(const char *dir, const char *name) {
  char cert[512], key[512], ca[512];
  snprintf(cert, sizeof cert, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server-key.pem", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  rpcnet_config *c = rpcnet_config_new();
  rpcnet_config_set(c, "cert_file", cert);
  rpcnet_config_set(c, "key_file", key);
  rpcnet_config_set(c, "ca_file", ca);
  rpcnet_config_set(c, "server_name", "localhost");
  rpcnet_config_set(c, "node_name", name);
  rpcnet_config_set(c, "gossip_bind", "127.0.0.1:0");
  rpcnet_config_set(c, "cluster_keys", "0123456789abcdef0123456789abcdef");
  return c;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CERT_DIR [CALLS_PER_ROUND] [ROUNDS]\n", argv[0]);
    return 2;
  }
  int calls = argc > 2 ? atoi(argv[2]) : 2000, rounds = argc > 3 ? atoi(argv[3]) : 7;
  rpcnet_config *wc = config(argv[1], "worker"), *dc = config(argv[1], "director");
  rpcnet_server *srv = rpcnet_server_new(wc);
  if (!srv || rpcnet_server_listen(srv, "127.0.0.1:0") != RPCNET_OK) {
    fprintf(stderr, "server: %s\n", rpcnet_last_error());
    return 1;
  }
  rpcnet_server_handle(srv, "echo", echo, NULL);
  rpcnet_cluster *w = rpcnet_cluster_new(wc), *d = rpcnet_cluster_new(dc);
  if (!w || !d || rpcnet_cluster_attach_server(w, srv) != RPCNET_OK) {
    fprintf(stderr, "cluster: %s\n", rpcnet_last_error());
    return 1;
  }
  char seed[64], addr[64];
  snprintf(seed, sizeof seed, "127.0.0.1:%d", rpcnet_cluster_gossip_port(w));
  snprintf(addr, sizeof addr, "127.0.0.1:%d", rpcnet_server_port(srv));
  if (rpcnet_cluster_join(d, seed) != RPCNET_OK) {
    fprintf(stderr, "join: %s\n", rpcnet_last_error());
    return 1;
  }
  rpcnet_client *cli = rpcnet_client_connect(dc, addr);
  if (!cli) {
    fprintf(stderr, "connect: %s\n", rpcnet_last_error());
    return 1;
  }
  char req[64];
  memset(req, 'x', sizeof req);
  double *lat = malloc(sizeof(double) * (size_t)calls);
  double *p_plain = malloc(sizeof(double) * (size_t)rounds);
  double *p_routed = malloc(sizeof(double) * (size_t)rounds);
  /* Warm both paths (handshakes, pooled connection). */
  for (int i = 0; i < 200; i++) {
    void *resp;
    size_t len;
    if (rpcnet_client_call(cli, "echo", req, sizeof req, &resp, &len, 2000) == RPCNET_OK)
      rpcnet_free(resp);
    if (rpcnet_cluster_call(d, NULL, "echo", req, sizeof req, &resp, &len, 2000) == RPCNET_OK)
      rpcnet_free(resp);
  }
  printf("round  plain p50 us  routed p50 us\n");
  for (int r = 0; r < rounds; r++) {
    for (int mode = 0; mode < 2; mode++) {
      for (int i = 0; i < calls; i++) {
        void *resp;
        size_t len;
        double t0 = now_us();
        int rc = mode == 0
                     ? rpcnet_client_call(cli, "echo", req, sizeof req, &resp, &len, 2000)
                     : rpcnet_cluster_call(d, NULL, "echo", req, sizeof req, &resp, &len, 2000);
        lat[i] = now_us() - t0;
        if (rc != RPCNET_OK) {
          fprintf(stderr, "call failed: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
          return 1;
        }
        rpcnet_free(resp);
      }
      (mode == 0 ? p_plain : p_routed)[r] = median(lat, calls);
    }
    printf("%5d  %12.1f  %13.1f\n", r + 1, p_plain[r], p_routed[r]);
  }
  double mp = median(p_plain, rounds), mr = median(p_routed, rounds);
  printf("median %11.1f  %13.1f   routed - plain = %+.1f us (%.2fx)\n", mp, mr, mr - mp, mr / mp);
  rpcnet_client_close(cli);
  rpcnet_cluster_free(d);
  rpcnet_cluster_free(w);
  rpcnet_server_free(srv);
  rpcnet_config_free(wc);
  rpcnet_config_free(dc);
  free(lat);
  free(p_plain);
  free(p_routed);
  return 0;
}
