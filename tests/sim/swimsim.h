/*
 * swimsim: a seeded, virtual-time, discrete-event simulator of a cluster of
 * SWIM cores (capi/src/cluster/swim.h), for tests and the cluster bench.
 *
 * Design notes
 * - Single-threaded and deterministic: one PRNG seeded from cfg.seed drives
 *   latency jitter and loss; the cores get seeds derived from it. Same
 *   configuration and calls => the same run, event for event.
 * - Time is in microseconds; a node's clock is sim time / 1000 plus its own
 *   offset (clock jumps). Events (datagram deliveries, push-pull rounds,
 *   timers, stall ends) sit in one binary heap ordered by (time, sequence);
 *   each node has at most one live timer event (older ones are skipped by
 *   their sequence number), so the heap holds what is in flight plus one
 *   entry per node.
 * - Network: per-link one-way latency fixed by a hash of (seed, from, to)
 *   in [lat_min_us, lat_max_us] plus up to 50 us of jitter; datagrams are
 *   lost with probability `loss`; one-way blocks (from -> to) and groups
 *   (nodes of different groups cannot talk while groups are on) drop them.
 *   Push-pull rounds are carried with the same latency (as over a
 *   connection: never lost, but refused across a block, and dropped when
 *   either end is down or restarted).
 * - CPU stalls: a stalled node processes nothing; what arrives is kept in
 *   order and delivered when the stall ends, right after the node's timers
 *   have run (as libuv does: timers before I/O), i.e. timers run late.
 * - Invariants, checked on every record change through the core's trace
 *   hook (swim_int.h) against the simulator's own table of what each node
 *   holds: a node's own incarnation never decreases; an observer never sees
 *   a member's incarnation decrease (except after reaping it); a member
 *   held dead or left only becomes alive or suspect again at a strictly
 *   higher incarnation that the member itself produced while alive
 *   (max_alive_inc), and no alive or suspect record ever carries an
 *   incarnation its member never produced. swimsim_audit compares the table
 *   with the cores' own records.
 * - Memory: the table is 4 bytes per (observer, member) pair.
 */
#ifndef SWIMSIM_H
#define SWIMSIM_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"

typedef struct swimsim swimsim;

typedef void (*swimsim_event_fn)(void *ud, swimsim *sim, int node, const rpci_swim_event *ev);

typedef struct swimsim_cfg {
  uint64_t seed;
  int max_nodes;             /* node ids are 0 .. max_nodes - 1 */
  int lat_min_us;            /* default 200 */
  int lat_max_us;            /* default 2000 */
  double loss;               /* datagram loss probability */
  rpci_swim_cfg swim;        /* tuning for every core; names, addresses, seeds and
                                incarnations are the simulator's */
  swimsim_event_fn on_event; /* every membership event of every node */
  void *ud;
} swimsim_cfg;

swimsim *swimsim_new(const swimsim_cfg *cfg);
void swimsim_free(swimsim *sim);

/* Simulated time in microseconds (starts at 1 s). */
int64_t swimsim_now(const swimsim *sim);

/* Starts (or restarts: the old core is dropped) node i with a new core at
 * this incarnation. Names are "n<i>", gossip addresses "g<i>", RPC
 * addresses "r<i>". Returns 0 or -1. */
int swimsim_start(swimsim *sim, int i, uint64_t incarnation);
/* Node i contacts the given seed nodes (rpci_swim_join). */
void swimsim_join(swimsim *sim, int i, const int *seeds, int n);
/* Starts nodes 0 .. n-1 at incarnation 1, each already holding all the
 * others alive (fed one push-pull body), as after a long-converged run.
 * Returns 0 or -1. */
int swimsim_bootstrap(swimsim *sim, int n);

void swimsim_crash(swimsim *sim, int i);
/* Graceful leave: the node stops once its leave broadcast is out (or after
 * 5 s). */
void swimsim_leave(swimsim *sim, int i);
void swimsim_stall(swimsim *sim, int i, int64_t dur_us);
void swimsim_clock_jump(swimsim *sim, int i, int64_t delta_ms);
void swimsim_set_loss(swimsim *sim, double loss);
void swimsim_block(swimsim *sim, int from, int to, int on);
void swimsim_set_group(swimsim *sim, int i, int group);
void swimsim_groups(swimsim *sim, int on);

/* Runs every event up to and including time t_us. */
void swimsim_run_until(swimsim *sim, int64_t t_us);

/* ---- observation ------------------------------------------------------- */
int swimsim_up(const swimsim *sim, int i);
int swimsim_stalled(const swimsim *sim, int i);
/* The state obs holds subj in (rpci_mstate), -1 when unknown. */
int swimsim_state(const swimsim *sim, int obs, int subj);
/* 1 when every running node holds every other running node alive. */
int swimsim_converged(const swimsim *sim);
/* Running nodes that hold subj in state st. */
int swimsim_count_holding(const swimsim *sim, int subj, int st);
rpci_swim *swimsim_core(swimsim *sim, int i);

typedef struct swimsim_stats {
  uint64_t events;     /* heap events processed */
  uint64_t pkts_sent;  /* datagrams emitted by cores */
  uint64_t pkts_lost;  /* dropped by loss, blocks, groups or a down node */
  uint64_t bytes_sent; /* datagram bytes emitted */
  uint64_t syncs;      /* push-pull exchanges started */
  uint64_t sync_bytes; /* push-pull bytes, both directions */
  uint64_t violations;
  uint64_t running; /* nodes up now */
} swimsim_stats;
void swimsim_get_stats(const swimsim *sim, swimsim_stats *st);
/* The first invariant violation, or NULL. */
const char *swimsim_violation(const swimsim *sim);
/* Compares the simulator's table with every running core's records;
 * returns the number of mismatches (also counted as violations). */
uint64_t swimsim_audit(swimsim *sim);

#endif
