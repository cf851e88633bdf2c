/*
 * rpcnet_bench: unary call latency and throughput over loopback, next to a
 * plain UDP ping-pong measured by the same program in the same run.
 *
 *   rpcnet_bench [--quick] [--json] [--seconds S] [--pki DIR]
 *                [--gen-certs PATH] [--io-threads N] [--shape CxM]...
 *                [--stream-bytes N]
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
 *   - Streaming (call handles): 64 B messages on one bidirectional call,
 *     ping-pong (one message in flight: p50/p99 and round trips per second)
 *     and pipelined (sends as fast as backpressure allows while draining the
 *     echoes: echoes per second), with the same ratios; and one call moving
 *     --stream-bytes in 64 KiB messages each way (client to server, server to
 *     client): MB/s and CPU seconds per GB (getrusage of the whole process,
 *     server and client together).
 * Server and clients run in this process; the server's unary handler answers
 * inline on the library's I/O thread, its streaming methods are pulled and
 * served by threads of this program. Certificates: --pki DIR (holding ca.pem,
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define UDP_PAYLOAD 64
#define CALL_TIMEOUT_MS 30000
#define STREAM_MSG (64 * 1024)
#define STREAM_BYTES_DEFAULT (1ull << 30)
#define STREAM_BYTES_QUICK (64ull << 20)

/* ---- options ---------------------------------------------------------------- */

#define MAX_SHAPES 16

static struct {
  int quick, json, io_threads;
  int nshapes, shapes[MAX_SHAPES][2]; /* --shape: replaces the default shapes */
  double seconds, warmup;
  const char *pki, *gen_certs;
  unsigned long long stream_bytes; /* 0: the mode's default */
} opt = {.seconds = 2.0, .warmup = 0.5};

static void usage(FILE *f) {
  fprintf(f,
          "usage: rpcnet_bench [--quick] [--json] [--seconds S] [--pki DIR]\n"
          "                    [--gen-certs PATH] [--io-threads N] [--shape CxM]...\n"
          "                    [--stream-bytes N]\n"
          "  --quick         short runs (0.3 s per figure) for a smoke test\n"
          "  --json          print one JSON object instead of the table\n"
          "  --seconds S     measured seconds per figure (default 2, after 0.5 s warm-up)\n"
          "  --pki DIR       use DIR/ca.pem, DIR/server.pem, DIR/server-key.pem\n"
          "  --gen-certs P   path of scripts/gen-certs.sh (default: found from the source tree)\n"
          "  --io-threads N  size of rpcnet's I/O thread pool (default: the library's, 1)\n"
          "  --shape CxM     measure C connections x M calls in flight each instead of the\n"
          "                  default shapes 1x1 1x16 1x64 4x64 (repeatable)\n"
          "  --stream-bytes N  bytes one streaming call moves each way, in 64 KiB messages\n"
          "                  (suffix k, m or g for KiB, MiB, GiB; default 1g, 64m with --quick)\n");
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
  rpcnet_call *call; /* streaming ping-pong */
  int fd;            /* UDP */
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
                         .conns = 1,
                         .in_flight = 1,
                         .payload = UDP_PAYLOAD};
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

/* ---- streaming ------------------------------------------------------------------------ */

/* The server's streaming methods are pulled (fn == NULL) and served by these
 * threads, which may block:
 *   stream.echo    sends every message back, then finishes OK;
 *   stream.sink    reads to the end and answers the byte count (8 bytes);
 *   stream.source  sends the byte count its 8-byte request asks for, in
 *                  STREAM_MSG messages. */
