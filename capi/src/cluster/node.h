/*
 * rpcnet_cluster: one cluster node, the I/O edges around the sans-I/O SWIM
 * core (swim.h), the keyring (seal.h) and the worker registry (route.h).
 *
 * Design notes
 * - One mutex (mu) guards the core, the keyring, the router, the event
 *   queue, the sync job queue and the join state. Every path that calls
 *   into the core ends with rpci_node_flush under mu, which seals and sends
 *   the datagrams the core queued, turns core events into public events
 *   (and router updates), hands push-pull jobs to the sync thread and
 *   re-arms the timer. So no output is ever left waiting.
 * - Threads: the gossip socket and the timer belong to one library I/O loop
 *   (gossip.c); application threads call in directly (tags, join, leave,
 *   members, calls) and send their own datagrams, as QUIC connections do;
 *   one sync thread per node runs push-pull RPCs, which block (sync.c); the
 *   attached server answers push-pulls inline on its I/O thread (sync.c).
 *   Nothing here ever calls into application code.
 * - Calls (call.c) take mu only to pick a member and to report the outcome;
 *   the RPC itself runs without locks on a pooled client (pool_mu guards
 *   the pool; it may be taken while mu is held, never the other way).
 * - Lifetime: rpcnet_cluster_free sets `closing`, stops the sync thread,
 *   stops the socket poll and timer on their loop (so no callback can run
 *   afterwards), then frees. The attached server must outlive the node; its
 *   sync handler is replaced by a refusal before the node goes.
 */
#ifndef RPCI_CLUSTER_NODE_H
#define RPCI_CLUSTER_NODE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "cluster/route.h"
#include "cluster/seal.h"
#include "cluster/swim.h"
#include "rpc/event.h"
#include "rpc/options.h"
#include "rpcnet/rpcnet.h"
#include "transport/loop.h"

#define RPCI_NODE_ADDR 80
#define RPCI_SYNC_METHOD "rpcnet.cluster/sync"
#define RPCI_EVQ_MAX 65536
#define RPCI_SYNCQ_MAX 64
#define RPCI_JOIN_SEEDS_MAX 32
#define RPCI_CLOSEQ_MAX 64
/* Datagrams stay at or under this, sealing included. */
#define RPCI_GOSSIP_MTU 1200

typedef struct rpci_blob {
  uint8_t *p;
  size_t len;
} rpci_blob;

typedef struct rpci_sync_job {
  char name[RPCI_SWIM_MAX_NAME + 1];
  char rpc_addr[RPCI_NODE_ADDR];
  int is_join;
} rpci_sync_job;

typedef struct rpci_pool_ent {
  char addr[RPCI_NODE_ADDR];
  rpcnet_client *cli;
  int refs;      /* users + 1 while in the pool (pool_mu) */
  int connected; /* cli made; else a thread is connecting (pool_mu) */
} rpci_pool_ent;

struct rpcnet_cluster {
  pthread_mutex_t mu;
  rpci_options opts;
  rpcnet_config *client_cfg; /* for pooled clients and push-pull calls */
  char name[RPCI_SWIM_MAX_NAME + 1];
  char gossip_adv[RPCI_NODE_ADDR];
  char rpc_adv[RPCI_NODE_ADDR];
  rpci_swim *core;
  rpci_keyring *kr;
  rpci_router *router;
  int closing, left;

  /* gossip I/O (gossip.c) */
  rpci_loop *loop;
  int fd;
  int family;
  int port;
  uv_poll_t poll;
  int polling;
  rpci_timer timer;
  int64_t armed_at; /* the timer's deadline, INT64_MIN when not armed */
  rpci_buf sealbuf;
  int64_t reject_window_ms; /* rate limit of key-mismatch notices */
  int rejects_in_window;

  /* events */
  rpci_event ev;
  int ev_fd;
  rpci_blob *evq;
  size_t evq_head, evq_len, evq_cap;
  uint64_t ev_dropped;

  /* push-pull (sync.c) */
  pthread_t sync_thr;
  int sync_started;
  pthread_cond_t sync_cv;
  rpci_sync_job syncq[RPCI_SYNCQ_MAX];
  size_t syncq_head, syncq_len;
  rpcnet_call *sync_call; /* the push-pull call running, for cancellation */
  rpcnet_server *srv;
  struct rpci_sync_gate *gate;

