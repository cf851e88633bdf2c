/*
 * lua.i: Lua 5.4 typemaps for rpcnet.i (included from it under SWIGLUA).
 *
 * Buffers in are Lua strings read in place (lua_tolstring: no copy, binary
 * safe); buffers out are pushed with lua_pushlstring (one copy) and library
 * buffers are freed with rpcnet_free right after. Lua never runs on a
 * library thread: only the pulled (fn == NULL) registration helpers of
 * rpcnet.i are used. The idiomatic layer (bindings/lua/rpcnet.lua) turns
 * status ints into error values.
 *
 * Native helpers are added: poll(fds, timeout_ms), used by the
 * server's serve loop to wait on the server fd and the fds of requests
 * whose handler coroutines are waiting for a message or for room to send
 * (and, with timeout 0, to test one send fd), monotonic() (seconds on
 * CLOCK_MONOTONIC) for its timers, and cluster_call_start / _fd / _finish:
 * a routed unary call (rpcnet_cluster_call_ex) run on a C thread of its
 * own, so the Lua state keeps serving while it waits on a pipe that becomes
 * readable when the call is done. That thread runs only C code (the call,
 * then a copy of rpcnet_last_error): it never touches the Lua state.
 */

/* ---- binary-safe input buffers (nil: NULL, 0) ---- */
%typemap(in) (const void *data, size_t len),
             (const void *req, size_t req_len),
             (const void *value, size_t len) {
  if (lua_isnoneornil(L, $input)) {
    $1 = NULL;
    $2 = 0;
  } else {
    size_t n_ = 0;
    if (lua_type(L, $input) != LUA_TSTRING) SWIG_fail_arg("$symname", $input, "string");
    $1 = (void *)lua_tolstring(L, $input, &n_);
    $2 = n_;
  }
}

/* ---- library-allocated buffers out: string (or nil), freed at once ---- */
%typemap(in, numinputs=0) (void **data, size_t *len) (void *tmp = NULL, size_t tmplen = 0),
                          (void **resp, size_t *resp_len) (void *tmp = NULL, size_t tmplen = 0) {
  $1 = ($1_ltype)&tmp;
  $2 = &tmplen;
}
%typemap(argout) (void **data, size_t *len), (void **resp, size_t *resp_len) {
  if (*$1) {
    void *p_ = *$1;
    *$1 = NULL;
    lua_pushlstring(L, (const char *)p_, *$2);
    rpcnet_free(p_);
  } else {
    lua_pushnil(L);
  }
  SWIG_arg++;
}
%typemap(freearg) (void **data, size_t *len), (void **resp, size_t *resp_len) {
  if (tmp$argnum) rpcnet_free(tmp$argnum);
}

/* ---- borrowed library buffers out: copied into a string (or nil) ---- */
%typemap(in, numinputs=0) (const void **borrowed, size_t *borrowed_len)
    (const void *tmp = NULL, size_t tmplen = 0) {
  $1 = ($1_ltype)&tmp;
  $2 = &tmplen;
}
%typemap(argout) (const void **borrowed, size_t *borrowed_len) {
  if (*$1) lua_pushlstring(L, (const char *)*$1, *$2);
  else lua_pushnil(L);
  SWIG_arg++;
}

/* ---- listing entries: rpcnet_request_metadata_at / rpcnet_call_trailer_at
 * return the key, then the value (borrowed, copied into a string): two
 * results, nil, nil past the end. ---- */
%apply (const void **borrowed, size_t *borrowed_len) { (const void **value, size_t *len) };

/* ---- status message out ---- */
%typemap(in, numinputs=0) const char **message (const char *tmp = NULL) {
  $1 = ($1_ltype)&tmp;
}
%typemap(argout) const char **message {
  lua_pushstring(L, *$1 ? *$1 : "");
  SWIG_arg++;
}

/* ---- rpcnet_server_next's request out (nil when none) ---- */
%typemap(in, numinputs=0) rpcnet_request **out (rpcnet_request *tmp = NULL) {
  $1 = ($1_ltype)&tmp;
}
%typemap(argout) rpcnet_request **out {
  if (*$1) SWIG_NewPointerObj(L, *$1, $*1_descriptor, 0);
  else lua_pushnil(L);
  SWIG_arg++;
}

