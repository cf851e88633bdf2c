/*
 * rpcnet_cluster_sim: figures of the SWIM core from the simulator
 * (tests/sim/swimsim.h), the table of docs/cluster.md "Simulator figures".
 *
 *   rpcnet_cluster_sim [--nodes N] [--quick] [--seed S] [--only WHAT]
 *                      [--set key=value ...]
 *
 * Without --nodes it measures N = 1,000 and N = 10,000. --quick shortens
 * the long phases (the loss hour becomes 10 minutes, the stall runs 3
 * minutes) and repeats less. --only runs one of: join, crash, loss, stall,
 * bytes. --set overrides a tuning value of rpci_swim_cfg (probe_interval_ms,
 * probe_timeout_ms, suspicion_mult, suspicion_max_mult, retransmit_mult,
 * gossip_interval_ms, gossip_nodes, indirect_checks, awareness_max,
 * sync_interval_ms, reconnect_interval_ms).
 *
 * Every cluster starts converged (swimsim_bootstrap) and runs 20 s first.
 *   join    a new node joins through one member: time until 99.99% of the
 *           members hold it (mean of 5 joins; 3 with --quick)
 *   crash   a member crashes: time until one member suspects it, and until
 *           every running member holds it dead (mean of 5; 3)
 *   loss    5% datagram loss for one simulated hour: running members
 *           declared dead (FAILED events about them, any observer)
 *   stall   10% of the members each stall for 0.5-5 s, run 5-15 s (times
 *           N / 1000 above 1,000 nodes), stall again...: FAILED events
 *           about running members over 10
 *           simulated minutes (3 above 2,000 nodes; 3 and 1 with --quick),
 *           with Lifeguard and with lifeguard = -1; also SUSPECTED events,
 *           and both about members never stalled
 *   bytes   datagram + push-pull bytes per member per second, idle for 60 s
 *           and under churn (every 2 s one member crashes and one crashed
 *           earlier restarts with a higher incarnation and rejoins)
 * and the simulation speed (simulated seconds per wall second, all phases).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swimsim.h"

#define SEC 1000000LL

static struct {
  int quick;
  int run_min_ms, run_max_ms; /* a stalled member runs this long between stalls */
  uint64_t seed;
  const char *only;
  rpci_swim_cfg tune;
} opt;

/* What the event callback watches. */
static struct {
  int subject;         /* node watched, -1 none */
  int n;               /* node slots */
  unsigned char *seen; /* observers that reported the watched event */
  int count;
  int want_type, want_type2;
  int64_t first_suspect;
  uint64_t false_failed, false_suspected, false_suspected_healthy;
  const unsigned char *stalled;  /* stall set, or NULL */
  uint64_t false_failed_healthy; /* ... about members outside the stall set */
} w;

static double sim_seconds, wall_seconds;

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_event(void *ud, swimsim *sim, int node, const rpci_swim_event *ev) {
  (void)ud;
  int subj = ev->name[0] == 'n' ? atoi(ev->name + 1) : -1;
  if (subj < 0 || subj >= w.n) return;
  if (ev->type == RPCI_SWIM_EV_SUSPECTED && swimsim_up(sim, subj)) {
    w.false_suspected++;
    if (!w.stalled || !w.stalled[subj]) w.false_suspected_healthy++;
  }
  if (ev->type == RPCI_SWIM_EV_FAILED && swimsim_up(sim, subj)) {
    w.false_failed++;
    if (!w.stalled || !w.stalled[subj]) w.false_failed_healthy++;
  }
  if (subj != w.subject) return;
  if (ev->type == RPCI_SWIM_EV_SUSPECTED && w.first_suspect < 0) w.first_suspect = swimsim_now(sim);
  if ((ev->type == w.want_type || ev->type == w.want_type2) && !w.seen[node]) {
    w.seen[node] = 1;
    w.count++;
  }
}

static void watch(int subject, int type, int type2) {
  memset(w.seen, 0, (size_t)w.n);
  w.subject = subject;
  w.count = 0;
  w.want_type = type;
  w.want_type2 = type2;
  w.first_suspect = -1;
}

static swimsim *make(int slots, int lifeguard, uint64_t seed) {
  swimsim_cfg c;
  memset(&c, 0, sizeof c);
  c.seed = seed;
  c.max_nodes = slots;
  c.swim = opt.tune;
  c.swim.lifeguard = lifeguard;
  c.on_event = on_event;
  free(w.seen);
  w.n = slots;
  w.seen = calloc((size_t)slots, 1);
  w.subject = -1;
  w.stalled = NULL;
  return swimsim_new(&c);
}

