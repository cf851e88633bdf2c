/*
 * The process-wide pool of I/O threads. Each rpci_loop is one thread running
 * one libuv loop; every QUIC connection and every listening socket belongs
 * to exactly one loop for its whole life.
 *
 * Design notes
 * - The pool is created on first use and lives until the process exits; its
 *   size is fixed then (io_threads of the first config, else 1 on machines
 *   with fewer than 4 cores and 2 otherwise). Never a thread per
 *   connection or per call.
 * - libuv handles are touched only by their loop's thread. Other threads
 *   hand work over with rpci_loop_post (one eventfd write, one wake-up) or
 *   rpci_loop_call (post and wait). Hot paths avoid both: an application
 *   thread writes packets itself under the connection's lock.
 */
#ifndef RPCI_TRANSPORT_LOOP_H
#define RPCI_TRANSPORT_LOOP_H

#include <uv.h>

typedef struct rpci_loop rpci_loop;
typedef void (*rpci_task_fn)(void *arg);

/* Starts the pool if needed (with `threads` threads when > 0) and returns
 * the next loop, round robin. Returns NULL when threads cannot be made. */
rpci_loop *rpci_loop_pick(int threads);
uv_loop_t *rpci_loop_uv(rpci_loop *l);
/* Non-zero on the loop's own thread. */
int rpci_loop_is_current(const rpci_loop *l);
/* Non-zero on any library I/O thread (where nothing may block). */
int rpci_loop_on_io_thread(void);
/* Runs fn(arg) on the loop's thread soon. Returns 0, or -1 out of memory. */
int rpci_loop_post(rpci_loop *l, rpci_task_fn fn, void *arg);
/* Runs fn(arg) on the loop's thread and waits for it (runs it at once when
 * called on that thread). Returns 0, or -1 out of memory. */
int rpci_loop_call(rpci_loop *l, rpci_task_fn fn, void *arg);

/* Timers for deadlines: many of them, started and stopped from any thread
 * without waking the loop (one timerfd per loop, re-armed with a syscall
 * only when a new timer becomes the earliest).
 * Ownership: fn runs on the loop thread, without locks, once, unless
 * rpci_timer_stop removed the timer first. Whoever "wins" (fn, or a stop
 * that returns 1) owns the cleanup: the usual pattern is that starting a
 * timer takes a reference on its owner, and fn or the successful stopper
 * drops it. */
typedef struct rpci_timer {
  struct rpci_timer *prev, *next;
  rpci_loop *loop;
  int64_t at_ms; /* monotonic milliseconds */
  void (*fn)(struct rpci_timer *t);
  int pending;
} rpci_timer;

/* Schedules t to fire at at_ms. t must not be pending. Returns 0 or -1. */
int rpci_timer_start(rpci_loop *l, rpci_timer *t, int64_t at_ms, void (*fn)(rpci_timer *t));
/* Returns 1 when t was pending and is now removed (fn will not run), 0 when
 * it already fired or was never started. */
int rpci_timer_stop(rpci_timer *t);

#endif