  /* join (node.c): generation of the current join attempt and its outcome */
  pthread_cond_t join_cv;
  uint64_t join_gen;
  int join_ok;
  char join_denied[256];               /* a seed refused our key: why */
  char (*rejected_by)[RPCI_NODE_ADDR]; /* seeds that refused, this join */
  size_t nrejected;

  /* counters */
  uint64_t auth_failures, rejects_sent, sync_failures;

  /* connection pool (call.c) */
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_cv;
  rpcnet_client *closing_q[RPCI_CLOSEQ_MAX]; /* forgotten, to close */
  size_t nclosing;
  rpci_pool_ent **pool;
  size_t npool, pool_cap;
  uint64_t rng;
};

/* Drains everything the core queued (datagrams, events, sync jobs) and
 * re-arms the timer. Call with mu held after every call into the core. */
void rpci_node_flush(rpcnet_cluster *cl);

/* gossip.c: binds the socket and starts polling it on a loop. Returns 0 or
 * -1 with rpci_set_error. */
int rpci_gossip_start(rpcnet_cluster *cl, const char *bind_addr);
/* Stops the poll and the timer on the loop thread and closes the socket. */
void rpci_gossip_stop(rpcnet_cluster *cl);
/* Seals and sends one datagram to a numeric "host:port" (mu held). */
void rpci_gossip_send(rpcnet_cluster *cl, const char *addr, const uint8_t *data, size_t len);
/* Re-arms the timer for the core's next deadline (mu held). */
void rpci_gossip_arm(rpcnet_cluster *cl);

/* sync.c: the push-pull thread and the server-side handler. */
int rpci_sync_start(rpcnet_cluster *cl);
void rpci_sync_stop(rpcnet_cluster *cl);
/* Queues a job (mu held); drops it when the queue is full. */
void rpci_sync_enqueue(rpcnet_cluster *cl, const rpci_swim_sync_job *job);
/* Runs one push-pull with rpc_addr from the calling thread (no lock held).
 * Returns an rpcnet status; on PERMISSION_DENIED why[] says why. */
int rpci_sync_run(rpcnet_cluster *cl, const char *rpc_addr, int64_t deadline_ms, char *why,
                  size_t whylen);
/* Registers the push-pull method on srv. The handler reaches the node
 * through a gate that outlives it (one per server, kept for the process's
 * life), so a push-pull arriving while the node is freed is refused, never
 * a use after free. Returns 0 or -1 (out of memory). */
int rpci_sync_attach(rpcnet_cluster *cl, rpcnet_server *srv);
/* Closes the gate; waits for a handler running on it. */
void rpci_sync_detach(rpcnet_cluster *cl);

/* members.c: CBOR encodings (deterministic) of members and events. */
int rpci_members_encode(rpcnet_cluster *cl, const char *filter, void **out, size_t *len);
/* Queues the public event for a core event and updates the router (mu held). */
void rpci_node_on_event(rpcnet_cluster *cl, const rpci_swim_event *ev);

/* call.c: the pooled client for an RPC address, connecting on first use
 * (no lock held while connecting; other threads wanting the same address
 * wait for that connect). Returns a referenced entry to give back with
 * rpci_pool_put, or NULL with *status and rpci_set_error. */
rpci_pool_ent *rpci_pool_get(rpcnet_cluster *cl, const char *addr, int64_t deadline_ms,
                             int *status);
void rpci_pool_put(rpcnet_cluster *cl, rpci_pool_ent *e);
/* Drops the pool's entry for addr (a member declared dead or left); its
 * client is closed when the last user puts it back, or, when that is now,
 * later by the sync thread (this may run on an I/O thread, where closing
 * must not block). Call with or without mu. */
void rpci_pool_forget(rpcnet_cluster *cl, const char *addr);
/* Closes the clients rpci_pool_forget deferred (no lock held). */
void rpci_pool_close_deferred(rpcnet_cluster *cl);
/* Non-zero when rpci_pool_forget left clients to close (any lock state). */
int rpci_pool_closes_pending(rpcnet_cluster *cl);
void rpci_pool_close_all(rpcnet_cluster *cl);

/* A monotonic clock in ms / us shared by the node's files. */
int64_t rpci_node_now_ms(void);
int64_t rpci_node_now_us(void);

#endif