#define STREAM_SERVERS 2

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void serve_stream(rpcnet_request *req, const uint8_t *block) {
  const char *m = rpcnet_request_method(req);
  void *d = NULL;
  size_t len = 0;
  int rc;
  if (strcmp(m, "stream.echo") == 0) {
    while ((rc = rpcnet_request_recv(req, -1, &d, &len)) == RPCNET_OK) {
      rc = rpcnet_request_send(req, d, len);
      rpcnet_free(d);
      if (rc != RPCNET_OK) break;
    }
    rpcnet_request_finish(req, rc == RPCNET_END_OF_STREAM ? RPCNET_OK : RPCNET_ABORTED, NULL);
  } else if (strcmp(m, "stream.sink") == 0) {
    uint64_t total = 0;
    while ((rc = rpcnet_request_recv(req, -1, &d, &len)) == RPCNET_OK) {
      total += len;
      rpcnet_free(d);
    }
    uint8_t out[8];
    put_u64(out, total);
    if (rc == RPCNET_END_OF_STREAM) rpcnet_request_send(req, out, 8);
    rpcnet_request_finish(req, rc == RPCNET_END_OF_STREAM ? RPCNET_OK : RPCNET_ABORTED, NULL);
  } else if (strcmp(m, "stream.source") == 0) {
    rc = rpcnet_request_recv(req, -1, &d, &len);
    uint64_t total = rc == RPCNET_OK && len == 8 ? get_u64(d) : 0;
    rpcnet_free(d);
    rc = RPCNET_OK;
    for (uint64_t off = 0; off < total && rc == RPCNET_OK; off += STREAM_MSG) {
      size_t n = total - off < STREAM_MSG ? (size_t)(total - off) : STREAM_MSG;
      rc = rpcnet_request_send(req, block, n);
    }
    rpcnet_request_finish(req, rc == RPCNET_OK ? RPCNET_OK : RPCNET_ABORTED, NULL);
  } else {
    rpcnet_request_finish(req, RPCNET_UNIMPLEMENTED, "not a bench streaming method");
  }
}

static void *stream_server_main(void *arg) {
  rpcnet_server *srv = arg;
  uint8_t *block = malloc(STREAM_MSG);
  if (!block) return NULL;
  for (size_t i = 0; i < STREAM_MSG; i++) block[i] = (uint8_t)(i * 7 + 1);
  for (;;) {
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, -1, &req);
    if (rc == RPCNET_DEADLINE_EXCEEDED) continue;
    if (rc != RPCNET_OK) break; /* UNAVAILABLE after shutdown */
    serve_stream(req, block);
  }
  free(block);
  return NULL;
}

/* A deadline for a call that lasts the whole measurement, or moves `bytes`
 * at no less than 5 MB/s. */
static int long_timeout_ms(uint64_t bytes) {
  double s = 60 + opt.warmup + opt.seconds + (double)bytes / 5e6;
  return s > 2e6 ? 2000000000 : (int)(s * 1000);
}

static rpcnet_client *bench_client(const char *addr) {
  rpcnet_config *cfg = rpcnet_config_new();
  rpcnet_client *cli = NULL;
  if (cfg && rpcnet_config_set(cfg, "ca_file", pki("ca.pem")) == RPCNET_OK &&
      rpcnet_config_set(cfg, "server_name", "localhost") == RPCNET_OK)
    cli = rpcnet_client_connect(cfg, addr);
  if (!cli) fprintf(stderr, "rpcnet_bench: connect %s: %s\n", addr, rpcnet_last_error());
  rpcnet_config_free(cfg);
  return cli;
}

/* Finishes a call the bench no longer sends on: close_send, drain, status. */
static int end_call(rpcnet_call *call, char *error, size_t cap) {
  void *d;
  size_t len;
  rpcnet_call_close_send(call);
  int rc;
  while ((rc = rpcnet_call_recv(call, -1, &d, &len)) == RPCNET_OK) rpcnet_free(d);
  const char *m = "";
  int st = rpcnet_call_status(call, &m);
  if (st != RPCNET_OK && !error[0])
    snprintf(error, cap, "call ended %s: %s", rpcnet_status_name(st), m);
  return st == RPCNET_OK ? 0 : -1;
}

