/*
 * rpcnet_bench: unary call latency and throughput over loopback, next to a
 * plain UDP ping-pong measured by the same program in the same run.
 *
 *   rpcnet_bench [--quick] [--json] [--seconds S] [--pki DIR]
 *                [--gen-certs PATH] [--io-threads N]
 *
 * Figures (see bench/README.md):
 *   - UDP ping-pong, 64 B, two threads over loopback: round-trip p50/p99 and
 *     round trips per second (1 message in flight). The baseline.
 *   - rpcnet unary calls, payload 64 B and 16 KiB, with
 *     1 connection x {1, 16, 64} calls in flight and 4 connections x 64 calls
 *     in flight each; every call in flight is one thread doing blocking
 *     calls. Round-trip p50/p99 and calls per second.
 *   - Ratios: each latency to the UDP p50, each throughput to the UDP round
 *     trips per second.
 * Server and clients run in this process; the server's handler answers inline
 * on the library's I/O thread. Certificates: --pki DIR (holding ca.pem,
 * server.pem, server-key.pem) or made fresh with scripts/gen-certs.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <rpcnet/rpcnet.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define UDP_PAYLOAD 64
#define CALL_TIMEOUT_MS 30000

/* ---- options ---------------------------------------------------------------- */

#define MAX_SHAPES 16

static struct {
  int quick, json, io_threads;
  int nshapes, shapes[MAX_SHAPES][2]; /* --shape: replaces the default shapes */
  double seconds, warmup;
  const char *pki, *gen_certs;
} opt = {.seconds = 2.0, .warmup = 0.5};

static void usage(FILE *f) {
  fprintf(f,
          "usage: rpcnet_bench [--quick] [--json] [--seconds S] [--pki DIR]\n"
          "                    [--gen-certs PATH] [--io-threads N] [--shape CxM]...\n"
          "  --quick         short runs (0.3 s per figure) for a smoke test\n"
          "  --json          print one JSON object instead of the table\n"
          "  --seconds S     measured seconds per figure (default 2, after 0.5 s warm-up)\n"
          "  --pki DIR       use DIR/ca.pem, DIR/server.pem, DIR/server-key.pem\n"
          "  --gen-certs P   path of scripts/gen-certs.sh (default: found from the source tree)\n"
          "  --io-threads N  size of rpcnet's I/O thread pool (default: the library's, 1)\n"
          "  --shape CxM     measure C connections x M calls in flight each instead of the\n"
          "                  default shapes 1x1 1x16 1x64 4x64 (repeatable)\n");
}

/* ---- time and statistics ------------------------------------------------------ */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const uint64_t *s, size_t n, double p) {
  if (n == 0) return NAN;
  double want = p * (double)n; /* rank = ceil(want), without libm */
  size_t rank = (size_t)want;
  if ((double)rank < want) rank++;
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)s[rank - 1] / 1000.0;
}

/* ---- workers ------------------------------------------------------------------- */

/* 0: warm-up, 1: measuring, 2: stop. A round trip is counted (and its latency
 * kept) when it completes while measuring. */
static _Atomic int phase;

struct worker;
typedef int (*op_fn)(struct worker *w); /* one round trip; 0 = OK */

struct worker {
  pthread_t th;
  int cpu; /* >= 0: pin the worker thread to this CPU */
  op_fn op;
  rpcnet_client *cli;
  int fd; /* UDP */
  size_t payload;
  uint8_t *buf;
  uint64_t *lat;
  size_t n, cap;
  uint64_t errors;
  char error[200];
};

/* Pins the calling thread to one CPU (no-op when cpu < 0). */
static void pin_self(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  pin_self(w->cpu);
  while (phase != 2) {
    uint64_t t0 = now_ns();
    int rc = w->op(w);
    uint64_t t1 = now_ns();
    if (phase != 1) continue;
    if (rc != 0) {
      w->errors++;
      continue;
    }
    if (w->n == w->cap) {
      size_t cap = w->cap ? w->cap * 2 : 4096;
      uint64_t *p = realloc(w->lat, cap * sizeof *p);
      if (!p) {
        w->errors++;
        continue;
      }
      w->lat = p;
      w->cap = cap;
    }
    w->lat[w->n++] = t1 - t0;
  }
  return NULL;
}

