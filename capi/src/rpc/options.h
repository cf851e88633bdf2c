/*
 * rpci_options: the parsed form of an rpcnet_config. Clients and servers
 * copy it at creation, so later changes to the config do not reach them.
 *
 * Design notes: plain data; the strings are owned by the options value and
 * released by rpci_options_free. No locking: a value is written by one
 * thread (the one building it) and only read afterwards.
 */
#ifndef RPCI_RPC_OPTIONS_H
#define RPCI_RPC_OPTIONS_H

#include <stdint.h>

typedef struct rpci_options {
  char *cert_file, *key_file, *ca_file;
  char *cert_pem, *key_pem, *ca_pem;
  char *server_name;
  int verify_peer;
  int require_client_cert;
  int64_t idle_timeout_ms;
  int64_t keep_alive_ms; /* < 0: the role's default */
  int64_t handshake_timeout_ms;
  int64_t default_timeout_ms;
  uint64_t max_concurrent_streams;
  uint64_t max_message_size;
  int io_threads;
  /* Cluster (rpcnet_cluster_new); 0 / NULL: the defaults. */
  char *node_name, *gossip_bind, *gossip_advertise, *rpc_advertise, *cluster_keys;
  char *cluster_strategy;
  int64_t probe_interval_ms, probe_timeout_ms, gossip_interval_ms, sync_interval_ms, reap_ms;
  int64_t join_timeout_ms;
  int suspicion_mult;
  int lifeguard; /* 1 on (default), 0 off */
  int cluster_retries;
  int hedge_percentile;
  int breaker_failures;
} rpci_options;

void rpci_options_default(rpci_options *o);
/* Deep copy. Returns 0, or -1 when out of memory (dst is then empty). */
int rpci_options_copy(rpci_options *dst, const rpci_options *src);
void rpci_options_free(rpci_options *o);

struct rpcnet_config;
/* A new config holding a deep copy of o (for a cluster creating clients).
 * Returns NULL when out of memory. */
struct rpcnet_config *rpci_config_from_options(const rpci_options *o);

struct rpcnet_config;
/* A private copy of cfg's options (the defaults when cfg is NULL), for a
 * client or server to keep. Returns 0, or -1 with rpci_set_error. */
int rpci_options_snapshot(rpci_options *dst, const struct rpcnet_config *cfg);

#endif
