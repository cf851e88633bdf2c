/* Shared helpers of the C conformance programs: see common.h. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint8_t *cf_payload(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i % 251);
  return p;
}

int cf_payload_ok(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(i % 251)) return 0;
  return 1;
}

rpci_value *cf_map(void) {
  rpci_value *v = rpci_value_new();
  if (v) v->kind = RPCI_V_MAP;
  return v;
}

/* Appends a text key and returns the (null) value slot, or NULL. */
static rpci_value *put_key(rpci_value *map, const char *key) {
  rpci_value *k = rpci_value_append(map);
  if (!k) return NULL;
  if (rpci_value_set_str(k, RPCI_V_TEXT, key, strlen(key)) != 0) {
    map->u.arr.n--; /* drop the zeroed slot again */
    return NULL;
  }
  rpci_value *v = rpci_value_append(map);
  if (!v) {
    rpci_value_clear(&map->u.arr.items[--map->u.arr.n]);
    return NULL;
  }
  return v;
}

int cf_put_uint(rpci_value *map, const char *key, uint64_t n) {
  rpci_value *v = put_key(map, key);
  if (!v) return -1;
  rpci_value_set_int(v, 0, n);
  return 0;
}

int cf_put_bytes(rpci_value *map, const char *key, const void *p, size_t len) {
  rpci_value *v = put_key(map, key);
  return v ? rpci_value_set_str(v, RPCI_V_BYTES, p, len) : -1;
}

int cf_put_text(rpci_value *map, const char *key, const char *s) {
  rpci_value *v = put_key(map, key);
  return v ? rpci_value_set_str(v, RPCI_V_TEXT, s, strlen(s)) : -1;
}

rpci_value *cf_put_array(rpci_value *map, const char *key) {
  rpci_value *v = put_key(map, key);
  if (v) v->kind = RPCI_V_ARRAY;
  return v;
}

int cf_push_uint(rpci_value *arr, uint64_t n) {
  rpci_value *v = rpci_value_append(arr);
  if (!v) return -1;
  rpci_value_set_int(v, 0, n);
  return 0;
}

uint8_t *cf_encode_free(rpci_value *v, size_t *len) {
  if (!v) return NULL;
  rpci_buf b = RPCI_BUF_INIT;
  int e = rpci_value_encode(v, &b);
  rpci_value_free(v);
  if (e != RPCI_VERR_OK) {
    rpci_buf_free(&b);
    return NULL;
  }
  if (b.len == 0 && rpci_buf_reserve(&b, 1) != 0) return NULL;
  return rpci_buf_detach(&b, len);
}

uint8_t *cf_payload_msg(const char *key, size_t n, size_t *len) {
  rpci_value *m = cf_map();
  uint8_t *p = cf_payload(n);
  if (!m || !p || cf_put_bytes(m, key, p, n) != 0) {
    free(p);
    rpci_value_free(m);
    return NULL;
  }
  free(p);
  return cf_encode_free(m, len);
}

rpci_value *cf_decode_map(const void *p, size_t n, const char **err) {
  rpci_value *v = NULL;
  int e = rpci_value_decode(p, n, NULL, &v, NULL);
  if (e != RPCI_VERR_OK) {
    *err = rpci_verr_name(e);
    return NULL;
  }
  if (v->kind != RPCI_V_MAP) {
    rpci_value_free(v);
    *err = "message is not a map";
    return NULL;
  }
  return v;
}

int cf_get_uint(const rpci_value *map, const char *key, uint64_t *out) {
  const rpci_value *v = rpci_value_map_get(map, key);
  if (!v || v->kind != RPCI_V_UINT) return -1;
  *out = v->u.uint;
  return 0;
}

const rpci_value *cf_get_bytes(const rpci_value *map, const char *key) {
  const rpci_value *v = rpci_value_map_get(map, key);
  return v && v->kind == RPCI_V_BYTES ? v : NULL;
}

int cf_vectors_load(cf_vectors *vs, const char *path) {
  vs->root = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return -1;
  }
  rpci_buf b = RPCI_BUF_INIT;
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (rpci_buf_append(&b, chunk, n) != 0) {
      fclose(f);
      rpci_buf_free(&b);
      return -1;
    }
  }
  fclose(f);
  size_t off = 0;
  const char *msg = NULL;
  int e = rpci_json_parse((const char *)b.data, b.len, &vs->root, &off, &msg);
  rpci_buf_free(&b);
  if (e != RPCI_VERR_OK) {
    fprintf(stderr, "%s: JSON error at %zu: %s\n", path, off, msg ? msg : rpci_verr_name(e));
    return -1;
  }
  const rpci_value *list = cf_vectors_list(vs);
  if (!list) {
    fprintf(stderr, "%s: no \"vectors\" array\n", path);
    cf_vectors_free(vs);
    return -1;
  }
  return 0;
}

void cf_vectors_free(cf_vectors *vs) {
  rpci_value_free(vs->root);
  vs->root = NULL;
}

const rpci_value *cf_vectors_list(const cf_vectors *vs) {
  const rpci_value *l = rpci_value_map_get(vs->root, "vectors");
  return l && l->kind == RPCI_V_ARRAY ? l : NULL;
}

const char *cf_text_field(const rpci_value *obj, const char *key) {
  const rpci_value *v = rpci_value_map_get(obj, key);
  return v && v->kind == RPCI_V_TEXT ? (const char *)v->u.str.p : NULL;
}

const rpci_value *cf_vectors_find(const cf_vectors *vs, const char *name, size_t len) {
  const rpci_value *l = cf_vectors_list(vs);
  if (!l) return NULL;
  for (size_t i = 0; i < l->u.arr.n; i++) {
    const rpci_value *n = rpci_value_map_get(&l->u.arr.items[i], "name");
    if (n && n->kind == RPCI_V_TEXT && n->u.str.len == len && memcmp(n->u.str.p, name, len) == 0)
      return &l->u.arr.items[i];
  }
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static uint8_t *unhex(const char *s, size_t *len) {
  if (!s) return NULL;
  size_t n = strlen(s);
  if (n % 2) return NULL;
  uint8_t *p = malloc(n / 2 ? n / 2 : 1);
  if (!p) return NULL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(p);
      return NULL;
    }
    p[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return p;
}

uint8_t *cf_vector_canonical(const rpci_value *vec, size_t *len) {
  const char *c = cf_text_field(vec, "canonical");
  return unhex(c ? c : cf_text_field(vec, "hex"), len);
}

uint8_t *cf_vector_input(const rpci_value *vec, size_t *len) {
  return unhex(cf_text_field(vec, "hex"), len);
}

char *cf_hex(const uint8_t *p, size_t n, size_t max) {
  size_t m = n > max ? max : n;
  char *s = malloc(2 * m + 4);
  if (!s) return NULL;
  for (size_t i = 0; i < m; i++) sprintf(s + 2 * i, "%02x", p[i]);
  strcpy(s + 2 * m, n > max ? "..." : "");
  return s;
}
