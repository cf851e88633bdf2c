/*
 * Reading the cluster's CBOR member listings and events with libcbor, for
 * the cluster examples (rpcnet_cluster_members / rpcnet_cluster_next_event
 * return deterministic CBOR, docs/cluster.md "C API").
 */
#ifndef CLUSTER_MEMBER_LIST_H
#define CLUSTER_MEMBER_LIST_H

#include <cbor.h>
#include <stdio.h>
#include <string.h>

typedef struct cw_event {
  char type[32];
  char name[80];
  char state[16];
} cw_event;

/* Copies the text value of key in map into out ("" when absent). */
static void cw_text(cbor_item_t *map, const char *key, char *out, size_t len) {
  out[0] = 0;
  if (!map || !cbor_isa_map(map)) return;
  struct cbor_pair *p = cbor_map_handle(map);
  for (size_t i = 0; i < cbor_map_size(map); i++) {
    if (!cbor_isa_string(p[i].key) || !cbor_string_is_definite(p[i].key)) continue;
    size_t kl = cbor_string_length(p[i].key);
    if (kl != strlen(key) || memcmp(cbor_string_handle(p[i].key), key, kl)) continue;
    if (!cbor_isa_string(p[i].value) || !cbor_string_is_definite(p[i].value)) return;
    size_t n = cbor_string_length(p[i].value);
    if (n >= len) n = len - 1;
    memcpy(out, cbor_string_handle(p[i].value), n);
    out[n] = 0;
    return;
  }
}

static cbor_item_t *cw_get(cbor_item_t *map, const char *key) {
  if (!map || !cbor_isa_map(map)) return NULL;
  struct cbor_pair *p = cbor_map_handle(map);
  for (size_t i = 0; i < cbor_map_size(map); i++) {
    if (!cbor_isa_string(p[i].key) || !cbor_string_is_definite(p[i].key)) continue;
    size_t kl = cbor_string_length(p[i].key);
    if (kl == strlen(key) && !memcmp(cbor_string_handle(p[i].key), key, kl)) return p[i].value;
  }
  return NULL;
}

static int cw_parse_event(const void *data, size_t len, cw_event *e) {
  struct cbor_load_result res;
  cbor_item_t *ev = cbor_load(data, len, &res);
  if (!ev) return -1;
  cw_text(ev, "type", e->type, sizeof e->type);
  cbor_item_t *m = cw_get(ev, "member");
  cw_text(m, "name", e->name, sizeof e->name);
  cw_text(m, "state", e->state, sizeof e->state);
  if (!e->name[0]) snprintf(e->name, sizeof e->name, "-");
  if (!e->state[0]) snprintf(e->state, sizeof e->state, "-");
  cbor_decref(&ev);
  return 0;
}

/* Prints "member NAME STATE LANG" per member; returns how many are alive and
 * not this node. */
static int cw_print_members(const void *data, size_t len, FILE *out) {
  struct cbor_load_result res;
  cbor_item_t *arr = cbor_load(data, len, &res);
  if (!arr) return -1;
  int alive = 0;
  if (cbor_isa_array(arr)) {
    for (size_t i = 0; i < cbor_array_size(arr); i++) {
      cbor_item_t *m = cbor_array_get(arr, i);
      char name[80], state[16], lang[32];
      cw_text(m, "name", name, sizeof name);
      cw_text(m, "state", state, sizeof state);
      cw_text(cw_get(m, "tags"), "lang", lang, sizeof lang);
      cbor_item_t *self = cw_get(m, "self");
      int is_self = self && cbor_isa_float_ctrl(self) && cbor_get_bool(self);
      if (out) fprintf(out, "member %s %s %s\n", name, state, lang[0] ? lang : "-");
      if (!is_self && !strcmp(state, "alive")) alive++;
      cbor_decref(&m);
    }
  }
  cbor_decref(&arr);
  return alive;
}

#endif
