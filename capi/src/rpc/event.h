/*
 * rpci_event: "something changed" for one call, with an optional
 * level-triggered readiness fd, shared by client calls and server requests.
 *
 * Design notes
 * - State lives elsewhere (under the connection lock); the event only says
 *   that it changed. A waiter reads rpci_event_gen BEFORE it looks at the
 *   state and then waits for the generation to move, so a change that lands
 *   between looking and waiting is never lost.
 * - rpci_event_notify may be called with the connection lock held (lock
 *   order: connection, then event) and never blocks.
 * - Two levels, each with an fd made on first request (an eventfd): the
 *   "recv" fd is readable exactly while the last notify said `readable`,
 *   the "send" fd while it said `writable`.
 */
#ifndef RPCI_RPC_EVENT_H
#define RPCI_RPC_EVENT_H

#include <pthread.h>
#include <stdint.h>

typedef struct rpci_event_level {
  int fd;    /* -1 until asked for */
  int shown; /* what the fd shows */
  int want;  /* last value given to notify */
} rpci_event_level;

typedef struct rpci_event {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t gen;
  rpci_event_level recv, send;
} rpci_event;

void rpci_event_init(rpci_event *e);
void rpci_event_destroy(rpci_event *e);
uint64_t rpci_event_gen(rpci_event *e);
/* Moves the generation, wakes waiters and sets both fds' levels. */
void rpci_event_notify(rpci_event *e, int readable, int writable);
/* Waits until the generation differs from gen or until_ms (monotonic; < 0:
 * for ever) passes. Returns 0 on a change, -1 on timeout. */
int rpci_event_wait(rpci_event *e, uint64_t gen, int64_t until_ms);
/* The recv (send) readiness fd, made on first use. Returns -1 when none
 * can be made. */
int rpci_event_fd(rpci_event *e);
int rpci_event_send_fd(rpci_event *e);

#endif