/* One round trip of a 64 B message on the worker's bidirectional call. */
static int stream_pp_op(struct worker *w) {
  int rc = rpcnet_call_send(w->call, w->buf, w->payload);
  void *d = NULL;
  size_t len = 0;
  if (rc == RPCNET_OK) rc = rpcnet_call_recv(w->call, -1, &d, &len);
  if (rc == RPCNET_OK && (len != w->payload || memcmp(d, w->buf, len) != 0)) {
    rc = -1;
    snprintf(w->error, sizeof w->error, "wrong echo (%zu bytes)", len);
  } else if (rc != RPCNET_OK) {
    snprintf(w->error, sizeof w->error, "%s: %s", rpcnet_status_name(rc), rpcnet_last_error());
    if (rc == RPCNET_END_OF_STREAM) sleep_s(0.001); /* the call is over: do not spin */
  }
  rpcnet_free(d);
  return rc;
}

static int bench_stream_pingpong(rpcnet_client *cli, struct result *res) {
  *res = (struct result){
      .name = "rpcnet 1 call bidi ping-pong", .conns = 1, .in_flight = 1, .payload = 64};
  struct worker w = {.op = stream_pp_op, .cli = cli, .payload = 64, .cpu = -1};
  w.call = rpcnet_client_start(cli, "stream.echo", long_timeout_ms(0));
  if (!w.call) {
    snprintf(res->error, sizeof res->error, "start: %s", rpcnet_last_error());
    res->errors = 1;
    return -1;
  }
  run_workers(&w, 1, res);
  if (end_call(w.call, res->error, sizeof res->error) != 0) res->errors++;
  rpcnet_call_free(w.call);
  return 0;
}

/* One thread keeps the call full: it sends with timeout 0 until the call's
 * send window is full, takes every echo that is there, and waits for an echo
 * only when neither made progress. (A call handle is used by one thread at a
 * time, so sending and draining share the thread.) Counts the echoes that
 * arrive during the measured window. */
static int bench_stream_pipelined(rpcnet_client *cli, struct result *res) {
  *res = (struct result){.name = "rpcnet 1 call bidi pipelined",
                         .conns = 1,
                         .in_flight = 0,
                         .payload = 64,
                         .p50_us = NAN,
                         .p99_us = NAN};
  rpcnet_call *call = rpcnet_client_start(cli, "stream.echo", long_timeout_ms(0));
  if (!call) {
    snprintf(res->error, sizeof res->error, "start: %s", rpcnet_last_error());
    res->errors = 1;
    return -1;
  }
  uint8_t msg[64];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 5);
  uint64_t t0 = now_ns(), t_measure = t0 + (uint64_t)(opt.warmup * 1e9),
           t_end = t_measure + (uint64_t)(opt.seconds * 1e9);
  uint64_t sent = 0, got = 0, counted = 0, max_in_flight = 0;
  int failed = 0;
  for (uint64_t t = t0; t < t_end && !failed; t = now_ns()) {
    int progress = 0, rc = RPCNET_OK;
    for (int k = 0; k < 256; k++) {
      rc = rpcnet_call_send_timeout(call, msg, sizeof msg, 0);
      if (rc != RPCNET_OK) break;
      sent++;
      progress = 1;
    }
    if (rc != RPCNET_OK && rc != RPCNET_WOULD_BLOCK) {
      snprintf(res->error, sizeof res->error, "send: %s: %s", rpcnet_status_name(rc),
               rpcnet_last_error());
      failed = 1;
      break;
    }
    if (sent - got > max_in_flight) max_in_flight = sent - got;
    for (;;) {
      void *d = NULL;
      size_t len = 0;
      rc = rpcnet_call_recv(call, progress ? 0 : 2, &d, &len);
      if (rc != RPCNET_OK) break;
      if (len != sizeof msg || memcmp(d, msg, len) != 0) {
        snprintf(res->error, sizeof res->error, "wrong echo (%zu bytes)", len);
        failed = 1;
      }
      rpcnet_free(d);
      got++;
      progress = 1;
      if (now_ns() >= t_measure) counted++;
    }
    if (rc != RPCNET_WOULD_BLOCK && !failed) {
      const char *m = "";
      int st = rpcnet_call_status(call, &m);
      snprintf(res->error, sizeof res->error, "recv: %s, call %s: %s", rpcnet_status_name(rc),
               rpcnet_status_name(st), m);
      failed = 1;
    }
  }
  uint64_t t1 = now_ns();
  res->seconds = (double)(t1 - t_measure) / 1e9;
  res->count = counted;
  res->per_s = (double)counted / res->seconds;
  res->in_flight = (int)(max_in_flight > 1000000000 ? 1000000000 : max_in_flight);
  if (failed) res->errors++;
  if (end_call(call, res->error, sizeof res->error) != 0) res->errors++;
  rpcnet_call_free(call);
  return 0;
}

