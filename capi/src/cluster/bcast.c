/*
 * Broadcast queue: see bcast.h for the contract and design notes.
 *
 * Layout: entries live in a pool (indices, with a free list); a name index
 * (linear probing, backward-shift deletion) maps a name to its entry; each
 * kind (alive, other) has one doubly linked list per transmit count. Links
 * and index slots hold entry index + 1 so that 0 means none.
 * Invariants: every live entry is in exactly one list, the one of its kind
 * and transmit count, and in the name index; `picked` is only set inside
 * rpci_bcast_fill.
 */
#include "cluster/bcast.h"

#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64
#define SKIP_MAX 64 /* entries that did not fit, looked at per pass */

enum { K_ALIVE = 0, K_OTHER = 1 };

typedef struct entry {
  char name[NAME_MAX_LEN + 1];
  uint8_t *msg; /* NULL while the entry is free */
  size_t len;
  int transmits;
  int kind;
  int picked;
  uint32_t prev, next; /* list links, index + 1 */
} entry;

struct rpci_bcast {
  entry *e;
  uint32_t ne, cap; /* pool slots in use (high water), allocated */
  uint32_t free_head;
  size_t live;
  uint32_t *slots; /* name index: entry index + 1, 0 = empty */
  size_t nslots;   /* power of two, or 0 */
  uint32_t *lists[2];
  int nlevels; /* transmit counts with a list head */
  uint32_t *picked;
  size_t npicked, cappicked;
};

static uint32_t name_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

rpci_bcast *rpci_bcast_new(void) { return calloc(1, sizeof(rpci_bcast)); }

static void reset_storage(rpci_bcast *q) {
  for (uint32_t i = 0; i < q->ne; i++) free(q->e[i].msg);
  free(q->e);
  free(q->slots);
  free(q->lists[0]);
  free(q->lists[1]);
  free(q->picked);
  memset(q, 0, sizeof *q);
}

void rpci_bcast_free(rpci_bcast *q) {
  if (!q) return;
  reset_storage(q);
  free(q);
}

size_t rpci_bcast_len(const rpci_bcast *q) { return q->live; }

/* Slot of name in the index, or the empty slot where it would go. */
static size_t find_slot(const rpci_bcast *q, const char *name) {
  size_t mask = q->nslots - 1, i = name_hash(name) & mask;
  while (q->slots[i] && strcmp(q->e[q->slots[i] - 1].name, name) != 0) i = (i + 1) & mask;
  return i;
}

static int index_grow(rpci_bcast *q) {
  size_t n = q->nslots ? q->nslots * 2 : 16;
  uint32_t *old = q->slots;
  size_t oldn = q->nslots;
  uint32_t *ns = calloc(n, sizeof *ns);
  if (!ns) return -1;
  q->slots = ns;
  q->nslots = n;
  for (size_t i = 0; i < oldn; i++)
    if (old[i]) q->slots[find_slot(q, q->e[old[i] - 1].name)] = old[i];
  free(old);
  return 0;
}

static void index_del(rpci_bcast *q, size_t i) {
  size_t mask = q->nslots - 1, j = i;
  q->slots[i] = 0;
  for (;;) {
    j = (j + 1) & mask;
    if (!q->slots[j]) return;
    size_t home = name_hash(q->e[q->slots[j] - 1].name) & mask;
    /* Move j back into the hole unless its home lies cyclically in (i, j]. */
    int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      q->slots[i] = q->slots[j];
      q->slots[j] = 0;
      i = j;
    }
  }
}

static int ensure_levels(rpci_bcast *q, int level) {
  if (level < q->nlevels) return 0;
  int n = q->nlevels ? q->nlevels : 8;
  while (n <= level) n *= 2;
  for (int k = 0; k < 2; k++) {
    uint32_t *l = realloc(q->lists[k], (size_t)n * sizeof *l);
    if (!l) return -1;
    memset(l + q->nlevels, 0, (size_t)(n - q->nlevels) * sizeof *l);
    q->lists[k] = l;
  }
  q->nlevels = n;
  return 0;
}

static void list_unlink(rpci_bcast *q, uint32_t idx) {
  entry *x = &q->e[idx];
  uint32_t *head = &q->lists[x->kind][x->transmits];
  if (x->prev)
    q->e[x->prev - 1].next = x->next;
  else
    *head = x->next;
  if (x->next) q->e[x->next - 1].prev = x->prev;
  x->prev = x->next = 0;
}

static void list_push_front(rpci_bcast *q, uint32_t idx) {
  entry *x = &q->e[idx];
  uint32_t *head = &q->lists[x->kind][x->transmits];
  x->prev = 0;
  x->next = *head;
  if (*head) q->e[*head - 1].prev = idx + 1;
  *head = idx + 1;
}

/* Removes entry idx (already out of its list) from the index and frees it. */
static void destroy_entry(rpci_bcast *q, uint32_t idx) {
  entry *x = &q->e[idx];
  index_del(q, find_slot(q, x->name));
  free(x->msg);
  x->msg = NULL;
  x->next = q->free_head;
  q->free_head = idx + 1;
  q->live--;
  if (q->live == 0) reset_storage(q); /* shrink back when drained */
}

static void remove_entry(rpci_bcast *q, uint32_t idx) {
  list_unlink(q, idx);
  destroy_entry(q, idx);
}

