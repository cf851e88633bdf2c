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
 * Two native helpers are added: poll(fds, timeout_ms), used by the
 * server's serve loop to wait on the server fd and the fds of requests
 * whose handler coroutines are waiting for a message or for room to send
 * (and, with timeout 0, to test one send fd), and monotonic()
 * (seconds on CLOCK_MONOTONIC) for its timers.
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
%}
%native(poll) int rpcnet_lua_poll(lua_State *L);
%native(monotonic) int rpcnet_lua_monotonic(lua_State *L);

/* Status codes, ports and fds as Lua integers (SWIG's default pushes a
 * float). */
%typemap(out) int {
  lua_pushinteger(L, (lua_Integer)$1);
  SWIG_arg++;
}
