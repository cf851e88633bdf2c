/*
 * Member listings and events in their public CBOR form, and the router's
 * mirror of membership.
 *
 * Design notes: everything here runs under the node's mu. Encodings are
 * built as value trees and written by the deterministic encoder, so every
 * binding sees the same bytes for the same state. The router mirrors the
 * members SWIM holds alive or suspect that have an RPC address; SWIM's
 * events are the only thing that changes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"
#include "obs/log.h"
#include "wire/value.h"

static int put_text(rpci_value *map, const char *key, const char *text) {
  rpci_value *k = rpci_value_append(map);
  if (!k || rpci_value_set_str(k, RPCI_V_TEXT, key, strlen(key))) return -1;
  rpci_value *v = rpci_value_append(map);
  return v && !rpci_value_set_str(v, RPCI_V_TEXT, text, strlen(text)) ? 0 : -1;
}

static int put_uint(rpci_value *map, const char *key, uint64_t n) {
  rpci_value *k = rpci_value_append(map);
  if (!k || rpci_value_set_str(k, RPCI_V_TEXT, key, strlen(key))) return -1;
  rpci_value *v = rpci_value_append(map);
  if (!v) return -1;
  rpci_value_set_int(v, 0, n);
  return 0;
}

static rpci_value *put_key(rpci_value *map, const char *key, rpci_vkind kind) {
  rpci_value *k = rpci_value_append(map);
  if (!k || rpci_value_set_str(k, RPCI_V_TEXT, key, strlen(key))) return NULL;
  rpci_value *v = rpci_value_append(map);
  if (v) v->kind = kind;
  return v;
}

static const char *breaker_name(int b) { return b == 1 ? "open" : b == 2 ? "half_open" : "closed"; }

/* Fills map (an empty MAP value) with member m. */
static int member_value(rpcnet_cluster *cl, const rpci_swim_member *m, rpci_value *map) {
  map->kind = RPCI_V_MAP;
  rpci_route_info ri;
  memset(&ri, 0, sizeof ri);
  rpci_route_info_get(cl->router, m->name, rpci_node_now_us(), &ri);
  int rc = put_text(map, "name", m->name) | put_text(map, "gossip_addr", m->gossip_addr) |
           put_text(map, "rpc_addr", m->rpc_addr ? m->rpc_addr : "") |
           put_text(map, "state", rpci_mstate_name(m->state)) |
           put_uint(map, "incarnation", m->incarnation) |
           put_uint(map, "inflight", ri.inflight > 0 ? (uint64_t)ri.inflight : 0) |
           put_uint(map, "latency_us", ri.ewma_us > 0 ? (uint64_t)ri.ewma_us : 0) |
           put_text(map, "breaker", breaker_name(ri.breaker));
  if (rc) return -1;
  rpci_value *self = put_key(map, "self", RPCI_V_BOOL);
  rpci_value *phi = put_key(map, "phi", RPCI_V_FLOAT);
  rpci_value *tags = put_key(map, "tags", RPCI_V_MAP);
  if (!self || !phi || !tags) return -1;
  self->u.boolean = m->is_self;
  phi->u.f = ri.phi;
  for (size_t i = 0; i < m->ntags; i++)
    if (put_text(tags, m->tags[i].key, m->tags[i].value)) return -1;
  return 0;
}

static int tags_match(const rpci_filter *f, const rpci_swim_member *m) {
  const char *keys[RPCI_SWIM_MAX_TAGS], *vals[RPCI_SWIM_MAX_TAGS];
  size_t n = m->ntags < RPCI_SWIM_MAX_TAGS ? m->ntags : RPCI_SWIM_MAX_TAGS;
  for (size_t i = 0; i < n; i++) {
    keys[i] = m->tags[i].key;
    vals[i] = m->tags[i].value;
  }
  return rpci_filter_match(f, keys, vals, n);
}