static int alloc_entry(rpci_bcast *q, uint32_t *idx) {
  if (q->free_head) {
    *idx = q->free_head - 1;
    q->free_head = q->e[*idx].next;
    return 0;
  }
  if (q->ne == q->cap) {
    uint32_t n = q->cap ? q->cap * 2 : 8;
    entry *e = realloc(q->e, (size_t)n * sizeof *e);
    if (!e) return -1;
    q->e = e;
    q->cap = n;
  }
  *idx = q->ne++;
  return 0;
}

int rpci_bcast_put(rpci_bcast *q, const char *name, int is_alive, const uint8_t *msg, size_t len) {
  size_t nl = strlen(name);
  if (nl == 0 || nl > NAME_MAX_LEN) return -1;
  rpci_bcast_drop(q, name);
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  memcpy(copy, msg, len);
  if ((q->live + 1) * 2 > q->nslots && index_grow(q)) goto fail;
  if (ensure_levels(q, 0)) goto fail;
  uint32_t idx;
  if (alloc_entry(q, &idx)) goto fail;
  entry *x = &q->e[idx];
  memcpy(x->name, name, nl + 1);
  x->msg = copy;
  x->len = len;
  x->transmits = 0;
  x->kind = is_alive ? K_ALIVE : K_OTHER;
  x->picked = 0;
  q->slots[find_slot(q, name)] = idx + 1;
  list_push_front(q, idx);
  q->live++;
  return 0;
fail:
  free(copy);
  return -1;
}

int rpci_bcast_refresh(rpci_bcast *q, const char *name, int is_alive, const uint8_t *msg,
                       size_t len) {
  uint32_t v = q->nslots ? q->slots[find_slot(q, name)] : 0;
  if (!v) return rpci_bcast_put(q, name, is_alive, msg, len);
  uint32_t idx = v - 1;
  entry *x = &q->e[idx];
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -1;
  memcpy(copy, msg, len);
  free(x->msg);
  x->msg = copy;
  x->len = len;
  int kind = is_alive ? K_ALIVE : K_OTHER;
  if (kind != x->kind) {
    list_unlink(q, idx);
    x->kind = kind;
    list_push_front(q, idx);
  }
  return 0;
}

int rpci_bcast_has(const rpci_bcast *q, const char *name) {
  return q->nslots && q->slots[find_slot(q, name)] != 0;
}

void rpci_bcast_drop(rpci_bcast *q, const char *name) {
  if (!q->nslots) return;
  uint32_t v = q->slots[find_slot(q, name)];
  if (v) remove_entry(q, v - 1);
}

/* Takes messages of the given kinds (mask bit 1 << kind) from the lists,
 * fewest transmits first, while they fit in *room. Entries at or above
 * limit are dropped on the way. Returns -1 on out of memory. */
static int take(rpci_bcast *q, rpci_buf *out, size_t *room, int mask, int limit, size_t *count,
                size_t *used) {
  int skipped = 0;
  for (int t = 0; t<q->nlevels && * room> 0; t++) {
    for (int k = K_OTHER; k >= K_ALIVE; k--) {
      if (!(mask & (1 << k))) continue;
      uint32_t cur = q->lists[k][t];
      while (cur && *room > 0) {
        uint32_t idx = cur - 1;
        entry *x = &q->e[idx];
        cur = x->next;
        if (t >= limit) {
          remove_entry(q, idx);
          if (q->live == 0) return 0;
          continue;
        }
        if (x->picked) continue;
        if (x->len > *room) {
          if (++skipped >= SKIP_MAX) return 0;
          continue;
        }
        if (q->npicked == q->cappicked) {
          size_t n = q->cappicked ? q->cappicked * 2 : 16;
          uint32_t *p = realloc(q->picked, n * sizeof *p);
          if (!p) return -1;
          q->picked = p;
          q->cappicked = n;
        }
        if (rpci_buf_append(out, x->msg, x->len)) return -1;
        x->picked = 1;
        q->picked[q->npicked++] = idx;
        *room -= x->len;
        *used += x->len;
        (*count)++;
      }
    }
  }
  return 0;
}

size_t rpci_bcast_fill(rpci_bcast *q, rpci_buf *out, size_t budget, size_t alive_share, int limit,
                       size_t *used) {
  if (q->live == 0) return 0;
  if (limit < 1) limit = 1;
  size_t count = 0, room = alive_share < budget ? alive_share : budget, u = 0;
  q->npicked = 0;
  int err = take(q, out, &room, 1 << K_ALIVE, limit, &count, &u);
  room = budget - u;
  if (!err && q->live)
    err = take(q, out, &room, (1 << K_ALIVE) | (1 << K_OTHER), limit, &count, &u);
  *used += u;
  /* Move what was sent up one level; drop what reached the limit. */
  size_t np = q->npicked;
  q->npicked = 0;
  for (size_t i = 0; i < np; i++) {
    uint32_t idx = q->picked[i];
    entry *x = &q->e[idx];
    x->picked = 0;
    list_unlink(q, idx);
    x->transmits++;
    if (x->transmits >= limit || ensure_levels(q, x->transmits)) {
      destroy_entry(q, idx);
      if (q->live == 0) break;
    } else {
      list_push_front(q, idx);
    }
  }
  return count;
}
