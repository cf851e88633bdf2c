/*
 * The cluster C API end to end, in one process over loopback: real UDP
 * gossip sealed with a cluster key, real QUIC push-pull and calls.
 * Fast failure-detector settings keep it quick; nothing asserts timing
 * (waits are bounded polls that fail the case when they run out).
 */
#include <poll.h>
#include <pthread.h>

#include "testutil.h"
#include "wire/value.h"

#define KEY "0123456789abcdef0123456789abcdef"

typedef struct node {
  rpcnet_server *srv;
  rpcnet_cluster *cl;
  char name[32];
} node;

static void work(rpcnet_request *req, void *user) {
  node *n = user;
  rpcnet_request_reply(req, n->name, strlen(n->name));
}

static void unavailable(rpcnet_request *req, void *user) {
  (void)user;
  rpcnet_request_fail(req, RPCNET_UNAVAILABLE, "draining");
}

static rpcnet_config *node_config(const char *name, const char *key) {
  return tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", "ca_file", "@ca.pem",
                   "server_name", "localhost", "node_name", name, "gossip_bind", "127.0.0.1:0",
                   "cluster_keys", key, "probe_interval_ms", "200", "probe_timeout_ms", "100",
                   "gossip_interval_ms", "50", "join_timeout_ms", "3000", NULL);
}

/* A node; with_server: it serves "work" (answering its name). */
static int node_start(node *n, const char *name, const char *key, int with_server) {
  memset(n, 0, sizeof *n);
  snprintf(n->name, sizeof n->name, "%s", name);
  rpcnet_config *cfg = node_config(name, key);
  if (!cfg) return -1;
  if (with_server) {
    n->srv = rpcnet_server_new(cfg);
    if (!n->srv || rpcnet_server_listen(n->srv, "127.0.0.1:0") != RPCNET_OK) return -1;
    rpcnet_server_handle(n->srv, "work", work, n);
  }
  n->cl = rpcnet_cluster_new(cfg);
  rpcnet_config_free(cfg);
  if (!n->cl) {
    fprintf(stderr, "cluster_new: %s\n", rpcnet_last_error());
    return -1;
  }
  if (with_server && rpcnet_cluster_attach_server(n->cl, n->srv) != RPCNET_OK) return -1;
  if (with_server) rpcnet_cluster_set_tag(n->cl, "role", "worker");
  return 0;
}

static void node_stop(node *n) {
  rpcnet_cluster_free(n->cl);
  if (n->srv) rpcnet_server_free(n->srv);
  n->cl = NULL;
  n->srv = NULL;
}

static const char *seed_of(node *n) {
  static char buf[64];
  snprintf(buf, sizeof buf, "127.0.0.1:%d", rpcnet_cluster_gossip_port(n->cl));
  return buf;
}

/* The state of member `name` in n's listing filtered by filter ("" when
 * absent); *count receives the listing's length. */
static void member_state(node *n, const char *filter, const char *name, char *state, size_t len,
                         size_t *count) {
  state[0] = 0;
  void *cbor;
  size_t clen;
  if (count) *count = 0;
  if (rpcnet_cluster_members(n->cl, filter, &cbor, &clen) != RPCNET_OK) return;
  rpci_value *v = NULL;
  if (rpci_value_decode(cbor, clen, NULL, &v, NULL) == RPCI_VERR_OK && v->kind == RPCI_V_ARRAY) {
    if (count) *count = v->u.arr.n;
    for (size_t i = 0; i < v->u.arr.n; i++) {
      const rpci_value *nm = rpci_value_map_get(&v->u.arr.items[i], "name");
      const rpci_value *st = rpci_value_map_get(&v->u.arr.items[i], "state");
      if (nm && st && !strcmp((const char *)nm->u.str.p, name))
        snprintf(state, len, "%s", (const char *)st->u.str.p);
    }
  }
  rpci_value_free(v);
  rpcnet_free(cbor);
}

