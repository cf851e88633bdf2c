/* rpc helpers: see util.h. */
#include "rpc/util.h"

#include <string.h>

#include "obs/log.h"
#include "rpcnet/rpcnet.h"
#include "wire/frame.h"
#include "wire/utf8.h"

int64_t rpci_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rpci_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
}

void rpci_ms_to_timespec(struct timespec *ts, int64_t mono_ms) {
  ts->tv_sec = (time_t)(mono_ms / 1000);
  ts->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

void rpci_abs_deadline(struct timespec *ts, int64_t timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(timeout_ms / 1000);
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

int rpci_md_add_checked(struct rpci_md *md, const char *key, const void *value, size_t len,
                        size_t max_entries) {
  if (!key || !*key || !rpci_utf8_valid((const uint8_t *)key, strlen(key)) || (!value && len)) {
    rpci_set_error("metadata key must be non-empty UTF-8 (and value non-NULL)");
    return RPCNET_INVALID_ARGUMENT;
  }
  if (!rpci_md_key_is_bin(key) && !rpci_utf8_valid(value, len)) {
    rpci_set_error("metadata '%s': a value must be UTF-8 unless its key ends in \"-bin\"", key);
    return RPCNET_INVALID_ARGUMENT;
  }
  if (md->n >= max_entries) {
    rpci_set_error("more than %zu metadata entries", max_entries);
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  if (rpci_md_add(md, key, value ? value : "", len) != 0) {
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  return RPCNET_OK;
}

const char *rpci_status_text(const char *message) {
  if (!message) return NULL;
  if (rpci_utf8_valid((const uint8_t *)message, strlen(message))) return message;
  return "(status message was not valid UTF-8)";
}

int rpci_check_message(const char *fn, const void *data, size_t len, uint64_t max) {
  if (!data && len) {
    rpci_set_error("%s: NULL data with a non-zero length", fn);
    return RPCNET_INVALID_ARGUMENT;
  }
  if (len > max) {
    rpci_set_error("%s: message of %zu bytes exceeds max_message_size %llu", fn, len,
                   (unsigned long long)max);
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  return RPCNET_OK;
}

const void *rpci_md_lookup(const struct rpci_md *md, const char *key, size_t *len) {
  if (len) *len = 0;
  const rpci_md_entry *e = key ? rpci_md_get(md, key) : NULL;
  if (!e) return NULL;
  if (len) *len = e->val_len;
  return e->val;
}

const char *rpci_md_at(const struct rpci_md *md, size_t i, const void **value, size_t *len) {
  if (value) *value = NULL;
  if (len) *len = 0;
  if (!md || i >= md->n) return NULL;
  if (value) *value = md->v[i].val;
  if (len) *len = md->v[i].val_len;
  return md->v[i].key;
}
