/*
 * cluster_director: joins a cluster and spreads "work" calls over the
 * workers (idempotent calls: retried on another worker when one is gone).
 *
 *   cluster_director --ca F --join SEEDS [--name N] [--gossip HOST:PORT]
 *                    [--keys KEYS] [--filter role=worker] [--expect N]
 *                    [--calls N] [--interval-ms MS] [--log-calls]
 *                    [--strategy p2c|round_robin|random|least_connections]
 *
 * Waits until --expect members match the filter, then makes --calls calls
 * (0: until stdin says "quit" or SIGTERM), one every --interval-ms. With
 * --log-calls prints "call MS STATUS MEMBER" per call (MS since the first
 * call). Membership events print as "event TYPE MEMBER STATE". At the end:
 * "served MEMBER COUNT" per member, "lang LANG COUNT" per worker language
 * and "failed COUNT". Exit status 0 when no call failed.
 */
#include <poll.h>
#include <rpcnet/rpcnet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "member_list.h"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct tally {
  char key[80];
  long count;
} tally;

static void count(tally *t, int *n, int max, const char *key) {
  for (int i = 0; i < *n; i++)
    if (!strcmp(t[i].key, key)) {
      t[i].count++;
      return;
    }
  if (*n < max) {
    snprintf(t[*n].key, sizeof t[*n].key, "%s", key);
    t[(*n)++].count = 1;
  }
}

static void drain_events(rpcnet_cluster *cl) {
  void *ev;
  size_t len;
  while (rpcnet_cluster_next_event(cl, 0, &ev, &len) == RPCNET_OK) {
    cw_event e;
    if (cw_parse_event(ev, len, &e) == 0) printf("event %s %s %s\n", e.type, e.name, e.state);
    rpcnet_free(ev);
  }
}

int main(int argc, char **argv) {
  const char *ca = NULL, *join = NULL, *name = "director", *gossip = "127.0.0.1:0", *keys = NULL,
             *filter = "role=worker", *strategy = NULL;
  int expect = 1, log_calls = 0;
  long calls = 100, interval = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--log-calls")) {
      log_calls = 1;
      continue;
    }
    const char *v = i + 1 < argc ? argv[++i] : NULL;
    if (!v) {
      fprintf(stderr, "cluster_director: %s needs a value\n", a);
      return 2;
    }
    if (!strcmp(a, "--ca"))
      ca = v;
    else if (!strcmp(a, "--join"))
      join = v;
    else if (!strcmp(a, "--name"))
      name = v;
    else if (!strcmp(a, "--gossip"))
      gossip = v;
    else if (!strcmp(a, "--keys"))
      keys = v;
    else if (!strcmp(a, "--filter"))
      filter = v;
    else if (!strcmp(a, "--strategy"))
      strategy = v;
    else if (!strcmp(a, "--expect"))
      expect = atoi(v);
    else if (!strcmp(a, "--calls"))
      calls = atol(v);
    else if (!strcmp(a, "--interval-ms"))
      interval = atol(v);
    else {
      fprintf(stderr, "cluster_director: unexpected argument %s\n", a);
      return 2;
    }
  }
  if (!ca || !join) {
    fprintf(stderr, "usage: cluster_director --ca F --join SEEDS [...]\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  int sfd = signalfd(-1, &stop, SFD_CLOEXEC);

  rpcnet_config *cfg = rpcnet_config_new();
  rpcnet_config_set(cfg, "ca_file", ca);
  rpcnet_config_set(cfg, "server_name", "localhost");
  rpcnet_config_set(cfg, "node_name", name);
  rpcnet_config_set(cfg, "gossip_bind", gossip);
  if (keys) rpcnet_config_set(cfg, "cluster_keys", keys);
  if (strategy && rpcnet_config_set(cfg, "cluster_strategy", strategy) != RPCNET_OK) return 2;
  rpcnet_cluster *cl = rpcnet_cluster_new(cfg);
  rpcnet_config_free(cfg);
  if (!cl) {
    fprintf(stderr, "cluster_director: %s\n", rpcnet_last_error());
    return 1;
  }
  int rc = rpcnet_cluster_join(cl, join);
  if (rc != RPCNET_OK) {
    fprintf(stderr, "cluster_director: join failed: %s: %s\n", rpcnet_status_name(rc),
            rpcnet_last_error());
    rpcnet_cluster_free(cl);
    return 3;
  }
  /* Wait for the workers. */
  for (int tries = 0;; tries++) {
    void *cbor;
    size_t len;
    int alive = 0;
    if (rpcnet_cluster_members(cl, filter, &cbor, &len) == RPCNET_OK) {
      alive = cw_print_members(cbor, len, NULL);
      rpcnet_free(cbor);
    }
    if (alive >= expect) break;
    if (tries == 300) {
      fprintf(stderr, "cluster_director: only %d of %d workers after 30 s\n", alive, expect);
      rpcnet_cluster_free(cl);
      return 4;
    }
    usleep(100000);
  }
  printf("ready %s\n", name);
  fflush(stdout);

  tally served[64], langs[16];
  int nserved = 0, nlangs = 0;
  long failed = 0;
  long long t0 = now_ms();
  char line[256];
  for (long i = 0; calls == 0 || i < calls; i++) {
    char body[32], member[80];
    snprintf(body, sizeof body, "job-%ld", i);
    void *resp = NULL;
    size_t resp_len = 0;
    rc = rpcnet_cluster_call_ex(cl, filter, "work", body, strlen(body), &resp, &resp_len, 2000,
                                RPCNET_CALL_IDEMPOTENT, member, sizeof member);
    if (rc == RPCNET_OK) {
      count(served, &nserved, 64, member);
      char lang[32] = "?";
      const char *colon = memchr(resp, ':', resp_len);
      if (colon && (size_t)(colon - (char *)resp) < sizeof lang) {
        memcpy(lang, resp, (size_t)(colon - (char *)resp));
        lang[colon - (char *)resp] = 0;
      }
      count(langs, &nlangs, 16, lang);
    } else {
      failed++;
    }
    if (log_calls)
      printf("call %lld %s %s%s%s\n", now_ms() - t0, rpcnet_status_name(rc),
             member[0] ? member : "-", rc ? " " : "", rc ? rpcnet_last_error() : "");
    rpcnet_free(resp);
    struct pollfd p[3] = {{.fd = rpcnet_cluster_fd(cl), .events = POLLIN},
                          {.fd = sfd, .events = POLLIN},
                          {.fd = 0, .events = POLLIN}};
    poll(p, 3, (int)interval);
    if (p[0].revents) drain_events(cl);
    if (p[1].revents) break;
    if ((p[2].revents & POLLIN) && fgets(line, sizeof line, stdin) && !strncmp(line, "quit", 4))
      break;
    fflush(stdout);
  }
  for (int i = 0; i < nserved; i++) printf("served %s %ld\n", served[i].key, served[i].count);
  for (int i = 0; i < nlangs; i++) printf("lang %s %ld\n", langs[i].key, langs[i].count);
  printf("failed %ld\n", failed);
  fflush(stdout);
  rpcnet_cluster_leave(cl, 1000);
  rpcnet_cluster_free(cl);
  close(sfd);
  return failed ? 1 : 0;
}