/* Polls until n holds member `name` in `want` state (up to ms). */
static int wait_state(node *n, const char *name, const char *want, int ms) {
  int64_t end = tu_now_ms() + ms;
  char st[16];
  do {
    member_state(n, NULL, name, st, sizeof st, NULL);
    if (!strcmp(st, want)) return 1;
    tu_sleep_ms(20);
  } while (tu_now_ms() < end);
  fprintf(stderr, "%s: %s is '%s', wanted '%s'\n", n->name, name, st, want);
  return 0;
}

/* Waits for an event of type about member (NULL: any member). */
static int wait_event(node *n, const char *type, const char *member, int ms) {
  int64_t end = tu_now_ms() + ms;
  while (tu_now_ms() < end) {
    void *ev;
    size_t len;
    if (rpcnet_cluster_next_event(n->cl, 100, &ev, &len) != RPCNET_OK) continue;
    rpci_value *v = NULL;
    int hit = 0;
    if (rpci_value_decode(ev, len, NULL, &v, NULL) == RPCI_VERR_OK) {
      const rpci_value *t = rpci_value_map_get(v, "type");
      const rpci_value *m = rpci_value_map_get(v, "member");
      const rpci_value *nm = m ? rpci_value_map_get(m, "name") : NULL;
      hit = t && !strcmp((const char *)t->u.str.p, type) &&
            (!member || (nm && !strcmp((const char *)nm->u.str.p, member)));
    }
    rpci_value_free(v);
    rpcnet_free(ev);
    if (hit) return 1;
  }
  fprintf(stderr, "%s: no '%s' event about %s\n", n->name, type, member ? member : "anyone");
  return 0;
}

static void test_config_errors(void) {
  rpcnet_config *cfg = tu_config("cluster_keys", "not-a-key", "gossip_bind", "127.0.0.1:0", NULL);
  REQUIRE(cfg);
  CHECK(rpcnet_cluster_new(cfg) == NULL);
  CHECK(tu_contains(rpcnet_last_error(), "cluster_keys"));
  CHECK(!tu_contains(rpcnet_last_error(), "not-a-key")); /* never echo key material */
  rpcnet_config_free(cfg);
  cfg = tu_config("cluster_strategy", "fastest", "gossip_bind", "127.0.0.1:0", NULL);
  CHECK(rpcnet_cluster_new(cfg) == NULL);
  CHECK(tu_contains(rpcnet_last_error(), "cluster_strategy"));
  rpcnet_config_free(cfg);
  cfg = tu_config("gossip_bind", "not an address", NULL);
  CHECK(rpcnet_cluster_new(cfg) == NULL);
  rpcnet_config_free(cfg);
  CHECK_EQ_INT(rpcnet_cluster_join(NULL, "127.0.0.1:1"), RPCNET_INVALID_ARGUMENT);
  CHECK_EQ_INT(rpcnet_cluster_fd(NULL), -1);
  rpcnet_cluster_free(NULL);
}

