/*
 * The SWIM + Lifeguard membership core: a pure state machine. It never reads
 * a clock, a socket or a random device: time, packets and a seed are its
 * inputs; datagrams to send, push-pull sync jobs and membership events are
 * its outputs, queued until the caller polls them. The network driver
 * (cluster/node.c) and the deterministic simulator (tests/sim) drive it
 * the same way.
 *
 * Design notes
 * - One owner at a time: a rpci_swim has no lock; the driver serialises
 *   every call under its own mutex, the simulator runs single-threaded.
 * - Time is monotonic milliseconds given by the caller. A `now` smaller than
 *   one seen before is treated as the one seen before (clock jumps backwards
 *   cannot fire timers twice or early); a jump forward just makes overdue
 *   timers run once on the next rpci_swim_tick.
 * - Membership authority: only a node raises its own incarnation (when it
 *   refutes a suspicion or changes its tags). For one node, a message with a
 *   higher incarnation wins; at equal incarnation dead/left beat suspect
 *   beat alive. A member held dead or left is revived only by an alive
 *   message with a strictly higher incarnation, which only that node can
 *   have produced. Dead and left records stay as tombstones until reaped
 *   (reap_ms) and are exchanged by push-pull, so no third party can revive
 *   them.
 * - Lifeguard: local health awareness (a score 0..awareness_max-1 that
 *   multiplies the node's own probe interval and timeout), nacks from
 *   indirect-probe helpers, suspicion timeouts that shrink from max to min
 *   as independent confirmations arrive, and suspect messages about a node
 *   sent to that node so it can refute at once. lifeguard < 0 gives plain
 *   SWIM (fixed timeout, no nacks, no awareness) for comparison.
 * - Dissemination: broadcasts ride on every outgoing packet and on gossip
 *   rounds (gossip_nodes random members every gossip_interval_ms), each
 *   sent at most retransmit_mult * ceil(log10(N + 1)) times, fewest-sent
 *   first; a newer broadcast about a node replaces the older one. A share of
 *   each packet (a quarter) is reserved for alive messages so that tag
 *   updates are never starved by suspect/dead traffic.
 * - Anti-entropy: every sync interval (sync_interval_ms, scaled up with N
 *   like memberlist's push-pull scale) the core asks the driver to run a
 *   push-pull with one random member that has an RPC address: a hash of
 *   the (name, incarnation, state) digest first (an order-independent sum
 *   of per-record hashes); on a mismatch the digest itself; then only the
 *   records that differ (section "Push-pull" of docs/cluster.md).
 * - Partitions: dead (not left) members are retried: every
 *   reconnect_interval_ms, with probability dead / (alive + 1) (Serf's
 *   rule), one random dead member is pinged and offered a push-pull, so
 *   two halves of a healed partition find each other again and the side
 *   held dead refutes. A node that, within one partition
 *   window, sees more than half of the members it held alive go suspect or
 *   dead reports RPCI_SWIM_EV_PARTITIONED, and RPCI_SWIM_EV_HEALED when a
 *   majority is alive again.
 * - Memory is bounded: the broadcast queue holds at most one entry per
 *   member; the tx queue is drained by the caller after every call;
 *   messages from the network are size-checked before anything is kept
 *   (names <= 64 bytes, addresses <= 64, at most 32 tags of <= 128-byte keys
 *   and 512-byte values, 1 KiB of tags in total).
 */
#ifndef RPCI_CLUSTER_SWIM_H
#define RPCI_CLUSTER_SWIM_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

#define RPCI_SWIM_PROTO_MIN 1
#define RPCI_SWIM_PROTO_MAX 1
#define RPCI_SWIM_MAX_NAME 64
#define RPCI_SWIM_MAX_ADDR 64
#define RPCI_SWIM_MAX_TAGS 32
#define RPCI_SWIM_MAX_TAG_KEY 128
#define RPCI_SWIM_MAX_TAG_VALUE 512
#define RPCI_SWIM_MAX_TAG_BYTES 1024

typedef enum rpci_mstate {
  RPCI_MS_ALIVE = 0,
  RPCI_MS_SUSPECT = 1,
  RPCI_MS_DEAD = 2,
  RPCI_MS_LEFT = 3
} rpci_mstate;

/* Stable lower-case names: "alive", "suspect", "dead", "left". */
const char *rpci_mstate_name(int st);

