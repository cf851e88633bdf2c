/* rpci_event: see event.h. */
#include "rpc/event.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rpc/util.h"

static void level_init(rpci_event_level *l, int want) {
  l->fd = -1;
  l->shown = 0;
  l->want = want;
}

void rpci_event_init(rpci_event *e) {
  pthread_mutex_init(&e->mu, NULL);
  rpci_cond_init(&e->cv);
  e->gen = 0;
  level_init(&e->recv, 0);
  level_init(&e->send, 1);
}

void rpci_event_destroy(rpci_event *e) {
  if (e->recv.fd >= 0) close(e->recv.fd);
  if (e->send.fd >= 0) close(e->send.fd);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
}

uint64_t rpci_event_gen(rpci_event *e) {
  pthread_mutex_lock(&e->mu);
  uint64_t g = e->gen;
  pthread_mutex_unlock(&e->mu);
  return g;
}

/* Makes the fd show l->want. e->mu held. */
static void show(rpci_event_level *l) {
  if (l->fd < 0 || l->shown == l->want) return;
  uint64_t v = 1;
  if (l->want) {
    if (write(l->fd, &v, sizeof v) == sizeof v) l->shown = 1;
  } else if (read(l->fd, &v, sizeof v) == sizeof v || errno == EAGAIN) {
    l->shown = 0;
  }
}

void rpci_event_notify(rpci_event *e, int readable, int writable) {
  pthread_mutex_lock(&e->mu);
  e->gen++;
  e->recv.want = readable;
  e->send.want = writable;
  show(&e->recv);
  show(&e->send);
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

int rpci_event_wait(rpci_event *e, uint64_t gen, int64_t until_ms) {
  struct timespec ts;
  if (until_ms >= 0) rpci_ms_to_timespec(&ts, until_ms);
  int rc = 0;
  pthread_mutex_lock(&e->mu);
  while (e->gen == gen) {
    if (until_ms < 0) {
      pthread_cond_wait(&e->cv, &e->mu);
    } else if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT) {
      rc = e->gen == gen ? -1 : 0;
      break;
    }
  }
  pthread_mutex_unlock(&e->mu);
  return rc;
}

static int level_fd(rpci_event *e, rpci_event_level *l) {
  pthread_mutex_lock(&e->mu);
  if (l->fd < 0) {
    l->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->shown = 0;
    show(l);
  }
  int fd = l->fd;
  pthread_mutex_unlock(&e->mu);
  return fd;
}

int rpci_event_fd(rpci_event *e) { return level_fd(e, &e->recv); }

int rpci_event_send_fd(rpci_event *e) { return level_fd(e, &e->send); }
