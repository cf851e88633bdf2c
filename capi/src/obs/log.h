/*
 * Diagnostics: the thread-local "last error" behind rpcnet_last_error(), and
 * a tiny leveled logger.
 *
 * Design notes
 * - rpci_set_error writes only the calling thread's buffer: no locks, safe
 *   from any thread, including I/O threads (whose last error nobody reads).
 * - Logging goes to stderr, off by default; RPCNET_LOG=error|warn|info|debug
 *   in the environment turns it on (read once). Never log on a hot path
 *   without checking rpci_log_enabled first.
 */
#ifndef RPCI_OBS_LOG_H
#define RPCI_OBS_LOG_H

#include <stdarg.h>

#define RPCI_ERRMSG_MAX 512

/* Sets the calling thread's last error (printf format). */
void rpci_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Clears it. */
void rpci_clear_error(void);
/* The calling thread's last error; "" when none. */
const char *rpci_get_error(void);

enum { RPCI_LOG_ERROR = 1, RPCI_LOG_WARN = 2, RPCI_LOG_INFO = 3, RPCI_LOG_DEBUG = 4 };
int rpci_log_enabled(int level);
void rpci_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
