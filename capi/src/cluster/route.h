/*
 * The worker registry: which member a cluster call goes to. A pure module:
 * time (microseconds) and randomness (a seeded PRNG) are inputs, so every
 * strategy is tested deterministically.
 *
 * Design notes
 * - The registry mirrors the members SWIM holds alive or suspect and that
 *   have an RPC address (rpci_route_upsert / _remove, called by the cluster
 *   node on membership events). SWIM is the only authority on membership;
 *   the registry only adds client-side judgement: in-flight counts, a
 *   latency EWMA, a phi-accrual score on call latencies, and a circuit
 *   breaker.
 * - Eligible = tags match the filter, not excluded by the caller (peers an
 *   attempt already failed on), breaker closed (or half-open with no probe
 *   in flight), not a phi outlier. Suspect members are used only when no
 *   alive one is eligible. Outliers and open breakers are used only when
 *   nothing else is eligible (never fail a call only for a judgement).
 * - Strategies: round_robin, random, least_connections (fewest in flight,
 *   ties at random), p2c (two random eligible peers, the lower cost
 *   (inflight + 1) * ewma wins).
 * - Circuit breaker: `breaker_failures` consecutive failures open it for a
 *   cool-down (1 s, doubling per re-open to 30 s); then half-open: one
 *   probe call; its success closes the breaker, its failure re-opens it.
 * - Phi accrual on latency: each peer keeps a window of recent successful
 *   latencies (mean, variance). phi(t) = -log10(P(X > t)) under a normal
 *   approximation, where t is the age of the peer's oldest call in flight
 *   (or its last latency when idle). A peer whose phi exceeds phi_eject is
 *   an outlier until it drops below again.
 * - Thread-safety: none inside; the cluster node calls it under its mutex.
 */
#ifndef RPCI_CLUSTER_ROUTE_H
#define RPCI_CLUSTER_ROUTE_H

#include <stddef.h>
#include <stdint.h>

typedef enum rpci_strategy {
  RPCI_ROUTE_P2C = 0,
  RPCI_ROUTE_ROUND_ROBIN,
  RPCI_ROUTE_RANDOM,
  RPCI_ROUTE_LEAST_CONN
} rpci_strategy;

/* "p2c", "round_robin", "random", "least_connections" -> strategy, or -1. */
int rpci_strategy_parse(const char *s);
const char *rpci_strategy_name(int strategy);

/* A parsed tag filter: "k=v,k2=v2" (all must match), "k" (tag present),
 * "k!=v" (absent or different). "" or NULL matches everything. */
typedef struct rpci_filter rpci_filter;
/* Returns NULL on a syntax error (err describes it) or out of memory. */
rpci_filter *rpci_filter_parse(const char *text, char *err, size_t errlen);
void rpci_filter_free(rpci_filter *f);
/* tags: n key/value pairs as parallel arrays. */
int rpci_filter_match(const rpci_filter *f, const char *const *keys, const char *const *values,
                      size_t n);

typedef struct rpci_route_cfg {
  int strategy;         /* rpci_strategy */
  int breaker_failures; /* default 5 */
  int breaker_base_ms;  /* default 1000 */
  int breaker_max_ms;   /* default 30000 */
  double phi_eject;     /* default 8.0; <= 0 disables outlier ejection */
  int window;           /* latency samples kept per peer: default 64 */
  uint64_t seed;
} rpci_route_cfg;

/* Fills cfg with the defaults above (p2c, seed 0). rpci_route_new also
 * takes a zero int field as its default; phi_eject is taken as given. */
void rpci_route_cfg_defaults(rpci_route_cfg *cfg);

typedef struct rpci_router rpci_router;

/* cfg NULL: the defaults. Returns NULL when out of memory. */
rpci_router *rpci_route_new(const rpci_route_cfg *cfg);
void rpci_route_free(rpci_router *r);

/* Adds or updates a peer (copied). suspect: SWIM holds it suspect.
 * Returns 0 or -1 (out of memory, or a name or address longer than
 * RPCI_ROUTE_NAME - 1 / RPCI_ROUTE_ADDR - 1 bytes). */
int rpci_route_upsert(rpci_router *r, const char *name, const char *rpc_addr,
                      const char *const *tag_keys, const char *const *tag_values, size_t ntags,
                      int suspect);
/* Removes a peer (dead, left, or no longer serving). Unknown names are fine.
 * Calls in flight to it may still report rpci_route_done; they are ignored. */
void rpci_route_remove(rpci_router *r, const char *name);

/* Picks a peer for a call. exclude: names to skip (nexclude of them).
 * On success returns 0, copies the peer's name and rpc address into
 * name[RPCI_ROUTE_NAME] / addr[RPCI_ROUTE_ADDR], and counts the call in
 * flight (started at now_us). Returns -1 when no peer matches the filter at
 * all (every peer excluded or none with those tags), or out of memory. */
#define RPCI_ROUTE_NAME 65
#define RPCI_ROUTE_ADDR 65
int rpci_route_pick(rpci_router *r, const rpci_filter *f, const char *const *exclude,
                    size_t nexclude, int64_t now_us, char *name, char *addr);

enum rpci_route_outcome {
  RPCI_ROUTE_OK = 0,       /* answered (any status the peer produced itself) */
  RPCI_ROUTE_FAILED = 1,   /* unreachable / broken connection / UNAVAILABLE */
  RPCI_ROUTE_ABANDONED = 2 /* cancelled or lost a hedge race: no judgement */
};
/* Reports the end of a call picked at started_us. Updates in-flight, EWMA,
 * phi window and breaker. */
void rpci_route_done(rpci_router *r, const char *name, int64_t started_us, int64_t now_us,
                     int outcome);

/* A per-peer view for member listings. Returns 0, or -1 (unknown name). */
typedef struct rpci_route_info {
  int inflight;
  double ewma_us; /* 0 until the first sample */
  double phi;     /* now */
  int breaker;    /* 0 closed, 1 open, 2 half-open */
  uint64_t calls, failures;
} rpci_route_info;
int rpci_route_info_get(rpci_router *r, const char *name, int64_t now_us, rpci_route_info *out);

/* A latency percentile (0 < p < 1) over every peer's recent samples, in
 * microseconds, for hedging; 0 when there are fewer than 16 samples. */
int64_t rpci_route_percentile_us(rpci_router *r, double p);

#endif
