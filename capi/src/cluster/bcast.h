/*
 * The transmit-limited broadcast queue of the SWIM core: membership news
 * (alive, suspect, dead messages, already encoded) waiting to ride on
 * outgoing datagrams.
 *
 * Design notes
 * - At most one entry per member name: a new message about a name replaces
 *   the queued one, whatever its kind (the core only queues news that beat
 *   what it held, so the newer message is the one that matters).
 * - Entries are kept in buckets by transmit count (in a bucket, the most
 *   recently queued or sent first);
 *   rpci_bcast_fill takes fewest-transmits first. An entry that has been
 *   sent `limit` times is dropped (limit = retransmit_mult *
 *   ceil(log10(N + 1)), computed by the caller for the current N).
 * - A share of each fill (alive_share bytes, a quarter of the packet) is
 *   offered to alive messages first, so that tag updates and refutations
 *   are never starved by a storm of suspect/dead messages; what is left goes
 *   to every kind, fewest-transmits first (suspect/dead before alive at an
 *   equal count).
 * - Memory: one malloc'd copy of each message and a name index (open
 *   addressing); everything shrinks back when the queue drains.
 * - Pure data structure: no clock, no randomness, no locking.
 */
#ifndef RPCI_CLUSTER_BCAST_H
#define RPCI_CLUSTER_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

typedef struct rpci_bcast rpci_bcast;

/* Returns NULL when out of memory. */
rpci_bcast *rpci_bcast_new(void);
void rpci_bcast_free(rpci_bcast *q);

/* Queues msg[0..len) (one encoded message) about member `name` (1..64
 * bytes), replacing any entry about that name. is_alive marks alive
 * messages (the reserved share). Returns 0, or -1 when out of memory (the
 * older entry about the name is then dropped as well). */
int rpci_bcast_put(rpci_bcast *q, const char *name, int is_alive, const uint8_t *msg, size_t len);

/* Like rpci_bcast_put, but an entry already queued about name keeps its
 * transmit count (only its message is replaced): news that refines queued
 * news (a further confirmation of a suspicion) costs no extra
 * transmissions. Returns 0 or -1 (out of memory: the old entry stays). */
int rpci_bcast_refresh(rpci_bcast *q, const char *name, int is_alive, const uint8_t *msg,
                       size_t len);

/* Appends queued messages to out, at most budget bytes in total; the first
 * alive_share bytes are offered to alive messages first. Raises the
 * transmit count of each message taken and drops those that reach limit
 * (limit < 1 counts as 1). Returns the number of messages appended and adds
 * their bytes to *used; on out of memory stops early (out keeps whole
 * messages only). */
size_t rpci_bcast_fill(rpci_bcast *q, rpci_buf *out, size_t budget, size_t alive_share, int limit,
                       size_t *used);

/* 1 when an entry about name is queued. */
int rpci_bcast_has(const rpci_bcast *q, const char *name);
/* Removes the entry about name, if any. */
void rpci_bcast_drop(rpci_bcast *q, const char *name);
/* Number of queued entries. */
size_t rpci_bcast_len(const rpci_bcast *q);

#endif
