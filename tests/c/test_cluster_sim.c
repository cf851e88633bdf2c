/*
 * The SWIM core at scale, in the simulator (tests/sim/swimsim.h): 1,000
 * nodes (200 under AddressSanitizer), one seeded run in phases that build
 * on each other:
 *   joins    every node joins through one or two earlier nodes, staggered;
 *            the cluster converges (everyone holds everyone alive)
 *   crash    a crashed node is detected and held dead everywhere
 *   leave    a graceful leave is seen as "left" everywhere
 *   loss     5% datagram loss for minutes: no healthy node declared dead
 *   partition 40% of the nodes cut off from 60%: both sides hold the other
 *            dead, only the minority reports "partitioned"; once the cut is
 *            gone the cluster heals with no action, and the minority
 *            reports "healed"
 * and the simulator's invariants (incarnations never go back, dead never
 * revived by a third party) hold throughout, audited against the cores.
 */
#include <string.h>

#include "swimsim.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_N 200
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_N 200
#endif
#endif
#ifndef SIM_N
#define SIM_N 1000
#endif

#define SEC 1000000LL

static swimsim *sim;
#define MINORITY (SIM_N * 2 / 5) /* nodes 0 .. MINORITY-1 are cut off */

static struct {
  uint64_t false_failed;              /* FAILED events about nodes that are running */
  uint64_t partitioned[2], healed[2]; /* by side: minority, majority */
} ev;

static void on_event(void *ud, swimsim *s, int node, const rpci_swim_event *e) {
  (void)ud;
  if (e->type == RPCI_SWIM_EV_PARTITIONED) ev.partitioned[node >= MINORITY]++;
  if (e->type == RPCI_SWIM_EV_HEALED) ev.healed[node >= MINORITY]++;
  if (e->type == RPCI_SWIM_EV_FAILED) {
    int subj = atoi(e->name + 1);
    if (swimsim_up(s, subj)) ev.false_failed++;
  }
}

static int running(void) {
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  return (int)st.running;
}

static void run_for(int64_t us) { swimsim_run_until(sim, swimsim_now(sim) + us); }

static void check_invariants(void) {
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  if (st.violations) fprintf(stderr, "violation: %s\n", swimsim_violation(sim));
  CHECK(st.violations == 0);
}

static void test_joins_converge(void) {
  swimsim_cfg c;
  memset(&c, 0, sizeof c);
  c.seed = 20240611;
  c.max_nodes = SIM_N;
  c.on_event = on_event;
  sim = swimsim_new(&c);
  REQUIRE(sim);
  REQUIRE(swimsim_start(sim, 0, 1) == 0);
  uint64_t r = 7;
  for (int i = 1; i < SIM_N; i++) {
    run_for(20000);
    REQUIRE(swimsim_start(sim, i, 1) == 0);
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    int seeds[2] = {(int)((r >> 33) % (uint64_t)i), (int)((r >> 13) % (uint64_t)i)};
    swimsim_join(sim, i, seeds, i > 1 ? 2 : 1);
  }
  int64_t t0 = swimsim_now(sim);
  int ok = 0;
  while (!ok && swimsim_now(sim) - t0 < 120 * SEC) {
    run_for(SEC);
    ok = swimsim_converged(sim);
  }
  fprintf(stderr, "converged %.1f s after the last join\n", (double)(swimsim_now(sim) - t0) / 1e6);
  CHECK(ok);
  CHECK(ev.false_failed == 0);
  check_invariants();
}

static void test_crash_detected(void) {
  REQUIRE(sim);
  int c = SIM_N / 3;
  swimsim_crash(sim, c);
  int64_t t0 = swimsim_now(sim), all = -1;
  while (all < 0 && swimsim_now(sim) - t0 < 60 * SEC) {
    run_for(100000);
    if (swimsim_count_holding(sim, c, RPCI_MS_DEAD) == running()) all = swimsim_now(sim) - t0;
  }
  fprintf(stderr, "crash held dead everywhere after %.1f s\n", (double)all / 1e6);
  CHECK(all > 0 && all < 30 * SEC);
  run_for(60 * SEC);
  CHECK(swimsim_count_holding(sim, c, RPCI_MS_DEAD) == running());
  CHECK(ev.false_failed == 0);
  check_invariants();
}

