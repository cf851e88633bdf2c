/* Diagnostics: see log.h. */
#include "obs/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static _Thread_local char last_error[RPCI_ERRMSG_MAX];

void rpci_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
}

void rpci_clear_error(void) { last_error[0] = 0; }

const char *rpci_get_error(void) { return last_error; }

static int log_level = -1;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_init(void) {
  const char *v = getenv("RPCNET_LOG");
  int lvl = 0;
  if (v) {
    if (!strcasecmp(v, "error"))
      lvl = RPCI_LOG_ERROR;
    else if (!strcasecmp(v, "warn"))
      lvl = RPCI_LOG_WARN;
    else if (!strcasecmp(v, "info"))
      lvl = RPCI_LOG_INFO;
    else if (!strcasecmp(v, "debug"))
      lvl = RPCI_LOG_DEBUG;
  }
  log_level = lvl;
}

int rpci_log_enabled(int level) {
  pthread_once(&log_once, log_init);
  return level <= log_level;
}

void rpci_log(int level, const char *fmt, ...) {
  static const char *names[] = {"", "error", "warn", "info", "debug"};
  if (!rpci_log_enabled(level)) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(stderr, "rpcnet %ld.%06ld %s: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000, names[level],
          line);
}