static void test_join_members_events_calls(void) {
  node a, b, d;
  REQUIRE(node_start(&a, "a", KEY, 1) == 0);
  REQUIRE(node_start(&b, "b", KEY, 1) == 0);
  REQUIRE(node_start(&d, "d", KEY, 0) == 0);
  CHECK(rpcnet_cluster_fd(a.cl) >= 0);
  CHECK(!strcmp(rpcnet_cluster_name(a.cl), "a"));
  CHECK_EQ_INT(rpcnet_cluster_join(b.cl, seed_of(&a)), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_cluster_join(d.cl, seed_of(&a)), RPCNET_OK);
  CHECK(wait_event(&a, "joined", "b", 5000));
  CHECK(wait_state(&d, "a", "alive", 5000));
  CHECK(wait_state(&d, "b", "alive", 5000));
  CHECK(wait_state(&b, "d", "alive", 5000));
  char st[16];
  size_t n = 0;
  member_state(&d, "role=worker", "a", st, sizeof st, &n);
  CHECK_EQ_INT(n, 2); /* a and b; d has no role tag */
  CHECK_EQ_INT(rpcnet_cluster_members(d.cl, "=bad", &(void *){0}, &(size_t){0}),
               RPCNET_INVALID_ARGUMENT);

  /* Routed calls reach both workers. */
  int by_a = 0, by_b = 0;
  for (int i = 0; i < 40; i++) {
    void *resp;
    size_t len;
    char who[80];
    int rc = rpcnet_cluster_call_ex(d.cl, "role=worker", "work", "x", 1, &resp, &len, 2000, 0, who,
                                    sizeof who);
    CHECK_EQ_INT(rc, RPCNET_OK);
    if (rc != RPCNET_OK) break;
    CHECK(len == strlen(who) && !memcmp(resp, who, len));
    by_a += !strcmp(who, "a");
    by_b += !strcmp(who, "b");
    rpcnet_free(resp);
  }
  CHECK(by_a > 0 && by_b > 0);
  CHECK_EQ_INT(by_a + by_b, 40);

  /* A tag change reaches the director and steers calls. */
  CHECK_EQ_INT(rpcnet_cluster_set_tag(a.cl, "zone", "eu"), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_cluster_set_tag(a.cl, "bad,key", "x"), RPCNET_INVALID_ARGUMENT);
  int64_t end = tu_now_ms() + 5000;
  do member_state(&d, "zone=eu", "a", st, sizeof st, &n);
  while (n != 1 && tu_now_ms() < end && (tu_sleep_ms(20), 1));
  CHECK_EQ_INT(n, 1);
  for (int i = 0; i < 10; i++) {
    void *resp;
    size_t len;
    CHECK_EQ_INT(rpcnet_cluster_call(d.cl, "zone=eu", "work", "", 0, &resp, &len, 2000), RPCNET_OK);
    CHECK(len == 1 && !memcmp(resp, "a", 1));
    rpcnet_free(resp);
  }
  void *resp = NULL;
  size_t len = 0;
  CHECK_EQ_INT(rpcnet_cluster_call(d.cl, "zone=us", "work", "", 0, &resp, &len, 500),
               RPCNET_UNAVAILABLE);
  CHECK(resp == NULL);
  CHECK(tu_contains(rpcnet_last_error(), "no member"));

  /* The streaming form picks a member too. */
  rpcnet_call *k = rpcnet_cluster_start(d.cl, "zone=eu", "work", 2000);
  REQUIRE(k);
  CHECK_EQ_INT(rpcnet_call_send_last(k, "y", 1), RPCNET_OK);
  void *msg;
  CHECK_EQ_INT(rpcnet_call_recv(k, -1, &msg, &len), RPCNET_OK);
  CHECK(len == 1 && !memcmp(msg, "a", 1));
  rpcnet_free(msg);
  rpcnet_call_free(k);

  /* A graceful leave is "left" elsewhere, and calls avoid the leaver. */
  CHECK_EQ_INT(rpcnet_cluster_leave(b.cl, 2000), RPCNET_OK);
  CHECK(wait_state(&a, "b", "left", 5000));
  CHECK(wait_state(&d, "b", "left", 5000));
  for (int i = 0; i < 10; i++) {
    char who[80];
    CHECK_EQ_INT(rpcnet_cluster_call_ex(d.cl, "role=worker", "work", "", 0, &resp, &len, 2000, 0,
                                        who, sizeof who),
                 RPCNET_OK);
    CHECK(!strcmp(who, "a"));
    rpcnet_free(resp);
  }
  CHECK_EQ_INT(rpcnet_cluster_join(b.cl, seed_of(&a)), RPCNET_FAILED_PRECONDITION);
  node_stop(&b);
  node_stop(&d);
  node_stop(&a);
}