static void test_leave_seen_as_left(void) {
  REQUIRE(sim);
  int l = SIM_N / 2;
  swimsim_leave(sim, l);
  run_for(20 * SEC);
  CHECK(!swimsim_up(sim, l));
  CHECK(swimsim_count_holding(sim, l, RPCI_MS_LEFT) == running());
  CHECK(swimsim_count_holding(sim, l, RPCI_MS_DEAD) == 0);
  check_invariants();
}

static void test_no_false_deaths_at_loss(void) {
  REQUIRE(sim);
  ev.false_failed = 0;
  swimsim_set_loss(sim, 0.05);
  run_for((SIM_N >= 1000 ? 300 : 180) * SEC);
  swimsim_set_loss(sim, 0);
  fprintf(stderr, "false deaths at 5%% loss: %llu\n", (unsigned long long)ev.false_failed);
  CHECK(ev.false_failed == 0);
  run_for(30 * SEC);
  CHECK(swimsim_converged(sim));
  check_invariants();
}

static void test_partition_heals(void) {
  REQUIRE(sim);
  /* 40% cut off from 60%: the minority loses most of its membership and
   * says so; the majority loses less than half and does not. */
  for (int i = 0; i < SIM_N; i++) swimsim_set_group(sim, i, i < MINORITY ? 0 : 1);
  swimsim_groups(sim, 1);
  run_for(90 * SEC);
  CHECK(swimsim_state(sim, 0, SIM_N - 1) == RPCI_MS_DEAD);
  CHECK(swimsim_state(sim, SIM_N - 1, 0) == RPCI_MS_DEAD);
  CHECK(swimsim_state(sim, 0, 1) == RPCI_MS_ALIVE);
  int minority_up = 0;
  for (int i = 0; i < MINORITY; i++) minority_up += swimsim_up(sim, i);
  fprintf(stderr, "partitioned events: minority %llu of %d nodes, majority %llu\n",
          (unsigned long long)ev.partitioned[0], minority_up,
          (unsigned long long)ev.partitioned[1]);
  CHECK(ev.partitioned[0] == (uint64_t)minority_up);
  CHECK(ev.partitioned[1] == 0);
  swimsim_groups(sim, 0);
  int64_t t0 = swimsim_now(sim);
  int ok = 0;
  while (!ok && swimsim_now(sim) - t0 < 300 * SEC) {
    run_for(SEC);
    ok = swimsim_converged(sim);
  }
  fprintf(stderr, "partition healed in %.1f s; healed events: minority %llu, majority %llu\n",
          (double)(swimsim_now(sim) - t0) / 1e6, (unsigned long long)ev.healed[0],
          (unsigned long long)ev.healed[1]);
  CHECK(ok);
  CHECK(ev.healed[0] == (uint64_t)minority_up);
  CHECK(ev.partitioned[0] == (uint64_t)minority_up && ev.partitioned[1] == 0);
  check_invariants();
}

static void test_invariants_audit(void) {
  REQUIRE(sim);
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  CHECK(swimsim_audit(sim) == 0);
  /* The cores only ever exchanged what they encoded: nothing malformed. */
  uint64_t malformed = 0, unknown = 0;
  for (int i = 0; i < SIM_N; i++) {
    if (!swimsim_up(sim, i)) continue;
    rpci_swim_stats cs;
    rpci_swim_get_stats(swimsim_core(sim, i), &cs);
    malformed += cs.malformed;
    unknown += cs.unknown_msgs;
  }
  CHECK(malformed == 0 && unknown == 0);
  check_invariants();
  fprintf(stderr, "%llu events, %llu datagrams (%llu lost), %llu push-pulls\n",
          (unsigned long long)st.events, (unsigned long long)st.pkts_sent,
          (unsigned long long)st.pkts_lost, (unsigned long long)st.syncs);
  swimsim_free(sim);
  sim = NULL;
}

int main(void) {
  RUN(test_joins_converge);
  RUN(test_crash_detected);
  RUN(test_leave_seen_as_left);
  RUN(test_no_false_deaths_at_loss);
  RUN(test_partition_heals);
  RUN(test_invariants_audit);
  return TEST_END();
}