static int rpc_op(struct worker *w) {
  void *resp = NULL;
  size_t len = 0;
  int rc = rpcnet_client_call(w->cli, "echo", w->buf, w->payload, &resp, &len, CALL_TIMEOUT_MS);
  if (rc == RPCNET_OK && (len != w->payload || memcmp(resp, w->buf, len) != 0)) {
    rc = -1;
    snprintf(w->error, sizeof w->error, "wrong answer (%zu bytes)", len);
  } else if (rc != RPCNET_OK) {
    snprintf(w->error, sizeof w->error, "%s: %s", rpcnet_status_name(rc), rpcnet_last_error());
  }
  rpcnet_free(resp);
  return rc;
}

static int udp_op(struct worker *w) {
  uint8_t in[UDP_PAYLOAD];
  if (send(w->fd, w->buf, w->payload, 0) != (ssize_t)w->payload) return -1;
  for (;;) { /* the socket has a receive timeout so that stop is seen */
    ssize_t r = recv(w->fd, in, sizeof in, 0);
    if (r == (ssize_t)w->payload) return memcmp(in, w->buf, w->payload) != 0;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && phase != 2) {
      /* lost datagram (should not happen on loopback): resend */
      if (send(w->fd, w->buf, w->payload, 0) != (ssize_t)w->payload) return -1;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    snprintf(w->error, sizeof w->error, "udp recv: %s", r < 0 ? strerror(errno) : "short");
    return -1;
  }
}

struct result {
  const char *name;
  int conns, in_flight;
  size_t payload;
  double p50_us, p99_us, per_s, seconds;
  uint64_t count, errors;
  char error[200];
};

/* Runs n workers (already set up) through warm-up and measurement. */
static void run_workers(struct worker *w, int n, struct result *res) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  phase = 0;
  int started = 0;
  for (int i = 0; i < n; i++) {
    w[i].buf = malloc(w[i].payload ? w[i].payload : 1);
    for (size_t j = 0; j < w[i].payload; j++) w[i].buf[j] = (uint8_t)(i * 31 + j * 7);
    if (pthread_create(&w[i].th, &attr, worker_main, &w[i]) != 0) break;
    started++;
  }
  pthread_attr_destroy(&attr);
  sleep_s(opt.warmup);
  uint64_t t0 = now_ns();
  phase = 1;
  sleep_s(opt.seconds);
  phase = 2;
  uint64_t t1 = now_ns();
  size_t total = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(w[i].th, NULL);
    total += w[i].n;
  }
  uint64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  res->errors = (uint64_t)(n - started);
  for (int i = 0; i < started; i++) {
    if (all) memcpy(all + k, w[i].lat, w[i].n * sizeof *all);
    k += w[i].n;
    res->errors += w[i].errors;
    if (w[i].errors && !res->error[0]) snprintf(res->error, sizeof res->error, "%s", w[i].error);
  }
  for (int i = 0; i < n; i++) {
    free(w[i].lat);
    free(w[i].buf);
  }
  if (!all) total = 0;
  qsort(all, total, sizeof *all, cmp_u64);
  res->count = total;
  res->seconds = (double)(t1 - t0) / 1e9;
  res->per_s = (double)total / res->seconds;
  res->p50_us = pct_us(all, total, 0.50);
  res->p99_us = pct_us(all, total, 0.99);
  free(all);
}

/* ---- UDP ping-pong baseline ------------------------------------------------------ */

static _Atomic int udp_stop;
static int udp_echo_cpu = -1;

static void *udp_echo_main(void *arg) {
  int fd = *(int *)arg;
  pin_self(udp_echo_cpu);
  uint8_t buf[2048];
  while (!udp_stop) {
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (r > 0) sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
  }
  return NULL;
}

static int udp_socket(struct sockaddr_in *bound) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  struct timeval tv = {0, 100000};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    close(fd);
    return -1;
  }
  *bound = sa;
  return fd;
}

/* The UDP baseline with the two threads on different cores (cross = 1,
 * CPUs 0 and 1) or on one core (cross = 0, CPU 0). Left to the scheduler,
 * a ping-pong pair often lands on one core (about 3 us here) while
 * rpcnet's caller and I/O thread run on two (tens of us per wake-up), so
 * the placement is fixed to compare like with like. */
