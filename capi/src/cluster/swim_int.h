/*
 * Private header of the SWIM core (swim.c, swim_member.c, swim_state.c,
 * swim_probe.c, swim_sync.c, swim_out.c). Nothing outside
 * capi/src/cluster/swim*.c includes it except the simulator and the unit
 * tests, which use the trace hook below.
 *
 * Design notes
 * - One rpci_swim is touched by one thread at a time (swim.h); nothing
 *   here locks.
 * - Member records live in one array (self is always index 0) with a
 *   chained hash index on the name; their strings live in one per-core
 *   arena (name, gossip address, RPC address, NUL-terminated, then the
 *   canonical tag map). A record is 32 bytes plus its strings, so that the
 *   simulator can hold 10,000 cores of 10,000 members each.
 * - Every change of a record's (incarnation, state) goes through
 *   rpci_swim_m_set_state, the one place that keeps the per-state counts,
 *   the digest hash, the partition detector and the trace hook right.
 * - Outputs produced by a call are staged (control messages per
 *   destination) and turned into datagrams, with broadcasts piggybacked,
 *   by rpci_swim_flush at the end of every public call.
 */
#ifndef RPCI_CLUSTER_SWIM_INT_H
#define RPCI_CLUSTER_SWIM_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/bcast.h"
#include "cluster/msg.h"
#include "cluster/swim.h"
#include "wire/buf.h"

/* Independent confirmations that drive a suspicion to its minimum timeout
 * (Lifeguard's k; memberlist derives it as suspicion_mult - 2 = 2). */
#define RPCI_SWIM_SUSP_K 3
#define RPCI_SWIM_EVQ_MAX 65536 /* events kept before the oldest is dropped */
#define RPCI_SWIM_TXQ_MAX 4096  /* datagrams queued before new ones are dropped */
#define RPCI_SWIM_JOBQ_MAX 64   /* push-pull jobs queued */
#define RPCI_SWIM_RELAY_MAX 256 /* indirect probes relayed at once */
#define RPCI_SWIM_JOIN_MAX 16   /* outstanding join pings remembered */
#define RPCI_SWIM_PART_SLOTS 8  /* partition window resolution */
#define RPCI_SWIM_NOTIFY_MAX 16 /* members told of a peer's dead record, per body */
#define RPCI_SWIM_LATE_MS 50    /* a tick this late: judgements wait (Lifeguard) */

typedef struct rpci_mem {
  uint64_t inc;
  int64_t changed; /* state_change_ms */
  uint32_t off;    /* arena offset of name\0addr\0rpc\0<tag map> */
  uint32_t next;   /* hash chain: index + 1, 0 ends the chain */
  uint32_t susp;   /* suspicion heap slot + 1, 0 when none */
  uint8_t state, pmin, pmax, flags;
} rpci_mem;

typedef struct rpci_susp {
  uint32_t mem; /* member index */
  int n;        /* independent confirmations so far */
  int k;        /* confirmations wanted (0: the minimum applies at once) */
  int64_t start, min, max, deadline;
  uint64_t who[RPCI_SWIM_SUSP_K + 1]; /* name hashes: accuser, confirmers */
  int nwho;
} rpci_susp;

typedef struct rpci_relay {
  uint64_t my_seq, orig_seq;
  int64_t deadline;
  int want_nack;
  char reply_to[RPCI_SWIM_MAX_ADDR + 1];
} rpci_relay;

typedef struct rpci_txd {
  size_t len;
  char addr[RPCI_SWIM_MAX_ADDR + 1];
  uint8_t data[];
} rpci_txd;

typedef struct rpci_evq_ent {
  int type;
  uint64_t inc;
  char name[RPCI_SWIM_MAX_NAME + 1];
} rpci_evq_ent;

typedef struct rpci_job {
  char name[RPCI_SWIM_MAX_NAME + 1];
  char rpc[RPCI_SWIM_MAX_ADDR + 1];
  int is_join;
} rpci_job;

typedef struct rpci_stage_ent {
  char addr[RPCI_SWIM_MAX_ADDR + 1];
  size_t off, len; /* bytes in s->stage; len 0: broadcasts only */
  int done;
} rpci_stage_ent;

/* Trace hook (simulator and tests): called on every change of a record's
 * incarnation or state, on insertion and on removal (reaping). Never
 * called for self. */
typedef void (*rpci_swim_trace_fn)(void *ud, const rpci_swim *s, const char *name, uint64_t inc,
                                   int state, int removed);
void rpci_swim_set_trace(rpci_swim *s, rpci_swim_trace_fn fn, void *ud);