static int encode_detach(rpci_value *v, void **out, size_t *len) {
  rpci_buf b = RPCI_BUF_INIT;
  if (rpci_value_encode(v, &b) != RPCI_VERR_OK) {
    rpci_buf_free(&b);
    return -1;
  }
  *out = rpci_buf_detach(&b, len);
  return *out ? 0 : -1;
}

int rpci_members_encode(rpcnet_cluster *cl, const char *filter, void **out, size_t *len) {
  char err[160];
  rpci_filter *f = rpci_filter_parse(filter, err, sizeof err);
  if (!f) {
    rpci_set_error("rpcnet_cluster_members: bad filter: %s", err);
    return RPCNET_INVALID_ARGUMENT;
  }
  rpci_value *arr = rpci_value_new();
  int rc = arr ? 0 : -1;
  if (arr) arr->kind = RPCI_V_ARRAY;
  pthread_mutex_lock(&cl->mu);
  size_t n = rpci_swim_count(cl->core);
  for (size_t i = 0; i < n && rc == 0; i++) {
    rpci_swim_member m;
    if (rpci_swim_member_at(cl->core, i, &m) != 0 || !tags_match(f, &m)) continue;
    rpci_value *slot = rpci_value_append(arr);
    rc = slot ? member_value(cl, &m, slot) : -1;
  }
  pthread_mutex_unlock(&cl->mu);
  if (rc == 0) rc = encode_detach(arr, out, len);
  rpci_value_free(arr);
  rpci_filter_free(f);
  if (rc) {
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  return RPCNET_OK;
}

int rpcnet_cluster_members(rpcnet_cluster *cl, const char *filter, void **cbor, size_t *len) {
  rpci_clear_error();
  if (!cl || !cbor || !len) {
    rpci_set_error("rpcnet_cluster_members: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  *cbor = NULL;
  *len = 0;
  return rpci_members_encode(cl, filter, cbor, len);
}

/* ---- events ------------------------------------------------------------------ */

static void mirror(rpcnet_cluster *cl, const rpci_swim_event *ev, const rpci_swim_member *m) {
  if (m->is_self) return;
  int gone = m->state == RPCI_MS_DEAD || m->state == RPCI_MS_LEFT ||
             ev->type == RPCI_SWIM_EV_REAPED || !m->rpc_addr || !*m->rpc_addr;
  if (gone) {
    rpci_route_remove(cl->router, m->name);
    /* Its pooled connection goes too (a member back from the dead gets a
     * fresh one): churn cannot grow the pool. */
    if (m->rpc_addr && *m->rpc_addr) {
      rpci_pool_forget(cl, m->rpc_addr);
      pthread_cond_signal(&cl->sync_cv);
    }
    return;
  }
  const char *keys[RPCI_SWIM_MAX_TAGS], *vals[RPCI_SWIM_MAX_TAGS];
  size_t n = m->ntags < RPCI_SWIM_MAX_TAGS ? m->ntags : RPCI_SWIM_MAX_TAGS;
  for (size_t i = 0; i < n; i++) {
    keys[i] = m->tags[i].key;
    vals[i] = m->tags[i].value;
  }
  rpci_route_upsert(cl->router, m->name, m->rpc_addr, keys, vals, n, m->state == RPCI_MS_SUSPECT);
}

static void push_event(rpcnet_cluster *cl, void *p, size_t len) {
  if (cl->evq_len == cl->evq_cap) {
    if (cl->evq_cap >= RPCI_EVQ_MAX) { /* full: drop the oldest */
      free(cl->evq[cl->evq_head].p);
      cl->evq_head = (cl->evq_head + 1) % cl->evq_cap;
      cl->evq_len--;
      cl->ev_dropped++;
    } else {
      size_t cap = cl->evq_cap ? cl->evq_cap * 2 : 64;
      rpci_blob *q = malloc(cap * sizeof *q);
      if (!q) {
        free(p);
        cl->ev_dropped++;
        return;
      }
      for (size_t i = 0; i < cl->evq_len; i++) q[i] = cl->evq[(cl->evq_head + i) % cl->evq_cap];
      free(cl->evq);
      cl->evq = q;
      cl->evq_cap = cap;
      cl->evq_head = 0;
    }
  }
  cl->evq[(cl->evq_head + cl->evq_len) % cl->evq_cap] = (rpci_blob){p, len};
  cl->evq_len++;
  rpci_event_notify(&cl->ev, 1, 0);
}

void rpci_node_on_event(rpcnet_cluster *cl, const rpci_swim_event *ev) {
  rpci_swim_member m;
  int have = ev->name && *ev->name && rpci_swim_find(cl->core, ev->name, &m) == 0;
  if (have) mirror(cl, ev, &m);
  if (ev->type == RPCI_SWIM_EV_REAPED) return; /* internal only */
  if (ev->type == RPCI_SWIM_EV_PARTITIONED)
    rpci_log(RPCI_LOG_WARN, "cluster: %s lost contact with most of the cluster", cl->name);
  else if (ev->type == RPCI_SWIM_EV_HEALED)
    rpci_log(RPCI_LOG_INFO, "cluster: %s reaches a majority again", cl->name);
  else if (rpci_log_enabled(RPCI_LOG_INFO))
    rpci_log(RPCI_LOG_INFO, "cluster: %s: member %s %s", cl->name, ev->name ? ev->name : "",
             rpci_swim_ev_name(ev->type));
  rpci_value *v = rpci_value_new();
  if (!v) return;
  v->kind = RPCI_V_MAP;
  int rc = put_text(v, "type", rpci_swim_ev_name(ev->type));
  if (have && rc == 0) {
    rpci_value *mv = put_key(v, "member", RPCI_V_MAP);
    rc = mv ? member_value(cl, &m, mv) : -1;
  }
  void *p = NULL;
  size_t len = 0;
  if (rc == 0 && encode_detach(v, &p, &len) == 0)
    push_event(cl, p, len);
  else
    cl->ev_dropped++;
  rpci_value_free(v);
}

/* ---- counters ---------------------------------------------------------------- */

int rpcnet_cluster_stats(rpcnet_cluster *cl, void **data, size_t *len) {
  rpci_clear_error();
  if (!cl || !data || !len) {
    rpci_set_error("rpcnet_cluster_stats: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  *data = NULL;
  *len = 0;
  rpci_value *v = rpci_value_new();
  if (!v) return RPCNET_RESOURCE_EXHAUSTED;
  v->kind = RPCI_V_MAP;
  pthread_mutex_lock(&cl->mu);
  rpci_swim_stats st;
  rpci_swim_get_stats(cl->core, &st);
  const struct {
    const char *k;
    uint64_t n;
  } c[] = {{"pkts_in", st.pkts_in},
           {"pkts_out", st.pkts_out},
           {"bytes_in", st.bytes_in},
           {"bytes_out", st.bytes_out},
           {"malformed", st.malformed},
           {"auth_failures", cl->auth_failures},
           {"rejects_sent", cl->rejects_sent},
           {"unknown_msgs", st.unknown_msgs},
           {"tx_dropped", st.tx_dropped},
           {"probes", st.probes},
           {"probe_failures", st.probe_failures},
           {"indirect_probes", st.indirect_probes},
           {"nacks_recv", st.nacks_recv},
           {"refutes", st.refutes},
           {"sync_failures", cl->sync_failures},
           {"events_dropped", st.events_dropped + cl->ev_dropped},
           {"health", st.health > 0 ? (uint64_t)st.health : 0},
           {"partitioned", st.partitioned ? 1u : 0u},
           {"incarnation", st.incarnation},
           {"members", rpci_swim_count(cl->core)}};
  pthread_mutex_unlock(&cl->mu);
  int rc = 0;
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) rc |= put_uint(v, c[i].k, c[i].n);
  if (rc == 0) rc = encode_detach(v, data, len);
  rpci_value_free(v);
  if (rc) {
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  return RPCNET_OK;
}
