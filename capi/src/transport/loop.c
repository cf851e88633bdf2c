/* The I/O thread pool: see loop.h. */
#include "transport/loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"

typedef struct task {
  struct task *next;
  rpci_task_fn fn;
  void *arg;
} task;

struct rpci_loop {
  uv_loop_t uv;
  uv_async_t wake;
  pthread_t thread;
  pthread_mutex_t mu; /* guards the task queue */
  task *head, *tail;
  /* deadline timers: a list sorted by at_ms, under tmu */
  pthread_mutex_t tmu;
  rpci_timer *thead, *ttail;
  int tfd;
  int64_t tarmed; /* what tfd is set to; INT64_MAX: disarmed */
  uv_poll_t tpoll;
};

static rpci_loop *pool;
static int pool_size;
static atomic_uint pool_next;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_wake(uv_async_t *a) {
  rpci_loop *l = a->data;
  pthread_mutex_lock(&l->mu);
  task *t = l->head;
  l->head = l->tail = NULL;
  pthread_mutex_unlock(&l->mu);
  while (t) {
    task *next = t->next;
    t->fn(t->arg);
    free(t);
    t = next;
  }
}

static void arm_locked(rpci_loop *l) {
  int64_t at = l->thead ? l->thead->at_ms : INT64_MAX;
  if (at == l->tarmed) return;
  l->tarmed = at;
  struct itimerspec its = {{0, 0}, {0, 0}};
  if (at != INT64_MAX) {
    if (at <= 0) at = 1;
    its.it_value.tv_sec = (time_t)(at / 1000);
    its.it_value.tv_nsec = (long)(at % 1000) * 1000000;
  }
  timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_timers(uv_poll_t *h, int status, int events) {
  rpci_loop *l = h->data;
  uint64_t ticks;
  if (read(l->tfd, &ticks, sizeof ticks) < 0) { /* spurious: fall through */
  }
  pthread_mutex_lock(&l->tmu);
  l->tarmed = INT64_MAX;
  int64_t now = mono_ms();
  while (l->thead && l->thead->at_ms <= now) {
    rpci_timer *t = l->thead;
    l->thead = t->next;
    if (l->thead)
      l->thead->prev = NULL;
    else
      l->ttail = NULL;
    t->prev = t->next = NULL;
    t->pending = 0;
    pthread_mutex_unlock(&l->tmu);
    t->fn(t); /* may free t */
    pthread_mutex_lock(&l->tmu);
    now = mono_ms();
  }
  arm_locked(l);
  pthread_mutex_unlock(&l->tmu);
}

int rpci_timer_start(rpci_loop *l, rpci_timer *t, int64_t at_ms, void (*fn)(rpci_timer *t)) {
  t->loop = l;
  t->at_ms = at_ms;
  t->fn = fn;
  pthread_mutex_lock(&l->tmu);
  /* Deadlines mostly grow: search from the tail. */
  rpci_timer *after = l->ttail;
  while (after && after->at_ms > at_ms) after = after->prev;
  t->prev = after;
  t->next = after ? after->next : l->thead;
  if (t->next)
    t->next->prev = t;
  else
    l->ttail = t;
  if (after)
    after->next = t;
  else
    l->thead = t;
  t->pending = 1;
  if (l->thead == t) arm_locked(l);
  pthread_mutex_unlock(&l->tmu);
  return 0;
}

int rpci_timer_stop(rpci_timer *t) {
  rpci_loop *l = t->loop;
  if (!l) return 0;
  pthread_mutex_lock(&l->tmu);
  int was = t->pending;
  if (was) {
    if (t->prev)
      t->prev->next = t->next;
    else
      l->thead = t->next;
    if (t->next)
      t->next->prev = t->prev;
    else
      l->ttail = t->prev;
    t->prev = t->next = NULL;
    t->pending = 0;
  }
  pthread_mutex_unlock(&l->tmu);
  return was;
}

static _Thread_local int on_io_thread;

int rpci_loop_on_io_thread(void) { return on_io_thread; }

static void *loop_main(void *arg) {
  rpci_loop *l = arg;
  on_io_thread = 1;
  uv_run(&l->uv, UV_RUN_DEFAULT);
  return NULL;
}

static int start_pool(int threads) {
  if (threads <= 0) threads = sysconf(_SC_NPROCESSORS_ONLN) >= 4 ? 2 : 1;
  rpci_loop *p = calloc((size_t)threads, sizeof *p);
  if (!p) return -1;
  for (int i = 0; i < threads; i++) {
    rpci_loop *l = &p[i];
    pthread_mutex_init(&l->mu, NULL);
    if (uv_loop_init(&l->uv) != 0 || uv_async_init(&l->uv, &l->wake, on_wake) != 0) return -1;
    l->wake.data = l;
    pthread_mutex_init(&l->tmu, NULL);
    l->tarmed = INT64_MAX;
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->tfd < 0 || uv_poll_init(&l->uv, &l->tpoll, l->tfd) != 0) return -1;
    l->tpoll.data = l;
    uv_poll_start(&l->tpoll, UV_READABLE, on_timers);
    /* The pool lives as long as the process: detach the threads. */
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) return -1;
    pthread_detach(l->thread);
  }
  pool_size = threads;
  pool = p;
  return 0;
}

rpci_loop *rpci_loop_pick(int threads) {
  pthread_mutex_lock(&pool_mu);
  if (!pool && start_pool(threads) != 0) {
    pthread_mutex_unlock(&pool_mu);
    rpci_set_error("cannot start I/O threads");
    return NULL;
  }
  pthread_mutex_unlock(&pool_mu);
  unsigned i = atomic_fetch_add(&pool_next, 1);
  return &pool[i % (unsigned)pool_size];
}

uv_loop_t *rpci_loop_uv(rpci_loop *l) { return &l->uv; }

int rpci_loop_is_current(const rpci_loop *l) { return pthread_equal(pthread_self(), l->thread); }

int rpci_loop_post(rpci_loop *l, rpci_task_fn fn, void *arg) {
  task *t = malloc(sizeof *t);
  if (!t) return -1;
  t->fn = fn;
  t->arg = arg;
  t->next = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->tail)
    l->tail->next = t;
  else
    l->head = t;
  l->tail = t;
  pthread_mutex_unlock(&l->mu);
  uv_async_send(&l->wake);
  return 0;
}

typedef struct sync_call {
  rpci_task_fn fn;
  void *arg;
  int done;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} sync_call;

static void run_sync(void *arg) {
  sync_call *s = arg;
  s->fn(s->arg);
  pthread_mutex_lock(&s->mu);
  s->done = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

int rpci_loop_call(rpci_loop *l, rpci_task_fn fn, void *arg) {
  if (rpci_loop_is_current(l)) {
    fn(arg);
    return 0;
  }
  sync_call s = {fn, arg, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};
  if (rpci_loop_post(l, run_sync, &s) != 0) return -1;
  pthread_mutex_lock(&s.mu);
  while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  return 0;
}