static int bench_udp(struct result *res, int cross) {
  struct sockaddr_in echo_addr, cli_addr;
  int efd = udp_socket(&echo_addr), cfd = udp_socket(&cli_addr);
  if (efd < 0 || cfd < 0 || connect(cfd, (struct sockaddr *)&echo_addr, sizeof echo_addr) != 0) {
    fprintf(stderr, "rpcnet_bench: UDP sockets: %s\n", strerror(errno));
    return -1;
  }
  udp_stop = 0;
  int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
  udp_echo_cpu = ncpu >= 2 ? (cross ? 1 : 0) : -1;
  pthread_t th;
  if (pthread_create(&th, NULL, udp_echo_main, &efd) != 0) return -1;
  struct worker w = {.op = udp_op, .fd = cfd, .payload = UDP_PAYLOAD, .cpu = ncpu >= 2 ? 0 : -1};
  *res = (struct result){.name = cross ? "UDP ping-pong, 2 cores" : "UDP ping-pong, 1 core",
                         .conns = 1, .in_flight = 1, .payload = UDP_PAYLOAD};
  run_workers(&w, 1, res);
  udp_stop = 1;
  pthread_join(th, NULL);
  close(efd);
  close(cfd);
  return 0;
}

/* ---- rpcnet ------------------------------------------------------------------------ */

static void echo_handler(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *d = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, d, len);
}

static char pki_dir[1024];

static const char *pki(const char *name) {
  static char slots[4][1200];
  static int next;
  char *s = slots[next++ & 3];
  snprintf(s, sizeof slots[0], "%s/%s", pki_dir, name);
  return s;
}

static int bench_rpc(const char *addr, int conns, int in_flight, size_t payload,
                     struct result *res) {
  *res = (struct result){
      .name = "rpcnet unary", .conns = conns, .in_flight = in_flight, .payload = payload};
  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg || rpcnet_config_set(cfg, "ca_file", pki("ca.pem")) != RPCNET_OK ||
      rpcnet_config_set(cfg, "server_name", "localhost") != RPCNET_OK) {
    fprintf(stderr, "rpcnet_bench: client config: %s\n", rpcnet_last_error());
    rpcnet_config_free(cfg);
    return -1;
  }
  rpcnet_client **cli = calloc((size_t)conns, sizeof *cli);
  int n = conns * in_flight;
  struct worker *w = calloc((size_t)n, sizeof *w);
  int rc = 0;
  for (int i = 0; cli && w && i < conns; i++) {
    cli[i] = rpcnet_client_connect(cfg, addr);
    if (!cli[i]) {
      fprintf(stderr, "rpcnet_bench: connect %s: %s\n", addr, rpcnet_last_error());
      rc = -1;
    }
  }
  rpcnet_config_free(cfg);
  if (!cli || !w) rc = -1;
  if (rc == 0) {
    for (int i = 0; i < n; i++)
      w[i] = (struct worker){.op = rpc_op, .cli = cli[i % conns], .payload = payload, .cpu = -1};
    run_workers(w, n, res);
  }
  for (int i = 0; cli && i < conns; i++) rpcnet_client_close(cli[i]);
  free(cli);
  free(w);
  return rc;
}

/* ---- certificates -------------------------------------------------------------------- */

static char tmp_pki[256];

static const char *find_gen_certs(void) {
  static char path[1200];
  if (opt.gen_certs) return opt.gen_certs;
  const char *env = getenv("RPCNET_GEN_CERTS");
  if (env && *env) return env;
#ifdef RPCNET_GEN_CERTS
  if (access(RPCNET_GEN_CERTS, R_OK) == 0) return RPCNET_GEN_CERTS;
#endif
  /* This file is bench/bench.c in the source tree (CMake compiles it by its
   * absolute path): the script is ../scripts/gen-certs.sh from here. */
  snprintf(path, sizeof path, "%s", __FILE__);
  char *slash = strrchr(path, '/');
  if (slash) {
    *slash = 0;
    size_t l = strlen(path);
    snprintf(path + l, sizeof path - l, "/../scripts/gen-certs.sh");
    if (access(path, R_OK) == 0) return path;
  }
  return NULL;
}

static int setup_pki(void) {
  if (opt.pki) {
    snprintf(pki_dir, sizeof pki_dir, "%s", opt.pki);
    return 0;
  }
  const char *script = find_gen_certs();
  if (!script) {
    fprintf(stderr,
            "rpcnet_bench: cannot find scripts/gen-certs.sh; pass --gen-certs PATH or "
            "--pki DIR\n");
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(tmp_pki, sizeof tmp_pki, "%s/rpcnet-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(tmp_pki)) {
    fprintf(stderr, "rpcnet_bench: mkdtemp: %s\n", strerror(errno));
    tmp_pki[0] = 0;
    return -1;
  }
  snprintf(pki_dir, sizeof pki_dir, "%s/pki", tmp_pki);
  char cmd[3000];
  snprintf(cmd, sizeof cmd, "bash '%s' '%s' >/dev/null", script, pki_dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "rpcnet_bench: %s failed\n", cmd);
    return -1;
  }
  return 0;
}

