/*
 * rpcnet_config: string keys parsed into rpci_options.
 *
 * Design notes: one table lists every key with its parser, so adding a key
 * is one line. The config is not locked (see the header's contract).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "rpc/options.h"
#include "rpcnet/rpcnet.h"

struct rpcnet_config {
  rpci_options o;
};

void rpci_options_default(rpci_options *o) {
  memset(o, 0, sizeof *o);
  o->verify_peer = 1;
  o->idle_timeout_ms = 30000;
  o->keep_alive_ms = -1;
  o->handshake_timeout_ms = 5000;
  o->default_timeout_ms = 30000;
  o->max_concurrent_streams = 1024;
  o->max_message_size = 16u << 20;
  o->io_threads = 0;
  o->lifeguard = 1;
  o->cluster_retries = 2;
  o->hedge_percentile = 95;
  o->breaker_failures = 5;
  o->join_timeout_ms = 5000;
}

static int dup_str(char **dst, const char *src) {
  *dst = NULL;
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : -1;
}

int rpci_options_copy(rpci_options *dst, const rpci_options *src) {
  *dst = *src;
  char **d[] = {&dst->cert_file,        &dst->key_file,      &dst->ca_file,
                &dst->cert_pem,         &dst->key_pem,       &dst->ca_pem,
                &dst->server_name,      &dst->node_name,     &dst->gossip_bind,
                &dst->gossip_advertise, &dst->rpc_advertise, &dst->cluster_keys,
                &dst->cluster_strategy};
  char *const s[] = {src->cert_file,        src->key_file,      src->ca_file,
                     src->cert_pem,         src->key_pem,       src->ca_pem,
                     src->server_name,      src->node_name,     src->gossip_bind,
                     src->gossip_advertise, src->rpc_advertise, src->cluster_keys,
                     src->cluster_strategy};
  int rc = 0;
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) rc |= dup_str(d[i], s[i]);
  if (rc) {
    rpci_options_free(dst);
    rpci_options_default(dst);
    return -1;
  }
  return 0;
}

void rpci_options_free(rpci_options *o) {
  free(o->cert_file);
  free(o->key_file);
  free(o->ca_file);
  free(o->cert_pem);
  free(o->key_pem);
  free(o->ca_pem);
  free(o->server_name);
  free(o->node_name);
  free(o->gossip_bind);
  free(o->gossip_advertise);
  free(o->rpc_advertise);
  if (o->cluster_keys) explicit_bzero(o->cluster_keys, strlen(o->cluster_keys));
  free(o->cluster_keys);
  free(o->cluster_strategy);
  o->cert_file = o->key_file = o->ca_file = NULL;
  o->cert_pem = o->key_pem = o->ca_pem = o->server_name = NULL;
  o->node_name = o->gossip_bind = o->gossip_advertise = o->rpc_advertise = NULL;
  o->cluster_keys = o->cluster_strategy = NULL;
}

enum kind { K_STR, K_BOOL, K_MS, K_SIZE, K_INT };

static const struct key {
  const char *name;
  enum kind kind;
  size_t off;
  int64_t min, max;
} keys[] = {
#define OFF(f) offsetof(rpci_options, f)
    {"cert_file", K_STR, OFF(cert_file), 0, 0},
    {"key_file", K_STR, OFF(key_file), 0, 0},
    {"ca_file", K_STR, OFF(ca_file), 0, 0},
    {"cert_pem", K_STR, OFF(cert_pem), 0, 0},
    {"key_pem", K_STR, OFF(key_pem), 0, 0},
    {"ca_pem", K_STR, OFF(ca_pem), 0, 0},
    {"server_name", K_STR, OFF(server_name), 0, 0},
    {"verify_peer", K_BOOL, OFF(verify_peer), 0, 1},
    {"require_client_cert", K_BOOL, OFF(require_client_cert), 0, 1},
    {"idle_timeout_ms", K_MS, OFF(idle_timeout_ms), 1, 24LL * 3600 * 1000},
    {"keep_alive_ms", K_MS, OFF(keep_alive_ms), 0, 24LL * 3600 * 1000},
    {"handshake_timeout_ms", K_MS, OFF(handshake_timeout_ms), 1, 3600 * 1000},
    {"default_timeout_ms", K_MS, OFF(default_timeout_ms), 1, 365LL * 24 * 3600 * 1000},
    {"max_concurrent_streams", K_SIZE, OFF(max_concurrent_streams), 1, 1 << 20},
    {"max_message_size", K_SIZE, OFF(max_message_size), 1, 1LL << 30},
    {"io_threads", K_INT, OFF(io_threads), 1, 64},
    {"node_name", K_STR, OFF(node_name), 0, 0},
    {"gossip_bind", K_STR, OFF(gossip_bind), 0, 0},
    {"gossip_advertise", K_STR, OFF(gossip_advertise), 0, 0},
    {"rpc_advertise", K_STR, OFF(rpc_advertise), 0, 0},
    {"cluster_keys", K_STR, OFF(cluster_keys), 0, 0},
    {"cluster_strategy", K_STR, OFF(cluster_strategy), 0, 0},
    {"probe_interval_ms", K_MS, OFF(probe_interval_ms), 10, 3600 * 1000},
    {"probe_timeout_ms", K_MS, OFF(probe_timeout_ms), 5, 3600 * 1000},
    {"gossip_interval_ms", K_MS, OFF(gossip_interval_ms), 5, 3600 * 1000},
    {"sync_interval_ms", K_MS, OFF(sync_interval_ms), 0, 24LL * 3600 * 1000},
    {"reap_ms", K_MS, OFF(reap_ms), 1000, 7LL * 24 * 3600 * 1000},
    {"join_timeout_ms", K_MS, OFF(join_timeout_ms), 1, 3600 * 1000},
    {"suspicion_mult", K_INT, OFF(suspicion_mult), 1, 100},
    {"lifeguard", K_BOOL, OFF(lifeguard), 0, 1},
    {"cluster_retries", K_INT, OFF(cluster_retries), 0, 16},
    {"hedge_percentile", K_INT, OFF(hedge_percentile), 50, 99},
    {"breaker_failures", K_INT, OFF(breaker_failures), 1, 1000},
#undef OFF
};

rpcnet_config *rpcnet_config_new(void) {
  rpcnet_config *c = calloc(1, sizeof *c);
  if (c) rpci_options_default(&c->o);
  return c;
}

void rpcnet_config_free(rpcnet_config *c) {
  if (!c) return;
  rpci_options_free(&c->o);
  free(c);
}

int rpci_options_snapshot(rpci_options *dst, const rpcnet_config *cfg) {
  rpci_options def;
  rpci_options_default(&def);
  if (rpci_options_copy(dst, cfg ? &cfg->o : &def) != 0) {
    rpci_set_error("out of memory");
    return -1;
  }
  return 0;
}

rpcnet_config *rpci_config_from_options(const rpci_options *o) {
  rpcnet_config *c = calloc(1, sizeof *c);
  if (c && rpci_options_copy(&c->o, o) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static int parse_int(const char *v, int64_t *out) {
  if (!*v) return -1;
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || *end) return -1;
  *out = n;
  return 0;
}

static int parse_bool(const char *v, int64_t *out) {
  if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
    *out = 1;
  else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
    *out = 0;
  else
    return -1;
  return 0;
}

int rpcnet_config_set(rpcnet_config *c, const char *key, const char *value) {
  if (!c || !key) {
    rpci_set_error("rpcnet_config_set: NULL config or key");
    return RPCNET_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const struct key *k = &keys[i];
    if (strcmp(k->name, key)) continue;
    char *field = (char *)&c->o + k->off;
    if (k->kind == K_STR) {
      char *copy = NULL;
      if (value && *value && !(copy = strdup(value))) {
        rpci_set_error("config key '%s': out of memory", key);
        return RPCNET_RESOURCE_EXHAUSTED;
      }
      free(*(char **)field);
      *(char **)field = copy;
      return RPCNET_OK;
    }
    int64_t n;
    int bad = !value || (k->kind == K_BOOL ? parse_bool(value, &n) : parse_int(value, &n));
    if (bad || n < k->min || n > k->max) {
      rpci_set_error("config key '%s': bad value '%s' (%s in %lld..%lld)", key,
                     value ? value : "(null)", k->kind == K_BOOL ? "boolean" : "integer",
                     (long long)k->min, (long long)k->max);
      return RPCNET_INVALID_ARGUMENT;
    }
    switch (k->kind) {
      case K_BOOL:
      case K_INT:
        *(int *)field = (int)n;
        break;
      case K_MS:
        *(int64_t *)field = n;
        break;
      case K_SIZE:
        *(uint64_t *)field = (uint64_t)n;
        break;
      case K_STR:
        break;
    }
    return RPCNET_OK;
  }
  rpci_set_error("config key '%s' is unknown", key);
  return RPCNET_INVALID_ARGUMENT;
}