static void test_failover_idempotent(void) {
  node a, b, d;
  REQUIRE(node_start(&a, "fa", KEY, 1) == 0);
  REQUIRE(node_start(&b, "fb", KEY, 1) == 0);
  REQUIRE(node_start(&d, "fd", KEY, 0) == 0);
  CHECK_EQ_INT(rpcnet_cluster_join(b.cl, seed_of(&a)), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_cluster_join(d.cl, seed_of(&a)), RPCNET_OK);
  CHECK(wait_state(&d, "fb", "alive", 5000));
  CHECK(wait_state(&d, "fa", "alive", 5000));
  /* b answers UNAVAILABLE (draining): idempotent calls go on to a. */
  rpcnet_server_handle(b.srv, "work", unavailable, NULL);
  int fails = 0;
  for (int i = 0; i < 30; i++) {
    void *resp;
    size_t len;
    char who[80];
    int rc = rpcnet_cluster_call_ex(d.cl, NULL, "work", "", 0, &resp, &len, 2000,
                                    RPCNET_CALL_IDEMPOTENT, who, sizeof who);
    if (rc != RPCNET_OK) fails++;
    if (rc == RPCNET_OK) CHECK(!strcmp(who, "fa"));
    rpcnet_free(resp);
  }
  CHECK_EQ_INT(fails, 0);
  /* Without the flag, a call that lands on b fails. */
  int unavailable_seen = 0;
  for (int i = 0; i < 30 && !unavailable_seen; i++) {
    void *resp;
    size_t len;
    unavailable_seen =
        rpcnet_cluster_call(d.cl, NULL, "work", "", 0, &resp, &len, 2000) == RPCNET_UNAVAILABLE;
    rpcnet_free(resp);
  }
  /* (the breaker may have ejected b already: then a serves everything) */
  (void)unavailable_seen;
  node_stop(&b); /* b vanishes without leaving: a and d declare it dead */
  CHECK(wait_state(&d, "fb", "dead", 15000));
  CHECK(wait_state(&a, "fb", "dead", 15000));
  node_stop(&d);
  node_stop(&a);
}

static void test_wrong_key_is_refused(void) {
  node a, x, p;
  REQUIRE(node_start(&a, "ka", KEY, 1) == 0);
  REQUIRE(node_start(&x, "kx", "fedcba9876543210fedcba9876543210", 1) == 0);
  CHECK_EQ_INT(rpcnet_cluster_join(x.cl, seed_of(&a)), RPCNET_PERMISSION_DENIED);
  CHECK(tu_contains(rpcnet_last_error(), "cluster_keys"));
  REQUIRE(node_start(&p, "kp", "", 1) == 0); /* no key at all */
  CHECK_EQ_INT(rpcnet_cluster_join(p.cl, seed_of(&a)), RPCNET_PERMISSION_DENIED);
  node q; /* keyless, without a server: its join pings are the smallest */
  REQUIRE(node_start(&q, "kq", "", 0) == 0);
  CHECK_EQ_INT(rpcnet_cluster_join(q.cl, seed_of(&a)), RPCNET_PERMISSION_DENIED);
  CHECK(tu_contains(rpcnet_last_error(), "plaintext"));
  node_stop(&q);
  char st[16];
  member_state(&a, NULL, "kx", st, sizeof st, NULL);
  CHECK(st[0] == 0); /* never admitted */
  member_state(&a, NULL, "kp", st, sizeof st, NULL);
  CHECK(st[0] == 0);
  CHECK_EQ_INT(rpcnet_cluster_join(a.cl, "127.0.0.1:1"), RPCNET_UNAVAILABLE);
  CHECK_EQ_INT(rpcnet_cluster_join(a.cl, "127.0.0.1:notaport"), RPCNET_INVALID_ARGUMENT);
  node_stop(&p);
  node_stop(&x);
  node_stop(&a);
}