/* Runs for `us` of simulated time, accounting speed. */
static void phase(const char *name, int n) {
  static double t0;
  if (t0 == 0) t0 = wall();
  fprintf(stderr, "[%7.1f s] %s, %d nodes\n", wall() - t0, name, n);
}

static void run_for(swimsim *sim, int64_t us) {
  double t = wall();
  swimsim_run_until(sim, swimsim_now(sim) + us);
  wall_seconds += wall() - t;
  sim_seconds += (double)us / 1e6;
}

static int running(swimsim *sim) {
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  return (int)st.running;
}

static uint64_t rnd(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A random running member below n. */
static int pick_up(swimsim *sim, int n, uint64_t *r) {
  for (;;) {
    int i = (int)(rnd(r) % (uint64_t)n);
    if (swimsim_up(sim, i) && !swimsim_stalled(sim, i)) return i;
  }
}

static void check(swimsim *sim) {
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  if (st.violations) {
    fprintf(stderr, "INVARIANT VIOLATIONS: %llu, first: %s\n", (unsigned long long)st.violations,
            swimsim_violation(sim));
    exit(1);
  }
}

static int wanted(const char *what) { return !opt.only || strcmp(opt.only, what) == 0; }

typedef struct figures {
  double join_s, suspect_s, all_dead_s;
  uint64_t loss_false, loss_minutes;
  uint64_t stall_lg, stall_lg_healthy, stall_plain, stall_plain_healthy, stall_minutes;
  uint64_t susp_lg[2], susp_plain[2]; /* false suspicions: all, of never-stalled members */
  double idle_bps, churn_bps;
} figures;

static void measure_join_crash(int n, figures *f) {
  int reps = opt.quick ? 3 : 5;
  swimsim *sim = make(n + reps, 0, opt.seed);
  if (!sim || swimsim_bootstrap(sim, n)) {
    fprintf(stderr, "bootstrap of %d nodes failed\n", n);
    exit(1);
  }
  uint64_t r = opt.seed * 31 + 5;
  run_for(sim, 20 * SEC);
  if (wanted("join")) {
    double sum = 0;
    int need = (int)ceil(0.9999 * n);
    for (int k = 0; k < reps; k++) {
      int id = n + k, seed = pick_up(sim, n, &r);
      watch(id, RPCI_SWIM_EV_JOINED, RPCI_SWIM_EV_JOINED);
      swimsim_start(sim, id, 1);
      int64_t t0 = swimsim_now(sim);
      swimsim_join(sim, id, &seed, 1);
      while (w.count < need && swimsim_now(sim) - t0 < 120 * SEC) run_for(sim, 10000);
      sum += (double)(swimsim_now(sim) - t0) / 1e6;
      run_for(sim, 10 * SEC);
    }
    f->join_s = sum / reps;
  }
  if (wanted("crash")) {
    double s1 = 0, s2 = 0;
    for (int k = 0; k < reps; k++) {
      int victim = pick_up(sim, n, &r);
      watch(victim, RPCI_SWIM_EV_FAILED, RPCI_SWIM_EV_FAILED);
      swimsim_crash(sim, victim);
      int64_t t0 = swimsim_now(sim);
      while (w.count < running(sim) && swimsim_now(sim) - t0 < 300 * SEC) run_for(sim, 10000);
      s1 += (double)(w.first_suspect - t0) / 1e6;
      s2 += (double)(swimsim_now(sim) - t0) / 1e6;
      run_for(sim, 20 * SEC);
    }
    f->suspect_s = s1 / reps;
    f->all_dead_s = s2 / reps;
  }
  check(sim);
  swimsim_free(sim);
}

static void measure_loss(int n, figures *f) {
  swimsim *sim = make(n, 0, opt.seed + 1);
  if (!sim || swimsim_bootstrap(sim, n)) exit(1);
  run_for(sim, 20 * SEC);
  w.false_failed = 0;
  swimsim_set_loss(sim, 0.05);
  f->loss_minutes = opt.quick ? 10 : 60;
  for (uint64_t m = 0; m < f->loss_minutes; m++) run_for(sim, 60 * SEC);
  f->loss_false = w.false_failed;
  check(sim);
  swimsim_free(sim);
}

static void measure_stall(int n, int lifeguard, uint64_t *all, uint64_t *healthy, uint64_t *minutes,
                          uint64_t susp[2]) {
  swimsim *sim = make(n, lifeguard, opt.seed + 2);
  if (!sim || swimsim_bootstrap(sim, n)) exit(1);
  run_for(sim, 20 * SEC);
  /* The gaps between stalls grow with N / 1000, so that the cluster sees
   * the same number of stalls per second at every size: the number of
   * membership changes a SWIM cluster can disseminate per second does not
   * grow with N (docs/cluster.md, "Simulator figures"). */
  int64_t scale = n > 1000 ? n / 1000 : 1;
  unsigned char *stalled = calloc((size_t)n, 1);
  int64_t *next = calloc((size_t)n, sizeof *next);
  uint64_t r = opt.seed * 77 + 1;
  int k = 0;
  while (k < n / 10) {
    int i = (int)(rnd(&r) % (uint64_t)n);
    if (stalled[i]) continue;
    stalled[i] = 1;
    next[i] = swimsim_now(sim) + (int64_t)(rnd(&r) % (uint64_t)(15 * SEC * scale));
    k++;
  }
  w.stalled = stalled;
  w.false_failed = w.false_failed_healthy = w.false_suspected = w.false_suspected_healthy = 0;
  /* Stalls cost ~N^2 message deliveries per simulated second (every stall
   * is suspected and refuted cluster-wide): shorter at 10k nodes. */
  *minutes = n <= 2000 ? (opt.quick ? 3 : 10) : (opt.quick ? 1 : 3);
  int64_t end = swimsim_now(sim) + (int64_t)*minutes * 60 * SEC;
  while (swimsim_now(sim) < end) {
    int64_t now = swimsim_now(sim);
    for (int i = 0; i < n; i++) {
      if (!stalled[i] || now < next[i]) continue;
      int64_t dur = 500000 + (int64_t)(rnd(&r) % 4500001);
      swimsim_stall(sim, i, dur);
      int64_t run = (int64_t)opt.run_min_ms * 1000 +
                    (int64_t)(rnd(&r) % ((uint64_t)(opt.run_max_ms - opt.run_min_ms) * 1000 + 1));
      run *= scale;
      next[i] = now + dur + run;
    }
    run_for(sim, 50000);
  }
  *all = w.false_failed;
  *healthy = w.false_failed_healthy;
  susp[0] = w.false_suspected;
  susp[1] = w.false_suspected_healthy;
  w.stalled = NULL;
  check(sim);
  free(stalled);
  free(next);
  swimsim_free(sim);
}

static uint64_t total_bytes(swimsim *sim) {
  swimsim_stats st;
  swimsim_get_stats(sim, &st);
  return st.bytes_sent + st.sync_bytes;
}

static void measure_bytes(int n, figures *f) {
  int extra = 64;
  swimsim *sim = make(n + extra, 0, opt.seed + 3);
  if (!sim || swimsim_bootstrap(sim, n)) exit(1);
  run_for(sim, 20 * SEC);
  uint64_t b0 = total_bytes(sim);
  run_for(sim, 60 * SEC);
  f->idle_bps = (double)(total_bytes(sim) - b0) / n / 60.0;
  /* churn: crash one, restart one crashed earlier, every 2 s */
  uint64_t r = opt.seed * 13 + 3;
  int crashed[4096], nc = 0;
  uint64_t inc = 1000;
  int64_t dur = opt.quick ? 60 * SEC : 120 * SEC;
  b0 = total_bytes(sim);
  for (int64_t t = 0; t < dur; t += 2 * SEC) {
    int v = pick_up(sim, n, &r);
    swimsim_crash(sim, v);
    if (nc < 4096) crashed[nc++] = v;
    if (nc > 5) { /* restart the oldest crash */
      int back = crashed[0];
      memmove(crashed, crashed + 1, (size_t)(nc - 1) * sizeof crashed[0]);
      nc--;
      swimsim_start(sim, back, ++inc);
      int seed = pick_up(sim, n, &r);
      swimsim_join(sim, back, &seed, 1);
    }
    run_for(sim, 2 * SEC);
  }
  f->churn_bps = (double)(total_bytes(sim) - b0) / n / ((double)dur / 1e6);
  check(sim);
  swimsim_free(sim);
}

static void print_row(int n, const figures *f) {
  printf(
      "| %d | %.2f s | %.2f s | %.2f s | %llu in %llu min | %llu | %llu | %.0f B/s | %.0f B/s |\n",
      n, f->join_s, f->suspect_s, f->all_dead_s, (unsigned long long)f->loss_false,
      (unsigned long long)f->loss_minutes, (unsigned long long)f->stall_lg,
      (unsigned long long)f->stall_plain, f->idle_bps, f->churn_bps);
  fflush(stdout);
}

static void print_stalls(int n, const figures *f) {
  if (!f->stall_minutes) return;
  printf(
      "stalls, %d nodes, %llu min: Lifeguard %llu false deaths (%llu of never-stalled members), "
      "%llu false suspicions (%llu); plain SWIM %llu false deaths (%llu), %llu false "
      "suspicions (%llu)\n",
      n, (unsigned long long)f->stall_minutes, (unsigned long long)f->stall_lg,
      (unsigned long long)f->stall_lg_healthy, (unsigned long long)f->susp_lg[0],
      (unsigned long long)f->susp_lg[1], (unsigned long long)f->stall_plain,
      (unsigned long long)f->stall_plain_healthy, (unsigned long long)f->susp_plain[0],
      (unsigned long long)f->susp_plain[1]);
}

static int set_tune(const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq) return -1;
  int v = atoi(eq + 1);
  size_t k = (size_t)(eq - kv);
#define T(name)                                           \
  if (k == strlen(#name) && strncmp(kv, #name, k) == 0) { \
    opt.tune.name = v;                                    \
    return 0;                                             \
  }
  T(probe_interval_ms)
  T(probe_timeout_ms)
  T(suspicion_mult)
  T(suspicion_max_mult)
  T(retransmit_mult)
  T(gossip_interval_ms)
  T(gossip_nodes)
  T(indirect_checks)
  T(awareness_max)
  T(sync_interval_ms)
  T(reconnect_interval_ms)
#undef T
  return -1;
}

int main(int argc, char **argv) {
  int sizes[2] = {1000, 10000}, nsizes = 2;
  figures all[2];
  memset(all, 0, sizeof all);
  opt.seed = 1;
  opt.run_min_ms = 5000;
  opt.run_max_ms = 15000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
      sizes[0] = atoi(argv[++i]);
      nsizes = 1;
    } else if (strcmp(argv[i], "--quick") == 0) {
      opt.quick = 1;
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      opt.seed = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--stall-run") == 0 && i + 1 < argc) {
      sscanf(argv[++i], "%d-%d", &opt.run_min_ms, &opt.run_max_ms);
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      opt.only = argv[++i];
    } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && set_tune(argv[i + 1]) == 0) {
      i++;
    } else {
      fprintf(stderr,
              "usage: %s [--nodes N] [--quick] [--seed S] [--only join|crash|loss|stall|bytes] "
              "[--set key=value]...\n",
              argv[0]);
      return 2;
    }
  }
  printf(
      "| nodes | join to 99.99%% | crash: first suspect | crash: dead everywhere "
      "| false deaths at 5%% loss | false deaths, 10%% stalling: Lifeguard | plain SWIM "
      "| bytes/node/s idle | under churn |\n");
  printf("|---|---|---|---|---|---|---|---|---|\n");
  for (int k = 0; k < nsizes; k++) {
    int n = sizes[k];
    if (n < 10) return 2;
    figures f;
    memset(&f, 0, sizeof f);
    if (wanted("join") || wanted("crash")) phase("join and crash", n), measure_join_crash(n, &f);
    if (wanted("loss")) phase("5% loss", n), measure_loss(n, &f);
    if (wanted("stall")) {
      phase("stalls", n);
      measure_stall(n, 0, &f.stall_lg, &f.stall_lg_healthy, &f.stall_minutes, f.susp_lg);
      measure_stall(n, -1, &f.stall_plain, &f.stall_plain_healthy, &f.stall_minutes, f.susp_plain);
    }
    if (wanted("bytes")) phase("bytes", n), measure_bytes(n, &f);
    print_row(n, &f);
    all[k] = f;
  }
  for (int k = 0; k < nsizes; k++) print_stalls(sizes[k], &all[k]);
  printf("simulated %.0f s in %.1f s of wall time: %.1fx real time\n", sim_seconds, wall_seconds,
         wall_seconds > 0 ? sim_seconds / wall_seconds : 0.0);
  free(w.seen);
  return 0;
}
