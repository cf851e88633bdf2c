/*
 * Many threads calling on one client at once: 64 threads x 500 calls, every
 * answer checked against its unique request, and all calls carried by a
 * single QUIC connection (every request the server sees has the same peer
 * address and port).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

#define THREADS 64
#define CALLS 500
#define MAX_PEERS 16

/* Distinct peers seen by the server. */
static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static char peers[MAX_PEERS][256];
static int npeers;
static _Atomic long served;

static void note_peer(const char *peer) {
  pthread_mutex_lock(&peers_mu);
  int found = 0;
  for (int i = 0; i < npeers && !found; i++) found = strcmp(peers[i], peer) == 0;
  if (!found && npeers < MAX_PEERS) snprintf(peers[npeers++], sizeof peers[0], "%s", peer);
  pthread_mutex_unlock(&peers_mu);
}

static void echo_handler(rpcnet_request *req, void *user) {
  (void)user;
  const char *peer = rpcnet_request_peer(req);
  note_peer(peer ? peer : "(null)");
  served++;
  size_t len;
  const void *data = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, data, len);
}

struct worker {
  rpcnet_client *cli;
  int id;
  int ok, failed, mismatched;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint8_t req[600];
  for (int i = 0; i < CALLS; i++) {
    /* Unique: a header naming thread and call, then a pattern of a length
     * that varies with the call (NUL bytes included). */
    int h = snprintf((char *)req, sizeof req, "t%02d-c%03d:", w->id, i);
    size_t len = (size_t)h + (size_t)((w->id * 37 + i * 11) % 500);
    tu_fill(req + h, len - (size_t)h, (uint32_t)(w->id * 100000 + i));
    void *resp = NULL;
    size_t resp_len = 0;
    int rc = rpcnet_client_call(w->cli, "echo", req, len, &resp, &resp_len, 60000);
    if (rc != RPCNET_OK) {
      if (w->failed++ < 3)
        fprintf(stderr, "thread %d call %d: %s: %s\n", w->id, i, rpcnet_status_name(rc),
                rpcnet_last_error());
    } else if (!resp || resp_len != len || memcmp(resp, req, len) != 0) {
      if (w->mismatched++ < 3)
        fprintf(stderr, "thread %d call %d: wrong answer (%zu bytes, want %zu)\n", w->id, i,
                resp_len, len);
    } else {
      w->ok++;
    }
    rpcnet_free(resp);
  }
  return NULL;
}

static void test_64_threads_one_connection(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(srv);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "echo", echo_handler, NULL), RPCNET_OK);
  rpcnet_client *cli = tu_client_for(srv);
  if (!cli) rpcnet_server_free(srv);
  REQUIRE(cli);

  static struct worker w[THREADS];
  pthread_t th[THREADS];
  int64_t t0 = tu_now_ms();
  int started = 0;
  for (int i = 0; i < THREADS; i++) {
    w[i] = (struct worker){.cli = cli, .id = i};
    if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) break;
    started++;
  }
  CHECK_EQ_INT(started, THREADS);
  int ok = 0, failed = 0, mismatched = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    ok += w[i].ok;
    failed += w[i].failed;
    mismatched += w[i].mismatched;
  }
  int64_t ms = tu_now_ms() - t0;
  fprintf(stderr, "%d calls: %d ok, %d failed, %d wrong answers in %lld ms (%.0f calls/s)\n",
          THREADS * CALLS, ok, failed, mismatched, (long long)ms,
          ms > 0 ? 1000.0 * ok / (double)ms : 0.0);
  CHECK_EQ_INT(ok, THREADS * CALLS);
  CHECK_EQ_INT(failed, 0);
  CHECK_EQ_INT(mismatched, 0);
  CHECK_EQ_INT(served, THREADS * CALLS);

  pthread_mutex_lock(&peers_mu);
  for (int i = 0; i < npeers; i++) fprintf(stderr, "peer seen by the server: %s\n", peers[i]);
  CHECK_EQ_INT(npeers, 1); /* one connection: one client address and port */
  if (npeers >= 1) CHECK(strncmp(peers[0], "127.0.0.1:", 10) == 0);
  pthread_mutex_unlock(&peers_mu);

  rpcnet_client_close(cli);
  rpcnet_server_free(srv);
}

int main(void) {
  tu_pki_dir_locked();
  RUN(test_64_threads_one_connection);
  return TEST_END();
}