typedef struct rpci_swim_cfg {
  const char *name;        /* unique node name, 1..64 bytes */
  const char *gossip_addr; /* advertised gossip address "host:port" */
  const char *rpc_addr;    /* advertised RPC address, NULL or "" if none */
  uint64_t incarnation;    /* starting incarnation; the driver passes the
                              wall-clock seconds so a restart is higher */
  uint64_t seed;           /* PRNG seed: same inputs + seed = same run */
  /* Tuning; 0 means the default: memberlist's LAN preset except the three
     marked *, tuned in the simulator so that a crash is held dead
     everywhere within 12 s at 1k nodes and 15 s at 10k with no false
     deaths (docs/cluster.md, "Defaults", has the trade-off). */
  int probe_interval_ms;     /* 800* (memberlist: 1000) */
  int probe_timeout_ms;      /* 400* (500); must be < probe_interval_ms */
  int indirect_checks;       /* k helpers for indirect probes: 3 */
  int retransmit_mult;       /* lambda: 4 */
  int suspicion_mult;        /* min suspicion = mult*max(1,log10(N))*interval:
                                3* (memberlist: 4) */
  int suspicion_max_mult;    /* max suspicion = this * min: 6 */
  int awareness_max;         /* Lifeguard health score bound: 8 */
  int gossip_interval_ms;    /* 200 */
  int gossip_nodes;          /* 3 */
  int sync_interval_ms;      /* base push-pull interval: 30000; < 0 disables */
  int reconnect_interval_ms; /* retry one dead member this often: 10000 */
  int reap_ms;               /* dead/left tombstones kept: 900000 (15 min) */
  int partition_window_ms;   /* 30000 */
  int max_packet;            /* datagram payload budget in bytes: 1200 minus
                                the driver's sealing overhead; default 1150 */
  int lifeguard;             /* < 0: plain SWIM; 0 or 1: Lifeguard on */
} rpci_swim_cfg;

typedef struct rpci_swim rpci_swim;

typedef struct rpci_tag {
  const char *key;
  const char *value;
} rpci_tag;

/* Creates the core with this node alive at cfg->incarnation. Copies
 * everything it keeps. Returns NULL on a bad config (empty or long name or
 * address) or out of memory. */
rpci_swim *rpci_swim_new(const rpci_swim_cfg *cfg, int64_t now_ms);
void rpci_swim_free(rpci_swim *s);

/* Replaces this node's tags, raises its incarnation and broadcasts it.
 * Returns 0, or -1 (too many / too long tags: nothing changed). */
int rpci_swim_set_tags(rpci_swim *s, int64_t now_ms, const rpci_tag *tags, size_t n);

/* Sets this node's advertised RPC address (attaching a server after
 * creation); raises the incarnation and broadcasts. Returns 0 or -1. */
int rpci_swim_set_rpc_addr(rpci_swim *s, int64_t now_ms, const char *rpc_addr);

/* Contacts seeds: queues to each gossip address a ping addressed to any
 * node, carrying this node's alive record. When a seed's ack arrives with
 * its record, the seed becomes a member and, if it has an RPC address, a
 * push-pull job for it is queued (rpci_swim_poll_sync). May be called again
 * (a retry). Returns 0 or -1 (out of memory). */
int rpci_swim_join(rpci_swim *s, int64_t now_ms, const char *const *seed_addrs, size_t n);

/* Graceful leave: marks this node left at its current incarnation + 1 and
 * broadcasts it (others will record "left", not "failed"). After this the
 * node stops probing but still answers pings and relays until freed.
 * Returns 0. */
int rpci_swim_leave(rpci_swim *s, int64_t now_ms);
/* Non-zero while a leave broadcast has not yet been sent to as many nodes
 * as its retransmit limit (the driver waits on this, bounded by time). */
int rpci_swim_leave_pending(const rpci_swim *s);

/* Feeds one received datagram's plaintext (a compound packet). from_addr is
 * the sender's address as the driver saw it ("host:port"). Malformed input
 * is dropped whole or from the first bad message on and counted
 * (rpci_swim_stats). Never fails. */
void rpci_swim_recv(rpci_swim *s, int64_t now_ms, const char *from_addr, const uint8_t *pkt,
                    size_t len);

/* Runs every timer due at now_ms (probes, probe timeouts, suspicion
 * timeouts, gossip rounds, sync and reconnect scheduling, reaping). */
void rpci_swim_tick(rpci_swim *s, int64_t now_ms);

/* When rpci_swim_tick must next be called (absolute ms). Always finite. */
int64_t rpci_swim_next_deadline(const rpci_swim *s);

/* ---- outputs ----------------------------------------------------------- */

/* A datagram to send. data/addr stay valid until the next call into s. */
typedef struct rpci_swim_tx {
  const char *addr; /* gossip address "host:port" */
  const uint8_t *data;
  size_t len; /* <= max_packet */
} rpci_swim_tx;

/* Takes the next datagram to send. Returns 1 with *tx filled, 0 when none.
 * The driver drains this after every call into s. */
int rpci_swim_poll_tx(rpci_swim *s, rpci_swim_tx *tx);

/* A push-pull job: run rpci_swim_sync_start + the exchange with the member
 * whose RPC address is rpc_addr. Strings stay valid until the next call. */
typedef struct rpci_swim_sync_job {
  const char *name;
  const char *rpc_addr;
  int is_join; /* a join's first sync (the driver reports its outcome) */
} rpci_swim_sync_job;

