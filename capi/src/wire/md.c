/*
 * Metadata lists (rpci_md, declared in frame.h).
 *
 * Design notes: a plain growable array of owned (key, value) copies in
 * insertion order; lookups are linear (lists are small: at most
 * max_metadata_entries on the wire). Values are NUL-terminated for
 * convenience but may hold NULs; val_len is authoritative.
 */
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"

int rpci_md_add(rpci_md *md, const char *key, const void *val, size_t len) {
  size_t kl = strlen(key);
  char *k = malloc(kl + 1);
  uint8_t *v = malloc(len + 1);
  rpci_md_entry *e = realloc(md->v, (md->n + 1) * sizeof *md->v);
  if (!k || !v || !e) {
    free(k);
    free(v);
    if (e) md->v = e;
    return -1;
  }
  md->v = e;
  memcpy(k, key, kl + 1);
  if (len) memcpy(v, val, len);
  v[len] = 0;
  md->v[md->n].key = k;
  md->v[md->n].val = v;
  md->v[md->n].val_len = len;
  md->n++;
  return 0;
}

const rpci_md_entry *rpci_md_get(const rpci_md *md, const char *key) {
  if (!md) return NULL;
  for (size_t i = 0; i < md->n; i++)
    if (strcmp(md->v[i].key, key) == 0) return &md->v[i];
  return NULL;
}

void rpci_md_free(rpci_md *md) {
  if (!md) return;
  for (size_t i = 0; i < md->n; i++) {
    free(md->v[i].key);
    free(md->v[i].val);
  }
  free(md->v);
  md->v = NULL;
  md->n = 0;
}
