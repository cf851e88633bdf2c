/* rpc helpers: see util.h. */
#include "rpc/util.h"

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