struct rpci_swim {
  rpci_swim_cfg cfg; /* defaults applied; string pointers cleared */
  int lifeguard;     /* 1 on, 0 plain SWIM */
  int left;
  int64_t now; /* largest time seen */
  uint64_t rng[4];
  uint64_t seq;

  /* members */
  rpci_mem *m;
  uint32_t n, cap;
  uint32_t *buckets; /* index + 1 of a chain head */
  uint32_t nbuckets; /* power of two */
  char *arena;
  size_t arena_len, arena_cap, arena_garbage;
  uint32_t count[4]; /* records per state, self excluded */
  uint64_t digest;   /* sum of the records' digest hashes (self included) */

  /* suspicions: binary min-heap on deadline */
  rpci_susp *susp;
  uint32_t nsusp, capsusp;

  /* Lifeguard */
  int score;           /* local health 0..awareness_max-1 */
  int64_t grace_until; /* after a stall, judgements wait until then */

  /* probing */
  struct {
    int phase; /* 0 idle, 1 waiting for the direct ack, 2 for indirect */
    uint64_t seq;
    char target[RPCI_SWIM_MAX_NAME + 1];
    int64_t start, t_timeout, t_end;
    int expected_nacks, nacks;
  } probe;
  uint64_t perm_a, perm_b; /* probe order: index (a + j * b) mod n0 */
  uint32_t perm_n0, perm_j;
  int64_t t_probe, t_gossip, t_sync, t_reconnect, t_reap;

  rpci_relay *relay;
  uint32_t nrelay, caprelay;
  uint64_t join_seq[RPCI_SWIM_JOIN_MAX];
  uint32_t njoin;

  /* partition detector: alive -> suspect/dead transitions per window slot */
  uint32_t part_loss[RPCI_SWIM_PART_SLOTS];
  int64_t part_slot; /* index of the newest slot: now / (window / slots) */
  uint32_t part_base;

  /* outputs */
  rpci_bcast *bc;
  rpci_buf stage, scratch, pkt;
  rpci_stage_ent *st;
  uint32_t nst, capst;
  int stale_reply_done; /* one stale-view refresh per received datagram */
  int whois_done;       /* one record request to an unknown pinger, likewise */
  int in_sync;          /* merging push-pull records (not counted as losses) */
  int notify_left;      /* rpci_swim_notify calls left for this body */
  rpci_txd **txq;
  uint32_t txh, txn, txcap;
  rpci_txd *tx_cur;
  rpci_evq_ent *evq;
  uint32_t evh, evn, evcap;
  rpci_evq_ent ev_cur;
  rpci_job *jobs;
  uint32_t jobh, jobn, jobcap;
  rpci_job job_cur;
  const char *pkt_alive_name; /* first alive of the datagram being read */
  size_t pkt_alive_len;

  /* inspection scratch (written by the const inspection calls) */
  rpci_tag *view_tags;
  char *view_str;
  size_t view_str_cap;

  rpci_swim_stats st_;
  rpci_swim_trace_fn trace;
  void *trace_ud;
};

/* ---- swim.c: helpers shared by the parts ------------------------------- */
uint64_t rpci_swim_rand(rpci_swim *s);
/* Uniform in [0, n), n > 0. */
uint64_t rpci_swim_randn(rpci_swim *s, uint64_t n);
uint64_t rpci_swim_name_hash(const uint8_t *p, size_t n);
/* Queues an event (oldest dropped past RPCI_SWIM_EVQ_MAX). */
void rpci_swim_emit(rpci_swim *s, int type, const char *name, uint64_t inc);
/* Queues a push-pull job with member i (if it has an RPC address). */
void rpci_swim_job(rpci_swim *s, uint32_t i, int is_join);
/* Members alive or suspect, self included. */
uint32_t rpci_swim_live(const rpci_swim *s);
/* The broadcast transmit limit for the current size. */
int rpci_swim_limit(const rpci_swim *s);

/* ---- swim_member.c: the record table ----------------------------------- */
int64_t rpci_swim_m_find(const rpci_swim *s, const uint8_t *name, size_t n);
const char *rpci_swim_m_name(const rpci_swim *s, uint32_t i);
const char *rpci_swim_m_addr(const rpci_swim *s, uint32_t i);
const char *rpci_swim_m_rpc(const rpci_swim *s, uint32_t i);
rpci_gstr rpci_swim_m_tags(const rpci_swim *s, uint32_t i);
/* The record of member i as an alive body (slices into the arena: valid
 * until the next change of the table). */
