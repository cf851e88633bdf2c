/* Status names, version, last error and rpcnet_free: the library-wide bits of
 * the public API. Stateless and thread-safe. */
#include <stdlib.h>

#include "obs/log.h"
#include "rpcnet/rpcnet.h"

static const char *const names[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

const char *rpcnet_status_name(int status) {
  if (status == RPCNET_END_OF_STREAM) return "END_OF_STREAM";
  if (status == RPCNET_WOULD_BLOCK) return "WOULD_BLOCK";
  if (status < 0 || status > 16) return "UNKNOWN_STATUS";
  return names[status];
}

const char *rpcnet_version(void) { return "0.1.0"; }

const char *rpcnet_last_error(void) { return rpci_get_error(); }

void rpcnet_free(void *p) { free(p); }