static void cleanup_pki(void) {
  if (!tmp_pki[0]) return;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_pki);
  if (system(cmd) != 0) fprintf(stderr, "rpcnet_bench: could not remove %s\n", tmp_pki);
}

/* ---- output ------------------------------------------------------------------------- */

static void fmt_payload(char *out, size_t n, size_t payload) {
  if (payload >= 1024 && payload % 1024 == 0)
    snprintf(out, n, "%zu KiB", payload / 1024);
  else
    snprintf(out, n, "%zu B", payload);
}

static const struct result *udp_same_core; /* reference row */

static void print_table(const struct result *udp, const struct result *r, int nr) {
  printf("rpcnet %s benchmark: loopback, server and clients in one process, %s\n", rpcnet_version(),
         opt.quick ? "QUICK mode (figures are rough)" : "default mode");
  printf("%.1f s measured per figure after %.1f s warm-up; latency = round trip of one call\n",
         opt.seconds, opt.warmup);
  printf("ratios: latency / UDP p50, throughput / UDP round trips per second (UDP threads pinned\n"
         "to two cores: rpcnet's caller and I/O thread also run on two)\n\n");
  printf("%-32s %8s %10s %10s %12s %9s %9s %9s %7s\n", "figure", "payload", "p50 us", "p99 us",
         "per second", "p50/udp", "p99/udp", "tput/udp", "errors");
  printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.2f %7llu\n", "UDP ping-pong, 2 cores (base)",
         "64 B", udp->p50_us, udp->p99_us, udp->per_s, 1.0, udp->p99_us / udp->p50_us, 1.0,
         (unsigned long long)udp->errors);
  if (udp_same_core)
    printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.2f %7llu\n", "UDP ping-pong, 1 core (ref)",
           "64 B", udp_same_core->p50_us, udp_same_core->p99_us, udp_same_core->per_s,
           udp_same_core->p50_us / udp->p50_us, udp_same_core->p99_us / udp->p50_us,
           udp_same_core->per_s / udp->per_s, (unsigned long long)udp_same_core->errors);
  for (int i = 0; i < nr; i++) {
    char name[64], pl[32];
    snprintf(name, sizeof name, "rpcnet %d conn x %d in flight", r[i].conns, r[i].in_flight);
    fmt_payload(pl, sizeof pl, r[i].payload);
    printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.3f %7llu\n", name, pl, r[i].p50_us,
           r[i].p99_us, r[i].per_s, r[i].p50_us / udp->p50_us, r[i].p99_us / udp->p50_us,
           r[i].per_s / udp->per_s, (unsigned long long)r[i].errors);
  }
  for (int i = 0; i < nr; i++)
    if (r[i].errors)
      printf("errors in %d conn x %d, %zu B: %llu, e.g. %s\n", r[i].conns, r[i].in_flight,
             r[i].payload, (unsigned long long)r[i].errors, r[i].error);
}

static double jnum(double x) { return isfinite(x) ? x : -1; }

