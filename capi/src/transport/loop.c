/* The I/O thread pool: see loop.h. */
#include "transport/loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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

static void *loop_main(void *arg) {
  rpci_loop *l = arg;
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
  if (l->tail) l->tail->next = t;
  else l->head = t;
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