struct stream_result {
  const char *name;
  uint64_t bytes, moved;
  double seconds, cpu_s, mb_per_s, cpu_s_per_gb;
  uint64_t errors;
  char error[200];
};

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One call moving opt.stream_bytes in STREAM_MSG messages: client to server
 * (upload = 1, method stream.sink) or server to client (stream.source). */
static void bench_stream_bulk(rpcnet_client *cli, int upload, struct stream_result *res) {
  *res = (struct stream_result){
      .name = upload ? "rpcnet 1 call client->server" : "rpcnet 1 call server->client",
      .bytes = opt.stream_bytes};
  uint8_t *block = malloc(STREAM_MSG);
  if (!block) {
    res->errors = 1;
    snprintf(res->error, sizeof res->error, "out of memory");
    return;
  }
  for (size_t i = 0; i < STREAM_MSG; i++) block[i] = (uint8_t)(i * 7 + 1);
  double cpu0 = cpu_seconds();
  uint64_t t0 = now_ns();
  rpcnet_call *call = rpcnet_client_start(cli, upload ? "stream.sink" : "stream.source",
                                          long_timeout_ms(res->bytes));
  int rc = call ? RPCNET_OK : RPCNET_INTERNAL;
  void *d = NULL;
  size_t len = 0;
  if (call && upload) {
    for (uint64_t off = 0; off < res->bytes && rc == RPCNET_OK; off += STREAM_MSG) {
      size_t n = res->bytes - off < STREAM_MSG ? (size_t)(res->bytes - off) : STREAM_MSG;
      rc = rpcnet_call_send(call, block, n);
    }
    if (rc == RPCNET_OK) rc = rpcnet_call_close_send(call);
    if (rc == RPCNET_OK) rc = rpcnet_call_recv(call, -1, &d, &len);
    if (rc == RPCNET_OK) res->moved = len == 8 ? get_u64(d) : 0;
    rpcnet_free(d);
    if (rc == RPCNET_OK) rc = rpcnet_call_recv(call, -1, &d, &len);
  } else if (call) {
    uint8_t req[8];
    put_u64(req, res->bytes);
    rc = rpcnet_call_send(call, req, 8);
    if (rc == RPCNET_OK) rc = rpcnet_call_close_send(call);
    while (rc == RPCNET_OK && (rc = rpcnet_call_recv(call, -1, &d, &len)) == RPCNET_OK) {
      res->moved += len;
      rpcnet_free(d);
    }
  }
  uint64_t t1 = now_ns();
  double cpu1 = cpu_seconds();
  const char *m = "";
  int st = call ? rpcnet_call_status(call, &m) : RPCNET_INTERNAL;
  if (!call) {
    snprintf(res->error, sizeof res->error, "start: %s", rpcnet_last_error());
  } else if (rc != RPCNET_END_OF_STREAM || st != RPCNET_OK) {
    snprintf(res->error, sizeof res->error, "%s, call %s: %s", rpcnet_status_name(rc),
             rpcnet_status_name(st), m);
  } else if (res->moved != res->bytes) {
    snprintf(res->error, sizeof res->error, "moved %llu of %llu bytes",
             (unsigned long long)res->moved, (unsigned long long)res->bytes);
  }
  if (res->error[0]) res->errors = 1;
  rpcnet_call_free(call);
  free(block);
  res->seconds = (double)(t1 - t0) / 1e9;
  res->cpu_s = cpu1 - cpu0;
  res->mb_per_s = (double)res->moved / 1e6 / res->seconds;
  res->cpu_s_per_gb = res->moved ? res->cpu_s / ((double)res->moved / 1e9) : NAN;
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

/* A figure, or "-" when it does not apply (NaN). */
static const char *fmt_fig(char *out, size_t n, const char *fmt, double x) {
  if (isfinite(x))
    snprintf(out, n, fmt, x);
  else
    snprintf(out, n, "-");
  return out;
}

static void print_table(const struct result *udp, const struct result *r, int nr,
                        const struct result *sr, int nsr, const struct stream_result *bulk,
                        int nbulk) {
  printf("rpcnet %s benchmark: loopback, server and clients in one process, %s\n", rpcnet_version(),
         opt.quick ? "QUICK mode (figures are rough)" : "default mode");
  printf("%.1f s measured per figure after %.1f s warm-up; latency = round trip of one call\n",
         opt.seconds, opt.warmup);
  printf(
      "ratios: latency / UDP p50, throughput / UDP round trips per second (UDP threads pinned\n"
      "to two cores: rpcnet's caller and I/O thread also run on two)\n\n");
  printf("%-32s %8s %10s %10s %12s %9s %9s %9s %7s\n", "figure", "payload", "p50 us", "p99 us",
         "per second", "p50/udp", "p99/udp", "tput/udp", "errors");
  printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.2f %7llu\n",
         "UDP ping-pong, 2 cores (base)", "64 B", udp->p50_us, udp->p99_us, udp->per_s, 1.0,
         udp->p99_us / udp->p50_us, 1.0, (unsigned long long)udp->errors);
  if (udp_same_core)
    printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.2f %7llu\n",
           "UDP ping-pong, 1 core (ref)", "64 B", udp_same_core->p50_us, udp_same_core->p99_us,
           udp_same_core->per_s, udp_same_core->p50_us / udp->p50_us,
           udp_same_core->p99_us / udp->p50_us, udp_same_core->per_s / udp->per_s,
           (unsigned long long)udp_same_core->errors);
  for (int i = 0; i < nr; i++) {
    char name[64], pl[32];
    snprintf(name, sizeof name, "rpcnet %d conn x %d in flight", r[i].conns, r[i].in_flight);
    fmt_payload(pl, sizeof pl, r[i].payload);
    printf("%-32s %8s %10.1f %10.1f %12.0f %9.2f %9.2f %9.3f %7llu\n", name, pl, r[i].p50_us,
           r[i].p99_us, r[i].per_s, r[i].p50_us / udp->p50_us, r[i].p99_us / udp->p50_us,
           r[i].per_s / udp->per_s, (unsigned long long)r[i].errors);
  }
  for (int i = 0; i < nsr; i++) {
    char pl[32], a[16], b[16], c[16], d[16];
    fmt_payload(pl, sizeof pl, sr[i].payload);
    printf("%-32s %8s %10s %10s %12.0f %9s %9s %9.3f %7llu\n", sr[i].name, pl,
           fmt_fig(a, sizeof a, "%.1f", sr[i].p50_us), fmt_fig(b, sizeof b, "%.1f", sr[i].p99_us),
           sr[i].per_s, fmt_fig(c, sizeof c, "%.2f", sr[i].p50_us / udp->p50_us),
           fmt_fig(d, sizeof d, "%.2f", sr[i].p99_us / udp->p50_us), sr[i].per_s / udp->per_s,
           (unsigned long long)sr[i].errors);
  }
  for (int i = 0; i < nr; i++)
    if (r[i].errors)
      printf("errors in %d conn x %d, %zu B: %llu, e.g. %s\n", r[i].conns, r[i].in_flight,
             r[i].payload, (unsigned long long)r[i].errors, r[i].error);
  for (int i = 0; i < nsr; i++)
    if (sr[i].errors)
      printf("errors in %s: %llu, e.g. %s\n", sr[i].name, (unsigned long long)sr[i].errors,
             sr[i].error);
  if (nsr)
    printf(
        "bidi rows: one streaming call (rpcnet_client_start) echoed by a server thread;\n"
        "ping-pong = 1 message in flight, pipelined = sent as fast as backpressure allows\n"
        "(up to %d in flight), per second = echoes received\n",
        sr[nsr - 1].in_flight);
  if (!nbulk) return;
  printf(
      "\nstreaming throughput: one call, %d KiB messages, %.0f MiB each way; CPU = user+sys\n"
      "of the whole process (server and client), per 10^9 bytes moved\n\n",
      STREAM_MSG / 1024, (double)bulk[0].bytes / (1024.0 * 1024.0));
  printf("%-32s %10s %10s %10s %10s %10s %7s\n", "figure", "MiB", "seconds", "MB/s", "CPU s",
         "CPU s/GB", "errors");
  for (int i = 0; i < nbulk; i++) {
    char e[16];
    printf("%-32s %10.0f %10.2f %10.1f %10.2f %10s %7llu\n", bulk[i].name,
           (double)bulk[i].moved / (1024.0 * 1024.0), bulk[i].seconds, bulk[i].mb_per_s,
           bulk[i].cpu_s, fmt_fig(e, sizeof e, "%.2f", bulk[i].cpu_s_per_gb),
           (unsigned long long)bulk[i].errors);
  }
  for (int i = 0; i < nbulk; i++)
    if (bulk[i].errors) printf("errors in %s: %s\n", bulk[i].name, bulk[i].error);
}