void rpci_swim_m_alive(const rpci_swim *s, uint32_t i, rpci_galive *a);
/* Inserts a record; returns its index or -1 (out of memory). */
int64_t rpci_swim_m_insert(rpci_swim *s, const rpci_galive *a, int state, int64_t changed);
/* Replaces the strings, tags and versions of member i. Returns 1 when they
 * changed, 0 when equal, -1 out of memory (record unchanged). */
int rpci_swim_m_update(rpci_swim *s, uint32_t i, const rpci_galive *a);
/* Sets (incarnation, state) of member i; stamps `changed` when the state
 * changes. */
void rpci_swim_m_set_state(rpci_swim *s, uint32_t i, int state, uint64_t inc);
/* Removes member i (> 0): the last record moves into its place. */
void rpci_swim_m_remove(rpci_swim *s, uint32_t i);
/* Digest hash of one record. */
uint64_t rpci_swim_m_dhash(const char *name, uint64_t inc, int state);
/* Digest rank: alive/suspect 0, dead 1, left 2. */
int rpci_swim_rank(int state);

/* ---- swim_state.c: membership rules ------------------------------------ */
enum { RPCI_ORIGIN_GOSSIP = 0, RPCI_ORIGIN_PEER = 1, RPCI_ORIGIN_SYNC = 2 };
void rpci_swim_on_alive(rpci_swim *s, const rpci_galive *a, int origin, const char *from_addr);
void rpci_swim_on_suspect(rpci_swim *s, rpci_gstr name, uint64_t inc, rpci_gstr from,
                          const char *from_addr);
void rpci_swim_on_dead(rpci_swim *s, rpci_gstr name, uint64_t inc, rpci_gstr from,
                       const char *from_addr);
void rpci_swim_on_record(rpci_swim *s, const rpci_grecord *r);
/* Pings member i with a suspect message about itself at inc attached (a
 * peer holds it dead), while s->notify_left lasts. */
void rpci_swim_notify(rpci_swim *s, uint32_t i, uint64_t inc);
/* Raises this node's incarnation above `accused` and broadcasts alive. */
void rpci_swim_refute(rpci_swim *s, uint64_t accused);
/* Broadcasts member i's record as alive (self included). */
void rpci_swim_bc_alive(rpci_swim *s, uint32_t i);
/* This node's own suspicion of member i failed its probe. */
void rpci_swim_suspect_local(rpci_swim *s, uint32_t i);
void rpci_swim_awareness(rpci_swim *s, int delta);
/* Suspicion heap. */
void rpci_swim_susp_cancel(rpci_swim *s, uint32_t mem);
void rpci_swim_susp_tick(rpci_swim *s);
/* Partition detector (called by rpci_swim_m_set_state). */
void rpci_swim_part_note(rpci_swim *s, int old_state, int new_state);
void rpci_swim_reap(rpci_swim *s);

/* ---- swim_probe.c: failure detection and datagrams ---------------------- */
void rpci_swim_probe_tick(rpci_swim *s);
void rpci_swim_gossip_tick(rpci_swim *s);
void rpci_swim_reconnect_tick(rpci_swim *s);
void rpci_swim_relay_tick(rpci_swim *s);
void rpci_swim_handle(rpci_swim *s, const rpci_gmsg *m, const char *from_addr);
int64_t rpci_swim_relay_next(const rpci_swim *s);
/* Picks up to k distinct random members matching `want` (a mask of
 * 1 << state; self and `except` never). Returns how many. */
uint32_t rpci_swim_pick(rpci_swim *s, uint32_t *out, uint32_t k, int want, int64_t except);

/* ---- swim_out.c: staging and datagram assembly ------------------------- */
/* Stages the one message just encoded at s->stage[off..] for addr (one
 * call per message: datagrams count their messages by entries). */
void rpci_swim_stage(rpci_swim *s, const char *addr, size_t off);
/* Stages a broadcasts-only datagram for addr (sent only if any is queued). */
void rpci_swim_stage_gossip(rpci_swim *s, const char *addr);
/* Turns staged messages into datagrams; piggybacks broadcasts. */
void rpci_swim_flush(rpci_swim *s);
/* Queues an encoded message (s->scratch) as a broadcast about name;
 * refine: it only refines the news queued about name (keeps its transmit
 * count, rpci_bcast_refresh). */
void rpci_swim_broadcast(rpci_swim *s, const char *name, int is_alive, int refine);
/* Frees what the previous poll handed out. */
void rpci_swim_release(rpci_swim *s);

#endif
