/* rpci_event: see event.h. */
#include "rpc/event.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rpc/util.h"

void rpci_event_init(rpci_event *e) {
  pthread_mutex_init(&e->mu, NULL);
  rpci_cond_init(&e->cv);
  e->gen = 0;
  e->fd = -1;
  e->fd_level = 0;
  e->readable = 0;
}

void rpci_event_destroy(rpci_event *e) {
  if (e->fd >= 0) close(e->fd);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
}

uint64_t rpci_event_gen(rpci_event *e) {
  pthread_mutex_lock(&e->mu);
  uint64_t g = e->gen;
  pthread_mutex_unlock(&e->mu);
  return g;
}

static void set_level_locked(rpci_event *e) {
  if (e->fd < 0 || e->fd_level == e->readable) return;
  uint64_t v = 1;
  if (e->readable) {
    if (write(e->fd, &v, sizeof v) == sizeof v) e->fd_level = 1;
  } else if (read(e->fd, &v, sizeof v) == sizeof v || errno == EAGAIN) {
    e->fd_level = 0;
  }
}

void rpci_event_notify(rpci_event *e, int readable) {
  pthread_mutex_lock(&e->mu);
  e->gen++;
  e->readable = readable;
  set_level_locked(e);
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

int rpci_event_fd(rpci_event *e) {
  pthread_mutex_lock(&e->mu);
  if (e->fd < 0) {
    e->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->fd_level = 0;
    set_level_locked(e);
  }
  int fd = e->fd;
  pthread_mutex_unlock(&e->mu);
  return fd;
}