/* Counts (rpcnet_*_count) as Lua integers. */
%typemap(out) size_t {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}

/* Milliseconds as a Lua integer. */
%typemap(out) int64_t {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}

%{
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

/* poll(fds, timeout_ms) -> number of ready fds, or raises on a bad
 * argument. fds is an array of integers (negative entries are ignored).
 * EINTR counts as a wake-up with nothing ready. */
static int rpcnet_lua_poll(lua_State *L) {
  lua_Integer i, n;
  int timeout, rc;
  struct pollfd stackfds[64], *fds = stackfds;
  luaL_checktype(L, 1, LUA_TTABLE);
  timeout = (int)luaL_checkinteger(L, 2);
  n = luaL_len(L, 1);
  if (n > 64) {
    fds = (struct pollfd *)lua_newuserdatauv(L, (size_t)n * sizeof *fds, 0);
  }
  for (i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    fds[i].fd = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    fds[i].events = POLLIN;
    fds[i].revents = 0;
  }
  rc = poll(fds, (nfds_t)n, timeout);
  if (rc < 0 && errno == EINTR) rc = 0;
  if (rc < 0) return luaL_error(L, "poll failed: errno %d", errno);
  lua_pushinteger(L, rc);
  return 1;
}

/* monotonic() -> seconds (float) on CLOCK_MONOTONIC, for timeouts. */
static int rpcnet_lua_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}
/* ---- routed unary calls on a C thread (cluster_call_*) ------------------
 * cluster_call_start(cl, filter|nil, method, data, timeout_ms, flags)
 *   -> handle, or nil and a message (no memory, no pipe, no thread). The
 *   request is copied: the Lua string may be collected meanwhile.
 * cluster_call_fd(handle) -> fd readable once the call is done.
 * cluster_call_finish(handle) -> status, response (string or nil), member
 *   name ("" when none answered), rpcnet_last_error of the call. Joins the
 *   thread (blocks until the call is done: bounded by its deadline) and
 *   frees everything; a second finish raises. The handle's __gc joins too,
 *   so rpcnet_cluster_free never runs under a call (the Lua layer also
 *   finishes every pending call before freeing the cluster). */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define RPCNET_LUA_CCALL_MT "rpcnet.cluster_call"

typedef struct rpcnet_lua_ccall {
  rpcnet_cluster *cl;
  char *filter, *method;
  void *req;
  size_t req_len;
  int timeout_ms, flags;
  int rc;
  void *resp;
  size_t resp_len;
  char member[80];
  char *message;
  int rfd, wfd;
  pthread_t th;
  int started, joined;
} rpcnet_lua_ccall;

static void *rpcnet_lua_ccall_run(void *arg) {
  rpcnet_lua_ccall *c = (rpcnet_lua_ccall *)arg;
  char one = 1;
  c->rc =
      rpcnet_cluster_call_ex(c->cl, c->filter, c->method, c->req, c->req_len, &c->resp,
                             &c->resp_len, c->timeout_ms, c->flags, c->member, sizeof c->member);
  c->message = strdup(rpcnet_last_error());
  while (write(c->wfd, &one, 1) < 0 && errno == EINTR) {
  }
  return NULL;
}

static void rpcnet_lua_ccall_release(rpcnet_lua_ccall *c) {
  if (c->started && !c->joined) {
    pthread_join(c->th, NULL);
    c->joined = 1;
  }
  free(c->filter);
  free(c->method);
  free(c->req);
  free(c->message);
  if (c->resp) rpcnet_free(c->resp);
  if (c->rfd >= 0) close(c->rfd);
  if (c->wfd >= 0) close(c->wfd);
  free(c);
}

static int rpcnet_lua_ccall_gc(lua_State *L) {
  rpcnet_lua_ccall **u = (rpcnet_lua_ccall **)luaL_checkudata(L, 1, RPCNET_LUA_CCALL_MT);
  if (*u) {
    rpcnet_lua_ccall_release(*u);
    *u = NULL;
  }
  return 0;
}