/* Whether n lists member `name` among those matching filter. */
static int sees_tag(node *n, const char *name, const char *filter) {
  char st[16];
  size_t count = 0;
  member_state(n, filter, name, st, sizeof st, &count);
  return st[0] != 0;
}

static int wait_tag(node *n, const char *name, const char *filter, int ms) {
  int64_t end = tu_now_ms() + ms;
  while (!sees_tag(n, name, filter)) {
    if (tu_now_ms() >= end) return 0;
    tu_sleep_ms(20);
  }
  return 1;
}

/* A counter from rpcnet_cluster_stats, or -1. */
static long long stat_of(node *n, const char *key) {
  void *cbor;
  size_t len;
  long long out = -1;
  if (rpcnet_cluster_stats(n->cl, &cbor, &len) != RPCNET_OK) return -1;
  rpci_value *v = NULL;
  if (rpci_value_decode(cbor, len, NULL, &v, NULL) == RPCI_VERR_OK) {
    const rpci_value *x = rpci_value_map_get(v, key);
    if (x && x->kind == RPCI_V_UINT) out = (long long)x->u.uint;
  }
  rpci_value_free(v);
  rpcnet_free(cbor);
  return out;
}

static void test_key_rotation_and_stats(void) {
  const char *k2 = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; /* base64, 32 bytes */
  node a, b;
  REQUIRE(node_start(&a, "ra", KEY, 1) == 0);
  REQUIRE(node_start(&b, "rb", KEY, 1) == 0);
  REQUIRE(rpcnet_cluster_join(b.cl, seed_of(&a)) == RPCNET_OK);
  char ring[3][128];
  snprintf(ring[0], sizeof ring[0], "%s,%s", KEY, k2); /* add the new key */
  snprintf(ring[1], sizeof ring[1], "%s,%s", k2, KEY); /* make it primary */
  snprintf(ring[2], sizeof ring[2], "%s", k2);         /* drop the old one */
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(rpcnet_cluster_set_keys(a.cl, ring[i]), RPCNET_OK);
    CHECK_EQ_INT(rpcnet_cluster_set_keys(b.cl, ring[i]), RPCNET_OK);
    char val[8], filter[32];
    snprintf(val, sizeof val, "s%d", i);
    snprintf(filter, sizeof filter, "step=%s", val);
    CHECK_EQ_INT(rpcnet_cluster_set_tag(a.cl, "step", val), RPCNET_OK);
    CHECK(wait_tag(&b, "ra", filter, 5000)); /* gossip still flows */
  }
  CHECK(wait_state(&b, "ra", "alive", 1000));
  CHECK(wait_state(&a, "rb", "alive", 1000));
  CHECK_EQ_INT(rpcnet_cluster_set_keys(a.cl, "short"), RPCNET_INVALID_ARGUMENT);
  CHECK(!tu_contains(rpcnet_last_error(), "short"));
  /* The old key alone is now refused, and counted. */
  node old;
  REQUIRE(node_start(&old, "rold", KEY, 0) == 0);
  CHECK_EQ_INT(rpcnet_cluster_join(old.cl, seed_of(&a)), RPCNET_PERMISSION_DENIED);
  CHECK(stat_of(&a, "auth_failures") > 0);
  CHECK(stat_of(&a, "rejects_sent") > 0);
  CHECK(stat_of(&a, "members") >= 2);
  CHECK(stat_of(&a, "pkts_in") > 0);
  CHECK(stat_of(&a, "incarnation") > 0);
  node_stop(&old);
  node_stop(&b);
  node_stop(&a);
}

int main(void) {
  tu_pki_dir_locked();
  RUN(test_config_errors);
  RUN(test_join_members_events_calls);
  RUN(test_failover_idempotent);
  RUN(test_wrong_key_is_refused);
  RUN(test_key_rotation_and_stats);
  return TEST_END();
}
