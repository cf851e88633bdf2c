/* Incremental item scanner: see scan.h. */
#include "wire/scan.h"

#include <string.h>

#include "wire/prim.h"

void rpci_scan_init(rpci_scan *s, size_t limit) {
  memset(s, 0, sizeof *s);
  s->limit = limit;
  s->chunk_major = -1;
}

/* An item (or an indefinite container via break) completed. Returns 1 when
 * the top-level item is done. */
static int item_done(rpci_scan *s) {
  while (s->depth > 0) {
    int t = s->depth - 1;
    if (s->stack[t].indef) {
      if (s->stack[t].is_map) s->stack[t].odd ^= 1;
      return 0;
    }
    if (--s->stack[t].remaining > 0) return 0;
    s->depth--;
  }
  return 1;
}

/* Handles a complete head. Returns a result code (MORE or DONE or error). */
static int on_head(rpci_scan *s, const rpci_head *h) {
  size_t left = s->limit - s->total; /* bytes the item may still take */
  if (s->chunk_major >= 0) {         /* inside an indefinite string */
    if (h->major == RPCI_MT_SIMPLE && h->indef) {
      s->chunk_major = -1;
      return item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
    }
    if (h->major != s->chunk_major || h->indef) return RPCI_SCAN_MALFORMED;
    if (h->arg > left) return RPCI_SCAN_TOO_LARGE;
    s->skip = h->arg;
    return RPCI_SCAN_MORE;
  }
  switch (h->major) {
    case RPCI_MT_UINT:
    case RPCI_MT_NINT:
      return item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
    case RPCI_MT_BYTES:
    case RPCI_MT_TEXT:
      if (h->indef) {
        s->chunk_major = h->major;
        return RPCI_SCAN_MORE;
      }
      if (h->arg > left) return RPCI_SCAN_TOO_LARGE;
      s->skip = h->arg;
      if (s->skip == 0) return item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
      return RPCI_SCAN_MORE;
    case RPCI_MT_ARRAY:
    case RPCI_MT_MAP:
    case RPCI_MT_TAG: {
      if (s->depth >= RPCI_VALUE_MAX_DEPTH) return RPCI_SCAN_DEPTH;
      uint64_t items = h->major == RPCI_MT_TAG ? 1 : h->arg;
      if (!h->indef) {
        if (h->major == RPCI_MT_MAP) {
          if (items > left / 2) return RPCI_SCAN_TOO_LARGE;
          items *= 2;
        } else if (items > left) {
          return RPCI_SCAN_TOO_LARGE;
        }
        if (items == 0) return item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
      }
      int t = s->depth++;
      s->stack[t].remaining = items;
      s->stack[t].indef = h->indef;
      s->stack[t].is_map = h->major == RPCI_MT_MAP;
      s->stack[t].odd = 0;
      return RPCI_SCAN_MORE;
    }
    default:
      if (h->indef) { /* break */
        if (s->depth == 0 || !s->stack[s->depth - 1].indef) return RPCI_SCAN_MALFORMED;
        if (s->stack[s->depth - 1].odd) return RPCI_SCAN_MALFORMED;
        s->depth--;
      }
      return item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
  }
}

int rpci_scan_feed(rpci_scan *s, const uint8_t *in, size_t len, size_t *consumed) {
  size_t i = 0;
  int r = RPCI_SCAN_MORE;
  while (i < len && r == RPCI_SCAN_MORE) {
    if (s->skip > 0) { /* string payload */
      size_t n = len - i;
      if (n > s->skip) n = (size_t)s->skip;
      i += n;
      s->total += n;
      s->skip -= n;
      if (s->skip == 0 && s->chunk_major < 0) r = item_done(s) ? RPCI_SCAN_DONE : RPCI_SCAN_MORE;
      continue;
    }
    if (s->total >= s->limit) {
      r = RPCI_SCAN_TOO_LARGE;
      break;
    }
    s->head[s->head_len++] = in[i++];
    s->total++;
    rpci_head h;
    int p = rpci_head_parse(s->head, s->head_len, &h);
    if (p < 0) {
      r = RPCI_SCAN_MALFORMED;
      break;
    }
    if (p == 0) continue;
    s->head_len = 0;
    r = on_head(s, &h);
  }
  *consumed = i;
  if (r == RPCI_SCAN_DONE) s->done = 1;
  return r;
}