static char *rpcnet_lua_memdup(const char *s, size_t n) {
  char *p = (char *)malloc(n + 1);
  if (p) {
    if (n) memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

static int rpcnet_lua_cluster_call_start(lua_State *L) {
  rpcnet_cluster *cl = NULL;
  size_t flen = 0, mlen = 0, dlen = 0;
  const char *filter, *method, *data;
  int timeout_ms, flags, fds[2];
  rpcnet_lua_ccall *c, **u;
  if (!SWIG_IsOK(SWIG_ConvertPtr(L, 1, (void **)&cl, SWIGTYPE_p_rpcnet_cluster, 0)) || !cl)
    return luaL_argerror(L, 1, "rpcnet_cluster expected");
  filter = luaL_optlstring(L, 2, NULL, &flen);
  method = luaL_checklstring(L, 3, &mlen);
  data = luaL_optlstring(L, 4, "", &dlen);
  timeout_ms = (int)luaL_checkinteger(L, 5);
  flags = (int)luaL_checkinteger(L, 6);
  /* The metatable, made on first use (luaL_newmetatable is idempotent). */
  if (luaL_newmetatable(L, RPCNET_LUA_CCALL_MT)) {
    lua_pushcfunction(L, rpcnet_lua_ccall_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  u = (rpcnet_lua_ccall **)lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, RPCNET_LUA_CCALL_MT);
  c = (rpcnet_lua_ccall *)calloc(1, sizeof *c);
  if (!c) goto oom;
  c->rfd = c->wfd = -1;
  *u = c; /* from here on __gc releases it */
  c->cl = cl;
  c->timeout_ms = timeout_ms;
  c->flags = flags;
  c->method = rpcnet_lua_memdup(method, mlen);
  c->filter = filter ? rpcnet_lua_memdup(filter, flen) : NULL;
  c->req_len = dlen;
  c->req = malloc(dlen ? dlen : 1);
  if (!c->method || (filter && !c->filter) || !c->req) goto oom;
  if (dlen) memcpy(c->req, data, dlen);
  if (pipe(fds) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot make a pipe: %s", strerror(errno));
    return 2;
  }
  c->rfd = fds[0];
  c->wfd = fds[1];
  (void)fcntl(c->rfd, F_SETFD, FD_CLOEXEC);
  (void)fcntl(c->wfd, F_SETFD, FD_CLOEXEC);
  if (pthread_create(&c->th, NULL, rpcnet_lua_ccall_run, c) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "cannot start a thread for the call");
    return 2;
  }
  c->started = 1;
  return 1;
oom:
  lua_pushnil(L);
  lua_pushstring(L, "out of memory");
  return 2;
}

static int rpcnet_lua_cluster_call_fd(lua_State *L) {
  rpcnet_lua_ccall **u = (rpcnet_lua_ccall **)luaL_checkudata(L, 1, RPCNET_LUA_CCALL_MT);
  lua_pushinteger(L, *u ? (*u)->rfd : -1);
  return 1;
}

static int rpcnet_lua_cluster_call_finish(lua_State *L) {
  rpcnet_lua_ccall **u = (rpcnet_lua_ccall **)luaL_checkudata(L, 1, RPCNET_LUA_CCALL_MT);
  rpcnet_lua_ccall *c = *u;
  if (!c) return luaL_error(L, "cluster call already finished");
  pthread_join(c->th, NULL);
  c->joined = 1;
  lua_pushinteger(L, c->rc);
  if (c->resp)
    lua_pushlstring(L, (const char *)c->resp, c->resp_len);
  else
    lua_pushnil(L);
  lua_pushstring(L, c->member);
  lua_pushstring(L, c->message ? c->message : "");
  *u = NULL;
  rpcnet_lua_ccall_release(c);
  return 4;
}
%}
%native(poll) int rpcnet_lua_poll(lua_State *L);
%native(monotonic) int rpcnet_lua_monotonic(lua_State *L);
%native(cluster_call_start) int rpcnet_lua_cluster_call_start(lua_State *L);
%native(cluster_call_fd) int rpcnet_lua_cluster_call_fd(lua_State *L);
%native(cluster_call_finish) int rpcnet_lua_cluster_call_finish(lua_State *L);

/* Status codes, ports and fds as Lua integers (SWIG's default pushes a
 * float). */
%typemap(out) int {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}
