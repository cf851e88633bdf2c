/*
 * Small helpers of the rpc layer: monotonic time, condition variables on
 * the monotonic clock, deadlines, UTF-8 checks.
 * Design notes: stateless; safe from any thread.
 */
#ifndef RPCI_RPC_UTIL_H
#define RPCI_RPC_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

int64_t rpci_mono_ms(void);
/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void rpci_cond_init(pthread_cond_t *cv);
/* The CLOCK_MONOTONIC instant timeout_ms from now (timeout_ms >= 0). */
void rpci_abs_deadline(struct timespec *ts, int64_t timeout_ms);
/* The instant of a monotonic millisecond deadline. */
void rpci_ms_to_timespec(struct timespec *ts, int64_t mono_ms);

struct rpci_md;
/* Appends a checked copy of (key, value) to md: key non-empty UTF-8, value
 * UTF-8 unless the key ends in "-bin", at most max_entries entries.
 * Returns an rpcnet status (OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED) with
 * rpci_set_error on failure. */
int rpci_md_add_checked(struct rpci_md *md, const char *key, const void *value, size_t len,
                        size_t max_entries);
/* Checks an outgoing message: non-NULL unless empty, at most max bytes.
 * Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT or RPCNET_RESOURCE_EXHAUSTED
 * (with rpci_set_error naming fn). */
int rpci_check_message(const char *fn, const void *data, size_t len, uint64_t max);
/* The first value of key in md (NULL when absent); *len (may be NULL)
 * receives its length. */
const void *rpci_md_lookup(const struct rpci_md *md, const char *key, size_t *len);
/* Entry i of md: its key, with *value and *len (both may be NULL); NULL
 * when md is NULL or i is out of range. */
const char *rpci_md_at(const struct rpci_md *md, size_t i, const void **value, size_t *len);
/* A message for a status: message itself when valid UTF-8, else a fixed
 * replacement (so user input can never make an unencodable frame). */
const char *rpci_status_text(const char *message);

#endif