static void print_json(const struct result *udp, const struct result *r, int nr) {
  printf("{\"version\":\"%s\",\"mode\":\"%s\",\"seconds_per_figure\":%.3f,", rpcnet_version(),
         opt.quick ? "quick" : "default", opt.seconds);
  printf(
      "\"udp\":{\"payload\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,\"round_trips_per_s\":%.1f,"
      "\"count\":%llu,\"errors\":%llu},",
      udp->payload, jnum(udp->p50_us), jnum(udp->p99_us), jnum(udp->per_s),
      (unsigned long long)udp->count, (unsigned long long)udp->errors);
  printf("\"rpcnet\":[");
  for (int i = 0; i < nr; i++) {
    printf(
        "%s{\"connections\":%d,\"in_flight_per_connection\":%d,\"payload\":%zu,"
        "\"p50_us\":%.3f,\"p99_us\":%.3f,\"calls_per_s\":%.1f,\"count\":%llu,\"errors\":%llu,"
        "\"p50_over_udp_p50\":%.3f,\"p99_over_udp_p50\":%.3f,\"calls_per_s_over_udp\":%.4f}",
        i ? "," : "", r[i].conns, r[i].in_flight, r[i].payload, jnum(r[i].p50_us),
        jnum(r[i].p99_us), jnum(r[i].per_s), (unsigned long long)r[i].count,
        (unsigned long long)r[i].errors, jnum(r[i].p50_us / udp->p50_us),
        jnum(r[i].p99_us / udp->p50_us), jnum(r[i].per_s / udp->per_s));
  }
  printf("]}\n");
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int seconds_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (strcmp(a, "--quick") == 0) {
      opt.quick = 1;
    } else if (strcmp(a, "--json") == 0) {
      opt.json = 1;
    } else if (strcmp(a, "--seconds") == 0 && has) {
      opt.seconds = atof(argv[++i]);
      seconds_given = 1;
    } else if (strcmp(a, "--pki") == 0 && has) {
      opt.pki = argv[++i];
    } else if (strcmp(a, "--gen-certs") == 0 && has) {
      opt.gen_certs = argv[++i];
    } else if (strcmp(a, "--io-threads") == 0 && has) {
      opt.io_threads = atoi(argv[++i]);
    } else if (strcmp(a, "--shape") == 0 && has) {
      int c = 0, m = 0;
      if (opt.nshapes == MAX_SHAPES || sscanf(argv[++i], "%dx%d", &c, &m) != 2 || c < 1 || m < 1 ||
          c * m > 4096) {
        fprintf(stderr, "rpcnet_bench: bad --shape %s (want CxM, e.g. 4x16)\n", argv[i]);
        return 2;
      }
      opt.shapes[opt.nshapes][0] = c;
      opt.shapes[opt.nshapes][1] = m;
      opt.nshapes++;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "rpcnet_bench: bad argument %s\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (opt.quick) {
    if (!seconds_given) opt.seconds = 0.3;
    opt.warmup = 0.1;
  }
  if (!(opt.seconds > 0)) {
    fprintf(stderr, "rpcnet_bench: --seconds must be positive\n");
    return 2;
  }
  if (setup_pki() != 0) {
    cleanup_pki();
    return 1;
  }

  int status = 0;
  struct result udp, udp1;
  if (!opt.json) fprintf(stderr, "measuring UDP ping-pong (2 cores, then 1 core)...\n");
  if (bench_udp(&udp, 1) != 0 || bench_udp(&udp1, 0) != 0) {
    cleanup_pki();
    return 1;
  }
  udp_same_core = &udp1;

  rpcnet_config *cfg = rpcnet_config_new();
  char io[16];
  snprintf(io, sizeof io, "%d", opt.io_threads);
  if (!cfg || rpcnet_config_set(cfg, "cert_file", pki("server.pem")) != RPCNET_OK ||
      rpcnet_config_set(cfg, "key_file", pki("server-key.pem")) != RPCNET_OK ||
      (opt.io_threads > 0 && rpcnet_config_set(cfg, "io_threads", io) != RPCNET_OK)) {
    fprintf(stderr, "rpcnet_bench: server config: %s\n", rpcnet_last_error());
    rpcnet_config_free(cfg);
    cleanup_pki();
    return 1;
  }
  rpcnet_server *srv = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg);
  if (!srv || rpcnet_server_handle(srv, "echo", echo_handler, NULL) != RPCNET_OK ||
      rpcnet_server_listen(srv, "127.0.0.1:0") != RPCNET_OK) {
    fprintf(stderr, "rpcnet_bench: server: %s\n", rpcnet_last_error());
    rpcnet_server_free(srv);
    cleanup_pki();
    return 1;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", rpcnet_server_port(srv));

  static const size_t payloads[] = {64, 16 * 1024};
  static const int default_shapes[][2] = {{1, 1}, {1, 16}, {1, 64}, {4, 64}};
  const int(*shapes)[2] = opt.nshapes ? (const int(*)[2])opt.shapes : default_shapes;
  size_t nshapes = opt.nshapes ? (size_t)opt.nshapes : 4;
  struct result res[2 * MAX_SHAPES];
  int nr = 0;
  for (size_t p = 0; p < 2; p++) {
    for (size_t s = 0; s < nshapes; s++) {
      if (!opt.json)
        fprintf(stderr, "measuring rpcnet %d conn x %d in flight, %zu B...\n", shapes[s][0],
                shapes[s][1], payloads[p]);
      if (bench_rpc(addr, shapes[s][0], shapes[s][1], payloads[p], &res[nr]) != 0) status = 1;
      if (res[nr].errors) status = 1;
      nr++;
    }
  }
  rpcnet_server_shutdown(srv, 1000);
  rpcnet_server_free(srv);
  cleanup_pki();

  if (opt.json)
    print_json(&udp, res, nr);
  else
    print_table(&udp, res, nr);
  if (udp.errors) status = 1;
  return status;
}
