/*
 * cluster_worker: an rpcnet server that joins a cluster and serves "work".
 *
 *   cluster_worker --name NAME --cert F --key F --ca F
 *                  [--gossip HOST:PORT] [--listen HOST:PORT] [--join SEEDS]
 *                  [--keys KEYS] [--tag k=v]... [--probe-ms N]
 *
 * Tags itself role=worker and lang=<lang> (C by default), plus every --tag.
 * Methods:
 *   work    answers "<lang>:<name>:" followed by the request
 *   whoami  answers the node name
 *
 * Prints "ready NAME gossip PORT rpc PORT" once joined, then one line per
 * membership event ("event TYPE MEMBER STATE"), flushed at once, so a script
 * can follow it. Commands on stdin, one per line:
 *   tag K=V      sets a tag (gossiped)
 *   untag K      removes it
 *   members      prints "member NAME STATE" lines and "members end"
 *   leave        leaves gracefully and exits
 * SIGTERM and SIGINT also leave gracefully; EOF on stdin is ignored.
 */
#include <poll.h>
#include <rpcnet/rpcnet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "member_list.h"

static char g_name[80];
static char g_lang[32] = "c";

static void work(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *data = rpcnet_request_data(req, &len);
  size_t plen = strlen(g_lang) + strlen(g_name) + 2;
  char *out = malloc(plen + len + 1);
  if (!out) {
    rpcnet_request_fail(req, RPCNET_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  snprintf(out, plen + 1, "%s:%s:", g_lang, g_name);
  memcpy(out + plen, data, len);
  rpcnet_request_reply(req, out, plen + len);
  free(out);
}

static void whoami(rpcnet_request *req, void *user) {
  (void)user;
  rpcnet_request_reply(req, g_name, strlen(g_name));
}

static int die(const char *what) {
  fprintf(stderr, "cluster_worker: %s: %s\n", what, rpcnet_last_error());
  return 1;
}

static void print_events(rpcnet_cluster *cl) {
  void *ev;
  size_t len;
  while (rpcnet_cluster_next_event(cl, 0, &ev, &len) == RPCNET_OK) {
    cw_event e;
    if (cw_parse_event(ev, len, &e) == 0) printf("event %s %s %s\n", e.type, e.name, e.state);
    rpcnet_free(ev);
  }
  fflush(stdout);
}

static int command(rpcnet_cluster *cl, char *line) {
  line[strcspn(line, "\r\n")] = 0;
  if (!strncmp(line, "tag ", 4)) {
    char *eq = strchr(line + 4, '=');
    if (!eq) return 0;
    *eq = 0;
    if (rpcnet_cluster_set_tag(cl, line + 4, eq + 1) != RPCNET_OK) die("set_tag");
    printf("tagged %s=%s\n", line + 4, eq + 1);
  } else if (!strncmp(line, "untag ", 6)) {
    rpcnet_cluster_set_tag(cl, line + 6, NULL);
  } else if (!strcmp(line, "members")) {
    void *cbor;
    size_t len;
    if (rpcnet_cluster_members(cl, NULL, &cbor, &len) == RPCNET_OK) {
      cw_print_members(cbor, len, stdout);
      rpcnet_free(cbor);
    }
    printf("members end\n");
  } else if (!strcmp(line, "leave")) {
    return 1;
  }
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  const char *cert = NULL, *key = NULL, *ca = NULL, *gossip = "127.0.0.1:0",
             *listen = "127.0.0.1:0", *join = NULL, *keys = NULL, *probe = NULL;
  const char *tags[16];
  int ntags = 0;
  snprintf(g_name, sizeof g_name, "worker-%d", (int)getpid());
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "cluster_worker: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--name"))
      snprintf(g_name, sizeof g_name, "%s", v);
    else if (!strcmp(a, "--cert"))
      cert = v;
    else if (!strcmp(a, "--key"))
      key = v;
    else if (!strcmp(a, "--ca"))
      ca = v;
    else if (!strcmp(a, "--gossip"))
      gossip = v;
    else if (!strcmp(a, "--listen"))
      listen = v;
    else if (!strcmp(a, "--join"))
      join = v;
    else if (!strcmp(a, "--keys"))
      keys = v;
    else if (!strcmp(a, "--probe-ms"))
      probe = v;
    else if (!strcmp(a, "--lang"))
      snprintf(g_lang, sizeof g_lang, "%s", v);
    else if (!strcmp(a, "--tag") && ntags < 16)
      tags[ntags++] = v;
    else {
      fprintf(stderr, "cluster_worker: unexpected argument %s\n", a);
      return 2;
    }
  }
  if (!cert || !key || !ca) {
    fprintf(stderr, "usage: cluster_worker --name N --cert F --key F --ca F [...]\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  int sfd = signalfd(-1, &stop, SFD_CLOEXEC);

  rpcnet_config *cfg = rpcnet_config_new();
  rpcnet_config_set(cfg, "cert_file", cert);
  rpcnet_config_set(cfg, "key_file", key);
  rpcnet_config_set(cfg, "ca_file", ca);
  rpcnet_config_set(cfg, "server_name", "localhost");
  rpcnet_config_set(cfg, "node_name", g_name);
  rpcnet_config_set(cfg, "gossip_bind", gossip);
  if (keys && rpcnet_config_set(cfg, "cluster_keys", keys) != RPCNET_OK) return die("keys");
  if (probe && rpcnet_config_set(cfg, "probe_interval_ms", probe) != RPCNET_OK) return die("probe");
  rpcnet_server *srv = rpcnet_server_new(cfg);
  if (!srv) return die("server");
  rpcnet_server_handle(srv, "work", work, NULL);
  rpcnet_server_handle(srv, "whoami", whoami, NULL);
  if (rpcnet_server_listen(srv, listen) != RPCNET_OK) return die("listen");
  rpcnet_cluster *cl = rpcnet_cluster_new(cfg);
  if (!cl) return die("cluster");
  rpcnet_config_free(cfg);
  if (rpcnet_cluster_attach_server(cl, srv) != RPCNET_OK) return die("attach");
  rpcnet_cluster_set_tag(cl, "role", "worker");
  rpcnet_cluster_set_tag(cl, "lang", g_lang);
  for (int i = 0; i < ntags; i++) {
    char kv[256];
    snprintf(kv, sizeof kv, "%s", tags[i]);
    char *eq = strchr(kv, '=');
    if (!eq) continue;
    *eq = 0;
    if (rpcnet_cluster_set_tag(cl, kv, eq + 1) != RPCNET_OK) return die("tag");
  }
  if (join && *join) {
    int rc = rpcnet_cluster_join(cl, join);
    if (rc != RPCNET_OK) {
      fprintf(stderr, "cluster_worker: join failed: %s: %s\n", rpcnet_status_name(rc),
              rpcnet_last_error());
      rpcnet_cluster_free(cl);
      rpcnet_server_free(srv);
      return 3;
    }
  }
  printf("ready %s gossip %d rpc %d\n", g_name, rpcnet_cluster_gossip_port(cl),
         rpcnet_server_port(srv));
  fflush(stdout);

  struct pollfd p[3] = {{.fd = rpcnet_cluster_fd(cl), .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = 0, .events = POLLIN}};
  char line[512];
  int quit = 0;
  while (!quit) {
    poll(p, 3, 1000);
    if (p[0].revents) print_events(cl);
    if (p[1].revents) quit = 1;
    if (p[2].revents & POLLIN) {
      if (!fgets(line, sizeof line, stdin))
        p[2].fd = -1; /* EOF: keep serving */
      else
        quit = command(cl, line);
    } else if (p[2].revents) {
      p[2].fd = -1;
    }
  }
  int rc = rpcnet_cluster_leave(cl, 2000);
  printf("left %s\n", rpcnet_status_name(rc));
  fflush(stdout);
  rpcnet_cluster_free(cl);
  rpcnet_server_shutdown(srv, 1000);
  rpcnet_server_free(srv);
  close(sfd);
  return 0;
}