/* Takes the next push-pull job. Returns 1 with *job filled, 0 when none. */
int rpci_swim_poll_sync(rpci_swim *s, rpci_swim_sync_job *job);

typedef enum rpci_swim_ev_type {
  RPCI_SWIM_EV_JOINED = 1,  /* a member became known alive */
  RPCI_SWIM_EV_LEFT,        /* a member left gracefully */
  RPCI_SWIM_EV_FAILED,      /* a member was declared dead */
  RPCI_SWIM_EV_UPDATED,     /* a member's tags or addresses changed */
  RPCI_SWIM_EV_RECOVERED,   /* a dead/suspect member is alive again */
  RPCI_SWIM_EV_SUSPECTED,   /* a member became suspect (routing hint) */
  RPCI_SWIM_EV_PARTITIONED, /* this node lost most of its membership */
  RPCI_SWIM_EV_HEALED,      /* ...and got a majority back */
  RPCI_SWIM_EV_REAPED       /* a tombstone was removed */
} rpci_swim_ev_type;

/* Stable names: "joined", "left", "failed", "updated", "recovered",
 * "suspected", "partitioned", "healed", "reaped". */
const char *rpci_swim_ev_name(int type);

typedef struct rpci_swim_event {
  int type;         /* rpci_swim_ev_type */
  const char *name; /* the member ("" for partitioned/healed) */
  uint64_t incarnation;
} rpci_swim_event;

/* Takes the next membership event. Returns 1 with *ev filled (name valid
 * until the next call into s), 0 when none. Events are queued in order;
 * the queue is bounded (oldest dropped, counted) at 65536. */
int rpci_swim_poll_event(rpci_swim *s, rpci_swim_event *ev);

/* ---- push-pull (anti-entropy), transport-agnostic ---------------------- */

/* Initiator: encodes the first request (this node's own record + the hash
 * and count of its digest) into req. Returns 0 or -1. */
int rpci_swim_sync_start(rpci_swim *s, int64_t now_ms, rpci_buf *req);

/* Receiver: answers one request (any round) into resp, merging what the
 * request carries. Stateless between rounds. Returns 0, or -1 when req is
 * malformed (resp then empty). */
int rpci_swim_sync_serve(rpci_swim *s, int64_t now_ms, const uint8_t *req, size_t req_len,
                         rpci_buf *resp);

/* Initiator: consumes a response. Returns 1 when another round is needed
 * (its request is in next_req), 0 when the exchange is complete, -1 when
 * resp is malformed. */
int rpci_swim_sync_step(rpci_swim *s, int64_t now_ms, const uint8_t *resp, size_t resp_len,
                        rpci_buf *next_req);

/* ---- inspection -------------------------------------------------------- */

typedef struct rpci_swim_member {
  const char *name;
  const char *gossip_addr;
  const char *rpc_addr; /* "" if none */
  int state;            /* rpci_mstate */
  uint64_t incarnation;
  const rpci_tag *tags;
  size_t ntags;
  int64_t state_change_ms; /* when the state last changed (local clock) */
  int is_self;
} rpci_swim_member;

/* Number of records (self, alive, suspect, dead and left tombstones). */
size_t rpci_swim_count(const rpci_swim *s);
/* Record i (0 <= i < count), in a stable order until the next mutating
 * call. Pointers valid until the next call into s. Returns 0 or -1. */
int rpci_swim_member_at(const rpci_swim *s, size_t i, rpci_swim_member *m);
/* Looks a member up by name. Returns 0 or -1 (unknown). */
int rpci_swim_find(const rpci_swim *s, const char *name, rpci_swim_member *m);

typedef struct rpci_swim_stats {
  uint64_t pkts_in, pkts_out, bytes_in, bytes_out;
  uint64_t malformed; /* datagrams or sync bodies rejected */
  uint64_t probes, probe_failures, indirect_probes, nacks_recv;
  uint64_t refutes;        /* times this node raised its incarnation to refute */
  uint64_t events_dropped; /* event queue overflow */
  int health;              /* Lifeguard awareness score now */
  int partitioned;         /* currently reporting a partition */
  uint64_t incarnation;    /* this node's incarnation */
  /* Added after the first draft of this header (append-only): */
  uint64_t unknown_msgs; /* messages of unknown types and datagrams of
                            unknown proto versions, skipped */
  uint64_t tx_dropped;   /* datagrams, broadcasts, relays or push-pull jobs
                            dropped at a queue bound or out of memory */
} rpci_swim_stats;

void rpci_swim_get_stats(const rpci_swim *s, rpci_swim_stats *st);

/* Lifeguard's suspicion timeout (pure; exported for tests):
 * n = members, c = independent confirmations so far. */
int64_t rpci_swim_suspicion_timeout_ms(int suspicion_mult, int suspicion_max_mult,
                                       int probe_interval_ms, size_t n, int c);

#endif