static double jnum(double x) { return isfinite(x) ? x : -1; }

static void print_json(const struct result *udp, const struct result *r, int nr,
                       const struct result *sr, int nsr, const struct stream_result *bulk,
                       int nbulk) {
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
  printf("],\"stream\":{\"bidi\":[");
  for (int i = 0; i < nsr; i++) {
    printf(
        "%s{\"name\":\"%s\",\"payload\":%zu,\"max_in_flight\":%d,\"p50_us\":%.3f,"
        "\"p99_us\":%.3f,\"messages_per_s\":%.1f,\"count\":%llu,\"errors\":%llu,"
        "\"p50_over_udp_p50\":%.3f,\"p99_over_udp_p50\":%.3f,\"messages_per_s_over_udp\":%.4f}",
        i ? "," : "", sr[i].name, sr[i].payload, sr[i].in_flight, jnum(sr[i].p50_us),
        jnum(sr[i].p99_us), jnum(sr[i].per_s), (unsigned long long)sr[i].count,
        (unsigned long long)sr[i].errors, jnum(sr[i].p50_us / udp->p50_us),
        jnum(sr[i].p99_us / udp->p50_us), jnum(sr[i].per_s / udp->per_s));
  }
  printf("],\"bulk\":[");
  for (int i = 0; i < nbulk; i++)
    printf(
        "%s{\"name\":\"%s\",\"message_size\":%d,\"bytes\":%llu,\"moved\":%llu,"
        "\"seconds\":%.3f,\"mb_per_s\":%.1f,\"cpu_s\":%.3f,\"cpu_s_per_gb\":%.3f,"
        "\"errors\":%llu}",
        i ? "," : "", bulk[i].name, STREAM_MSG, (unsigned long long)bulk[i].bytes,
        (unsigned long long)bulk[i].moved, jnum(bulk[i].seconds), jnum(bulk[i].mb_per_s),
        jnum(bulk[i].cpu_s), jnum(bulk[i].cpu_s_per_gb), (unsigned long long)bulk[i].errors);
  printf("]}}\n");
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
    } else if (strcmp(a, "--stream-bytes") == 0 && has) {
      char *end = NULL;
      const char *v = argv[++i];
      unsigned long long n = strtoull(v, &end, 10);
      if (end && (*end == 'k' || *end == 'K'))
        n <<= 10, end++;
      else if (end && (*end == 'm' || *end == 'M'))
        n <<= 20, end++;
      else if (end && (*end == 'g' || *end == 'G'))
        n <<= 30, end++;
      if (end == v || *end || n == 0 || v[0] == '-' || n > (1ull << 40)) {
        fprintf(stderr, "rpcnet_bench: bad --stream-bytes %s (want bytes, e.g. 1g)\n", v);
        return 2;
      }
      opt.stream_bytes = n;
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
  if (!opt.stream_bytes) opt.stream_bytes = opt.quick ? STREAM_BYTES_QUICK : STREAM_BYTES_DEFAULT;
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
      rpcnet_server_handle_stream(srv, "stream.echo", NULL, NULL) != RPCNET_OK ||
      rpcnet_server_handle_stream(srv, "stream.sink", NULL, NULL) != RPCNET_OK ||
      rpcnet_server_handle_stream(srv, "stream.source", NULL, NULL) != RPCNET_OK ||
      rpcnet_server_listen(srv, "127.0.0.1:0") != RPCNET_OK) {
    fprintf(stderr, "rpcnet_bench: server: %s\n", rpcnet_last_error());
    rpcnet_server_free(srv);
    cleanup_pki();
    return 1;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", rpcnet_server_port(srv));
  pthread_t stream_servers[STREAM_SERVERS];
  int nstream_servers = 0;
  while (nstream_servers < STREAM_SERVERS &&
         pthread_create(&stream_servers[nstream_servers], NULL, stream_server_main, srv) == 0)
    nstream_servers++;

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

  /* Streaming: 64 B on one bidirectional call, then bulk each way. */
  struct result sres[2];
  struct stream_result bulk[2];
  int nsr = 0, nbulk = 0;
  rpcnet_client *scli = bench_client(addr);
  if (!scli) status = 1;
  if (scli) {
    if (!opt.json) fprintf(stderr, "measuring rpcnet 1 call bidi ping-pong, 64 B...\n");
    bench_stream_pingpong(scli, &sres[nsr++]);
    if (!opt.json) fprintf(stderr, "measuring rpcnet 1 call bidi pipelined, 64 B...\n");
    bench_stream_pipelined(scli, &sres[nsr++]);
    for (int up = 1; up >= 0; up--) {
      if (!opt.json)
        fprintf(stderr, "measuring rpcnet 1 call streaming %llu bytes %s...\n",
                (unsigned long long)opt.stream_bytes, up ? "client->server" : "server->client");
      bench_stream_bulk(scli, up, &bulk[nbulk++]);
    }
    rpcnet_client_close(scli);
  }
  for (int i = 0; i < nsr; i++)
    if (sres[i].errors) status = 1;
  for (int i = 0; i < nbulk; i++)
    if (bulk[i].errors) status = 1;

  rpcnet_server_shutdown(srv, 1000);
  for (int i = 0; i < nstream_servers; i++) pthread_join(stream_servers[i], NULL);
  rpcnet_server_free(srv);
  cleanup_pki();

  if (opt.json)
    print_json(&udp, res, nr, sres, nsr, bulk, nbulk);
  else
    print_table(&udp, res, nr, sres, nsr, bulk, nbulk);
  if (udp.errors) status = 1;
  return status;
}
