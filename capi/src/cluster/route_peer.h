/*
 * One peer of the worker registry and the judgement the registry keeps on
 * it: calls in flight, latency EWMA, phi-accrual window and circuit breaker.
 * Internal to route.c (and white-box tests); see route.h for the contract.
 *
 * Design notes
 * - In flight: the start times of the calls in flight, kept sorted, so the
 *   oldest is the first and a finished call is found by binary search. A
 *   finish whose start time is not there (the peer was removed and added
 *   again meanwhile) is not this peer's call and is ignored.
 * - Latency samples (successful calls only) are clamped to [0, 2^26] us
 *   (67 s) so that the window's sums of samples and squares stay exact in
 *   64-bit integers (window <= 1024). The EWMA weights a new sample by 1/4.
 * - The latency estimate p2c costs a peer with is its EWMA, or the mean EWMA
 *   of the other peers (the prior; 1 ms when none has samples) before its
 *   first sample. While a peer is idle its EWMA decays towards the prior
 *   (time constant RPCI_ROUTE_EWMA_IDLE_US), folded in when its next call
 *   starts: without that, one slow spell (a stall, a GC pause) would price
 *   a peer out of p2c for good, since only calls it gets can correct it.
 * - Phi: X ~ Normal(mean, sd) over the window, with sd at least
 *   max(mean / 4, 1 ms) so that a peer with very regular latencies is not
 *   ejected for ordinary jitter; phi(t) = -log10(P(X > t)) with
 *   P(X > t) = erfc((t - mean) / (sd * sqrt 2)) / 2, clamped to [0, 100],
 *   and 0 with fewer than RPCI_PHI_MIN_SAMPLES samples. t is the age of the
 *   oldest call in flight, or the last latency when idle. phi > phi_eject
 *   is the same as t > mean + z * sd for one z (rpci_phi_z), so picks
 *   compare ages with a threshold recomputed per sample, not erfc per pick.
 * - An outlier with nothing in flight is given one call again once its last
 *   call ended at least the breaker's base cool-down ago (otherwise a peer
 *   ejected on its last latency would never get the call that clears it).
 * - Breaker: closed -> open after `failures` consecutive FAILED outcomes;
 *   open for base << reopens (capped at max); then half-open, admitting one
 *   probe (the first pick after the cool-down). The probe's OK closes it
 *   (and resets the cool-down), its FAILED re-opens it with the next
 *   cool-down, ABANDONED frees the probe slot. Outcomes of other calls
 *   (started before it opened) change nothing while open or half-open.
 */
#ifndef RPCI_CLUSTER_ROUTE_PEER_H
#define RPCI_CLUSTER_ROUTE_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/route.h"

#define RPCI_PHI_MIN_SAMPLES 8
#define RPCI_PHI_MIN_SD_US 1000.0
#define RPCI_ROUTE_WINDOW_MAX 1024
#define RPCI_ROUTE_SAMPLE_MAX ((int64_t)1 << 26)
#define RPCI_ROUTE_EWMA_IDLE_US 2000000.0

enum { RPCI_BREAKER_CLOSED = 0, RPCI_BREAKER_OPEN = 1, RPCI_BREAKER_HALF = 2 };

/* The registry-wide judgement settings, derived from rpci_route_cfg. */
typedef struct rpci_judge_cfg {
  int failures;    /* consecutive failures that open the breaker */
  int64_t base_us; /* first cool-down */
  int64_t max_us;  /* cool-down cap */
  int window;      /* samples kept per peer, 2..RPCI_ROUTE_WINDOW_MAX */
  double z_eject;  /* phi > phi_eject <=> z > z_eject; HUGE_VAL: off */
} rpci_judge_cfg;

typedef struct rpci_rpeer {
  char name[RPCI_ROUTE_NAME];
  char addr[RPCI_ROUTE_ADDR];
  const char **tag_keys, **tag_values; /* into tag_store */
  size_t ntags;
  char *tag_store;
  int suspect;
  /* calls in flight: start times, ascending */
  int64_t *starts;
  size_t nstarts, cap_starts;
  /* latency */
  double ewma_us;     /* 0 until the first sample */
  int64_t ewma_at_us; /* when ewma_us was last set */
  int64_t *win;       /* ring of cfg.window samples */
  int wn, wpos;
  int64_t wsum, wsq, last_us, last_done_us;
  double eject_at_us; /* ages above this are outliers (when wn is enough) */
  /* breaker */
  int breaker, consecutive, reopens, probe;
  int64_t open_until_us, probe_start_us;
  uint64_t calls, failures;
} rpci_rpeer;

/* The z with -log10(erfc(z / sqrt 2) / 2) == phi (phi in (0, 100)). */
double rpci_phi_z(double phi);
/* phi of p at now (see the design notes), in [0, 100]. */
double rpci_rpeer_phi(const rpci_rpeer *p, int64_t now_us);
/* 1 when p counts as an outlier at now. */
int rpci_rpeer_outlier(const rpci_rpeer *p, const rpci_judge_cfg *c, int64_t now_us);
/* 1 when the breaker lets a call through at now (an open breaker whose
 * cool-down is over becomes half-open here). */
int rpci_rpeer_admits(rpci_rpeer *p, int64_t now_us);
/* The latency estimate of p at now given the prior (see the notes). */
double rpci_rpeer_estimate(const rpci_rpeer *p, double prior_us, int64_t now_us);
/* Counts a call started at now (prior: as for the estimate). Returns 0 or
 * -1 (out of memory). */
int rpci_rpeer_start(rpci_rpeer *p, double prior_us, int64_t now_us);
/* Ends the call started at started_us with an rpci_route_outcome; ignored
 * when no such call is in flight. */
void rpci_rpeer_done(rpci_rpeer *p, const rpci_judge_cfg *c, int64_t started_us, int64_t now_us,
                     int outcome);
/* Mean of the window, or 0 when empty. */
double rpci_rpeer_mean(const rpci_rpeer *p);
/* Frees what p owns (not p). */
void rpci_rpeer_clear(rpci_rpeer *p);

#endif
