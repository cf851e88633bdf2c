/*
 * rpcnet: RPC over QUIC + TLS 1.3 with a CBOR wire format.
 *
 * This header is the whole public C API and the single source of truth for
 * its contract. Every function documents:
 *   - ownership: who allocates and who frees each pointer;
 *   - thread-safety: every function is safe to call from any thread at any
 *     time unless its comment says otherwise;
 *   - errors: the rpcnet_status values it returns. On every failure the
 *     calling thread's rpcnet_last_error() holds a human-readable detail.
 *
 * Handles are opaque. A handle is freed exactly once by its *_free / *_close
 * function; using it afterwards is undefined (the bindings turn that into a
 * clear error in the host language).
 *
 * ABI: symbols are only ever added. The SONAME major version changes only if
 * a symbol's meaning changes, which we intend never to do.
 */
#ifndef RPCNET_RPCNET_H
#define RPCNET_RPCNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RPCNET_API __attribute__((visibility("default")))
#else
#define RPCNET_API
#endif

#define RPCNET_VERSION_MAJOR 0
#define RPCNET_VERSION_MINOR 1
#define RPCNET_VERSION_PATCH 0

/* Returns the library version as "MAJOR.MINOR.PATCH" (static storage). */
RPCNET_API const char *rpcnet_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes: gRPC's numbers and names.                                   */
/* ------------------------------------------------------------------------ */

enum rpcnet_status {
  RPCNET_OK = 0,
  RPCNET_CANCELLED = 1,
  RPCNET_UNKNOWN = 2,
  RPCNET_INVALID_ARGUMENT = 3,
  RPCNET_DEADLINE_EXCEEDED = 4,
  RPCNET_NOT_FOUND = 5,
  RPCNET_ALREADY_EXISTS = 6,
  RPCNET_PERMISSION_DENIED = 7,
  RPCNET_RESOURCE_EXHAUSTED = 8,
  RPCNET_FAILED_PRECONDITION = 9,
  RPCNET_ABORTED = 10,
  RPCNET_OUT_OF_RANGE = 11,
  RPCNET_UNIMPLEMENTED = 12,
  RPCNET_INTERNAL = 13,
  RPCNET_UNAVAILABLE = 14,
  RPCNET_DATA_LOSS = 15,
  RPCNET_UNAUTHENTICATED = 16
};

/* Results of the streaming functions that are not call statuses. */
enum rpcnet_result {
  /* rpcnet_call_recv / rpcnet_request_recv: the peer finished sending; for a
   * client call the final status is now in rpcnet_call_status. */
  RPCNET_END_OF_STREAM = -1,
  /* A wait of timeout_ms (0: no wait) passed without progress. */
  RPCNET_WOULD_BLOCK = -2
};

/* The status's name without prefix ("OK", "NOT_FOUND", ...); "UNKNOWN_STATUS"
 * for other numbers; "END_OF_STREAM" and "WOULD_BLOCK" for the
 * rpcnet_result values. Static storage; never NULL. Thread-safe. */
RPCNET_API const char *rpcnet_status_name(int status);

/* Detail of the last failure on the calling thread: for a failed call the
 * server's status message, for a failed connect why (e.g. which certificate
 * check failed), for a bad argument which one. Thread-local storage, valid
 * until the next rpcnet call on the same thread; never NULL ("" when none). */
RPCNET_API const char *rpcnet_last_error(void);

/* Frees memory the library returned to the caller (call responses).
 * NULL is allowed. Thread-safe. */
RPCNET_API void rpcnet_free(void *p);

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

typedef struct rpcnet_config rpcnet_config;

/* A new configuration holding the defaults. Free with rpcnet_config_free.
 * Returns NULL only when out of memory. */
RPCNET_API rpcnet_config *rpcnet_config_new(void);

/* Sets one key. Values are strings so that every binding needs one function.
 * Booleans accept "true"/"false"/"1"/"0"; durations are integer milliseconds;
 * sizes are integer bytes.
 *
 * Keys:
 *   cert_file, key_file, ca_file    PEM files (certificate chain, private
 *                                   key, trusted CAs)
 *   cert_pem, key_pem, ca_pem       the same PEM held in memory (secrets that
 *                                   never touch disk)
 *   server_name                     client: name the server certificate must
 *                                   carry (default: host part of the address)
 *   verify_peer                     client: verify the server (default true)
 *   require_client_cert             server: mTLS against ca_file/ca_pem
 *                                   (default false)
 *   idle_timeout_ms                 QUIC idle timeout (default 30000)
 *   keep_alive_ms                   PING interval on idle connections; 0 = off
 *                                   (default 0 for servers, 10000 clients)
 *   handshake_timeout_ms            connect gives up after this (default 5000)
 *   default_timeout_ms              call timeout when a call passes <= 0
 *                                   (default 30000)
 *   max_concurrent_streams          calls a peer may open at once (default
 *                                   1024)
 *   max_message_size                largest message accepted (default 16 MiB)
 *   io_threads                      size of the process-wide I/O thread pool;
 *                                   only read by the first handle created
 *                                   (default 1)
 *
 * Returns RPCNET_OK, or RPCNET_INVALID_ARGUMENT for an unknown key or a bad
 * value (rpcnet_last_error names the key). Files are read when a client or
 * server is created from the config, not here.
 * Thread-safety: a config must not be modified concurrently with another
 * call that uses it; reading it from several threads at once is fine. */
RPCNET_API int rpcnet_config_set(rpcnet_config *cfg, const char *key, const char *value);

/* Frees the config. Clients and servers created from it keep their own copy,
 * so it may be freed at once. NULL is allowed. */
RPCNET_API void rpcnet_config_free(rpcnet_config *cfg);

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct rpcnet_server rpcnet_server;
typedef struct rpcnet_request rpcnet_request;

/* A new server with the config's certificate and key. Returns NULL on
 * failure (missing or unreadable certificate or key, bad CA for mTLS);
 * rpcnet_last_error says why. Free with rpcnet_server_free. */
RPCNET_API rpcnet_server *rpcnet_server_new(const rpcnet_config *cfg);

/* Binds a UDP socket and starts accepting QUIC connections. addr is
 * "host:port" or "[v6]:port"; port 0 picks a free one. Only one listen per
 * server. Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT (bad address or
 * already listening), RPCNET_UNAVAILABLE (bind failed; detail in
 * rpcnet_last_error) or RPCNET_FAILED_PRECONDITION after shutdown. */
RPCNET_API int rpcnet_server_listen(rpcnet_server *srv, const char *addr);

/* The bound UDP port, or -1 when not listening. */
RPCNET_API int rpcnet_server_port(const rpcnet_server *srv);

/* A handler. It runs on a library I/O thread and MUST NOT block it: it either
 * answers at once (rpcnet_request_reply / rpcnet_request_fail) or keeps req
 * and answers later from any thread. The handler owns req: exactly one answer
 * releases it. */
typedef void (*rpcnet_handler_fn)(rpcnet_request *req, void *user);

/* Registers a method. With fn != NULL, fn(req, user) is called for each call
 * of the method. With fn == NULL the method is pulled: its calls queue for
 * rpcnet_server_next. Registering a method again replaces it. Calls to
 * methods never registered are answered RPCNET_UNIMPLEMENTED with a message
 * naming the method. user is not owned by the library.
 * Returns RPCNET_OK or RPCNET_INVALID_ARGUMENT (NULL or empty method). */
RPCNET_API int rpcnet_server_handle(rpcnet_server *srv, const char *method, rpcnet_handler_fn fn,
                                    void *user);

/* Registers a streaming method: like rpcnet_server_handle, but the call is
 * dispatched (or queued for rpcnet_server_next) as soon as its request
 * header arrives, and the handler reads the client's messages with
 * rpcnet_request_recv and answers with rpcnet_request_send (any number)
 * and rpcnet_request_finish. rpcnet_request_data gives an empty message for
 * streaming calls. Returns as rpcnet_server_handle. */
RPCNET_API int rpcnet_server_handle_stream(rpcnet_server *srv, const char *method,
                                           rpcnet_handler_fn fn, void *user);

/* Takes the next call of a pulled method, waiting up to timeout_ms (< 0: for
 * ever, 0: do not wait). Returns RPCNET_OK with *out set (the caller now owns
 * the request and must answer it), RPCNET_DEADLINE_EXCEEDED when the wait
 * timed out, or RPCNET_UNAVAILABLE once the server is shut down and the
 * queue is empty. Any number of threads may wait at once. */
RPCNET_API int rpcnet_server_next(rpcnet_server *srv, int timeout_ms, rpcnet_request **out);

/* A file descriptor that is readable while rpcnet_server_next would not block
 * (a call is queued, or the server is shut down). For event loops: wait on
 * it, then call rpcnet_server_next(srv, 0, ...). Owned by the server; do not
 * read or close it. Level-triggered. */
RPCNET_API int rpcnet_server_fd(const rpcnet_server *srv);

/* Stops accepting new connections and calls, lets calls in flight finish for
 * up to drain_timeout_ms, then fails what remains with RPCNET_UNAVAILABLE and
 * closes every connection with an orderly QUIC CONNECTION_CLOSE. Blocks until
 * done. Calling it again is harmless. Must not be called from a handler.
 * Returns RPCNET_OK. */
RPCNET_API int rpcnet_server_shutdown(rpcnet_server *srv, int drain_timeout_ms);

/* Shuts down (with no drain) if needed and frees the server. Requests still
 * held by the application stay valid until answered; answering them then
 * returns RPCNET_UNAVAILABLE. NULL is allowed. Must not be called from a
 * handler. */
RPCNET_API void rpcnet_server_free(rpcnet_server *srv);

/* ------------------------------------------------------------------------ */
/* Requests (server side of one call)                                        */
/* ------------------------------------------------------------------------ */

/* The method name. Valid until the request is answered. */
RPCNET_API const char *rpcnet_request_method(const rpcnet_request *req);

/* The request message; *len receives its length (len may be NULL). Binary
 * safe. Valid until the request is answered. Never NULL (an empty message
 * gives a non-NULL pointer and length 0). */
RPCNET_API const void *rpcnet_request_data(const rpcnet_request *req, size_t *len);

/* The peer: "ip:port", followed by " subject=<DN>" when the client presented
 * a certificate (mTLS). Valid until the request is answered. */
RPCNET_API const char *rpcnet_request_peer(const rpcnet_request *req);

/* Answers with one message (copied) and status OK, and releases req.
 * Returns RPCNET_OK, RPCNET_RESOURCE_EXHAUSTED when len exceeds
 * max_message_size (the call then fails with that status), or
 * RPCNET_UNAVAILABLE / RPCNET_CANCELLED / RPCNET_DEADLINE_EXCEEDED when the
 * call can no longer be answered (connection gone, client cancelled, deadline
 * passed). req is released in every case. */
RPCNET_API int rpcnet_request_reply(rpcnet_request *req, const void *data, size_t len);

/* Answers with a failure status (1..16) and an optional message (UTF-8, may
 * be NULL) and releases req. A status outside 1..16 is sent as
 * RPCNET_UNKNOWN. Returns as rpcnet_request_reply. */
RPCNET_API int rpcnet_request_fail(rpcnet_request *req, int status, const char *message);

/* ---- Streaming, metadata, deadlines and cancellation (server side) ----
 * Every function below may be called from any thread that owns req (one
 * thread at a time). The waiting ones never wait on a library thread (an
 * inline handler): there they behave as with timeout_ms 0. */

/* The next message from the client, waiting up to timeout_ms (< 0: until
 * the call's deadline or for ever). Returns RPCNET_OK with *data (free with
 * rpcnet_free) and *len; RPCNET_END_OF_STREAM when the client finished
 * sending; RPCNET_WOULD_BLOCK when nothing came in time; RPCNET_CANCELLED
 * or RPCNET_DEADLINE_EXCEEDED when the call was cancelled or expired;
 * RPCNET_UNAVAILABLE when its connection is gone. A unary call yields its
 * one message, then RPCNET_END_OF_STREAM. */
RPCNET_API int rpcnet_request_recv(rpcnet_request *req, int timeout_ms, void **data, size_t *len);

/* Sends one message (copied) to the client. Blocks while the call's
 * unacknowledged output exceeds its send window (backpressure), up to the
 * call's deadline; on a library thread it never blocks and returns
 * RPCNET_WOULD_BLOCK instead. Returns RPCNET_OK, RPCNET_WOULD_BLOCK,
 * RPCNET_RESOURCE_EXHAUSTED (over max_message_size), RPCNET_CANCELLED,
 * RPCNET_DEADLINE_EXCEEDED, RPCNET_UNAVAILABLE, or
 * RPCNET_FAILED_PRECONDITION after finish. */
RPCNET_API int rpcnet_request_send(rpcnet_request *req, const void *data, size_t len);

/* Adds trailing metadata sent with the status (copied). Keys are non-empty
 * UTF-8; a key ending in "-bin" carries bytes, any other key UTF-8 text.
 * Returns RPCNET_OK or RPCNET_INVALID_ARGUMENT. */
RPCNET_API int rpcnet_request_set_trailer(rpcnet_request *req, const char *key, const void *value,
                                          size_t len);

/* Ends the call with status (0..16) and an optional message, and releases
 * req. rpcnet_request_reply is send + finish(RPCNET_OK); rpcnet_request_fail
 * is finish with a failure. Returns as rpcnet_request_reply. */
RPCNET_API int rpcnet_request_finish(rpcnet_request *req, int status, const char *message);

/* The first value of request metadata key, or NULL; *len (may be NULL)
 * receives its length. Valid until req is released. */
RPCNET_API const void *rpcnet_request_metadata(const rpcnet_request *req, const char *key,
                                               size_t *len);

/* A file descriptor readable while rpcnet_request_recv would not block (a
 * message is queued, the client finished sending, or the call ended), for
 * event loops. Level-triggered; owned by req; do not read or close it.
 * Returns -1 when no descriptor can be made. */
RPCNET_API int rpcnet_request_fd(rpcnet_request *req);

/* A file descriptor readable while rpcnet_request_send would not block
 * (room in the call's send window, or the call ended). Level-triggered;
 * owned by req. Returns -1 when no descriptor can be made. */
RPCNET_API int rpcnet_request_send_fd(rpcnet_request *req);

/* Request metadata by position, for listing it: 0 <= i < count. Returns the
 * key and sets *value / *len (both may be NULL), or NULL when i is out of
 * range. Keys and values are valid until req is released. */
RPCNET_API size_t rpcnet_request_metadata_count(const rpcnet_request *req);
RPCNET_API const char *rpcnet_request_metadata_at(const rpcnet_request *req, size_t i,
                                                  const void **value, size_t *len);

/* Non-zero once the client cancelled the call, its deadline passed or its
 * connection went away: further work is useless. */
RPCNET_API int rpcnet_request_cancelled(const rpcnet_request *req);

/* Milliseconds left before the call's deadline (0 when passed), or -1 when
 * the client set none. */
RPCNET_API int64_t rpcnet_request_deadline_ms(const rpcnet_request *req);

/* ------------------------------------------------------------------------ */
/* Client                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct rpcnet_client rpcnet_client;

/* Connects to addr ("host:port", "[v6]:port") and completes the QUIC and TLS
 * handshakes, verifying the server unless verify_peer is false. Returns NULL
 * on failure; rpcnet_last_error says why (unreachable, handshake timeout,
 * which certificate check failed, ...). server_name defaults to the host part
 * of addr. Close with rpcnet_client_close. */
RPCNET_API rpcnet_client *rpcnet_client_connect(const rpcnet_config *cfg, const char *addr);

/* A blocking unary call: sends req (req_len bytes, binary safe; req may be
 * NULL when req_len is 0) to method and waits for the answer for up to
 * timeout_ms (<= 0: the config's default_timeout_ms).
 * On RPCNET_OK *resp receives a buffer the caller frees with rpcnet_free and
 * *resp_len its length (*resp is non-NULL even for an empty answer). On any
 * other status *resp is NULL and rpcnet_last_error holds the server's status
 * message or the local reason.
 * Returns the call's status: the server's, or RPCNET_DEADLINE_EXCEEDED,
 * RPCNET_UNAVAILABLE (connection lost or cannot be re-established),
 * RPCNET_RESOURCE_EXHAUSTED (message larger than max_message_size),
 * RPCNET_INVALID_ARGUMENT (bad arguments), RPCNET_CANCELLED (client closed).
 * Any number of threads may call at once on one client: their calls are
 * concurrent streams of one QUIC connection. If the connection drops, calls
 * in flight fail with RPCNET_UNAVAILABLE and a later call reconnects, with
 * exponential backoff between failed attempts. */
RPCNET_API int rpcnet_client_call(rpcnet_client *cli, const char *method, const void *req,
                                  size_t req_len, void **resp, size_t *resp_len, int timeout_ms);

/* ---- Call handles: streaming, metadata, cancellation (client side) ----
 * One handle serves every kind of call: unary is send + close_send + recv.
 * A handle is used by one thread at a time, with two exceptions: any thread
 * may call rpcnet_call_cancel at any time, and once the first send,
 * close_send or recv has returned, one thread may send (send, send_timeout,
 * close_send) while another receives (recv, status, trailer): full duplex. */

typedef struct rpcnet_call rpcnet_call;

/* Starts a call of method on cli with a deadline timeout_ms from now (<= 0:
 * default_timeout_ms). Nothing is sent until the first send, close_send or
 * recv, so metadata can be set first. Returns NULL (rpcnet_last_error says
 * why) when cli is closed or out of memory. Connection failures surface as
 * the call's status. Free with rpcnet_call_free. */
RPCNET_API rpcnet_call *rpcnet_client_start(rpcnet_client *cli, const char *method, int timeout_ms);

/* Adds request metadata (copied) before the first send. Keys as in
 * rpcnet_request_set_trailer. Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT,
 * or RPCNET_FAILED_PRECONDITION once the header is sent. */
RPCNET_API int rpcnet_call_set_metadata(rpcnet_call *call, const char *key, const void *value,
                                        size_t len);

/* Sends one message (copied). Blocks while the call's unacknowledged output
 * exceeds its send window, up to the deadline. Returns RPCNET_OK, or the
 * call's final status when it has ended (e.g. RPCNET_CANCELLED,
 * RPCNET_DEADLINE_EXCEEDED, RPCNET_UNAVAILABLE, or the server's status),
 * RPCNET_RESOURCE_EXHAUSTED over max_message_size, or
 * RPCNET_FAILED_PRECONDITION after close_send. */
RPCNET_API int rpcnet_call_send(rpcnet_call *call, const void *data, size_t len);

/* As rpcnet_call_send but waits at most timeout_ms for room (0: never);
 * RPCNET_WOULD_BLOCK when there was none (nothing was sent). */
RPCNET_API int rpcnet_call_send_timeout(rpcnet_call *call, const void *data, size_t len,
                                        int timeout_ms);

/* Sends one message and finishes the client's side of the stream in the
 * same write (send + close_send, one packet for a small unary request).
 * Returns as rpcnet_call_send. */
RPCNET_API int rpcnet_call_send_last(rpcnet_call *call, const void *data, size_t len);

/* Finishes the client's side of the stream (FIN). Returns RPCNET_OK, or the
 * call's final status when it already ended (RPCNET_OK when it ended OK: a
 * server may finish before the client closes its side). Calling it again
 * is harmless. */
RPCNET_API int rpcnet_call_close_send(rpcnet_call *call);

/* The next message from the server, waiting up to timeout_ms (< 0: until
 * the deadline). Returns RPCNET_OK with *data (free with rpcnet_free) and
 * *len; RPCNET_END_OF_STREAM once the call has ended (its status, OK or
 * not, is then in rpcnet_call_status); or RPCNET_WOULD_BLOCK when nothing
 * came within timeout_ms. Messages arrive in order. */
RPCNET_API int rpcnet_call_recv(rpcnet_call *call, int timeout_ms, void **data, size_t *len);

/* The final status once recv returned RPCNET_END_OF_STREAM (before that:
 * RPCNET_UNKNOWN with message "call in progress"). *message (may be NULL)
 * receives the status message ("" when none), valid until the call is
 * freed. */
RPCNET_API int rpcnet_call_status(rpcnet_call *call, const char **message);

/* The first value of trailing metadata key once the call ended, or NULL;
 * *len (may be NULL) receives its length. Valid until the call is freed. */
RPCNET_API const void *rpcnet_call_trailer(rpcnet_call *call, const char *key, size_t *len);

/* A file descriptor readable while rpcnet_call_recv would not block (a
 * message is queued or the call ended), for event loops (asyncio
 * add_reader, poll). Level-triggered; owned by the call; do not read or
 * close it. Returns -1 when no descriptor can be made. */
RPCNET_API int rpcnet_call_fd(rpcnet_call *call);

/* A file descriptor readable while rpcnet_call_send would not block (room
 * in the send window, the call not yet started, or ended). Level-triggered;
 * owned by the call. Returns -1 when no descriptor can be made. */
RPCNET_API int rpcnet_call_send_fd(rpcnet_call *call);

/* Trailing metadata by position once the call ended: 0 <= i < count.
 * Returns the key and sets *value / *len (both may be NULL), or NULL when i
 * is out of range. Valid until the call is freed. */
RPCNET_API size_t rpcnet_call_trailer_count(rpcnet_call *call);
RPCNET_API const char *rpcnet_call_trailer_at(rpcnet_call *call, size_t i, const void **value,
                                              size_t *len);

/* Cancels the call: resets the stream in both directions with the
 * CANCELLED code; the call's status becomes RPCNET_CANCELLED unless it had
 * already ended. Any thread, any time, repeatable. */
RPCNET_API void rpcnet_call_cancel(rpcnet_call *call);

/* Cancels the call if still running and frees it. NULL is allowed. */
RPCNET_API void rpcnet_call_free(rpcnet_call *call);

/* Fails calls in flight with RPCNET_CANCELLED, closes the connection with an
 * orderly CONNECTION_CLOSE, and frees the client. NULL is allowed. No other
 * thread may use cli once this is called. */
RPCNET_API void rpcnet_client_close(rpcnet_client *cli);

/* ------------------------------------------------------------------------ */
/* Cluster: SWIM membership with Lifeguard, tags, events, routed calls      */
/* (docs/cluster.md)                                                         */
/* ------------------------------------------------------------------------ */

typedef struct rpcnet_cluster rpcnet_cluster;

/* Flags of rpcnet_cluster_call_ex. */
enum rpcnet_call_flags {
  /* The method may run more than once: on UNAVAILABLE or a broken connection
   * the call is retried on another member (cluster_retries times). */
  RPCNET_CALL_IDEMPOTENT = 1,
  /* Idempotent calls only: when the first attempt has not answered by the
   * hedge_percentile latency, a second attempt starts on another member and
   * the first answer wins (the loser is cancelled). */
  RPCNET_CALL_HEDGE = 2
};

/* A new cluster node: binds the gossip UDP socket and starts the failure
 * detector (alone until rpcnet_cluster_join). Config keys, besides the TLS
 * client keys used for calls to members and for push-pull (ca_file,
 * server_name, verify_peer, cert_file/key_file for mTLS, timeouts):
 *   node_name          unique name of this node (default "<hostname>-<port>")
 *   gossip_bind        "host:port" of the gossip socket (default
 *                      "0.0.0.0:7946"; port 0 picks a free one)
 *   gossip_advertise   the address others send gossip to (default: the bind
 *                      address, or for a wildcard bind the host's first
 *                      non-loopback IPv4 address, else 127.0.0.1); names are
 *                      resolved once, here
 *   rpc_advertise      the RPC address others call (default: set by
 *                      rpcnet_cluster_attach_server from the server's port)
 *   cluster_keys       comma-separated keys (base64 or hex, 16/24/32 bytes);
 *                      the first seals, all open; "" = gossip in the clear
 *   probe_interval_ms, probe_timeout_ms, gossip_interval_ms,
 *   sync_interval_ms, reap_ms, suspicion_mult, lifeguard
 *                      failure-detector tuning (docs/cluster.md; defaults are
 *                      memberlist's LAN preset, tuned)
 *   join_timeout_ms    how long rpcnet_cluster_join waits (default 5000)
 *   cluster_strategy   p2c (default), round_robin, random, least_connections
 *   cluster_retries    extra attempts for idempotent calls (default 2)
 *   hedge_percentile   latency percentile for RPCNET_CALL_HEDGE, 50..99
 *                      (default 95)
 *   breaker_failures   consecutive failures that eject a member (default 5)
 * Returns NULL on failure (bad config, bind failed, bad key); rpcnet_last_error
 * says why. Free with rpcnet_cluster_free. */
RPCNET_API rpcnet_cluster *rpcnet_cluster_new(const rpcnet_config *cfg);

/* Attaches a listening server: registers the internal push-pull method
 * "rpcnet.cluster/sync" on it (an inline handler) and, unless rpc_advertise
 * was configured, advertises the gossip advertise host with the server's
 * port as this node's RPC address. A node without a server still joins,
 * gossips and calls others, but cannot be called and is never a push-pull
 * target. The server must outlive the cluster (free the cluster first).
 * Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT (NULL, or not listening) or
 * RPCNET_FAILED_PRECONDITION (already attached, or after leave). */
RPCNET_API int rpcnet_cluster_attach_server(rpcnet_cluster *cl, rpcnet_server *srv);

/* Sets (value != NULL) or removes (value == NULL) a tag of this node; the
 * change is gossiped at once (with a new incarnation). Keys are at most 128
 * bytes, values 512, at most 32 tags and 1 KiB in all, no ',' or '=' in
 * keys. Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT or
 * RPCNET_RESOURCE_EXHAUSTED (limits). Thread-safe. */
RPCNET_API int rpcnet_cluster_set_tag(rpcnet_cluster *cl, const char *key, const char *value);

/* Joins the cluster through seeds ("host:port,host:port": gossip
 * addresses). Blocks until a push-pull with one seed completed, or for
 * join_timeout_ms. Returns RPCNET_OK, RPCNET_INVALID_ARGUMENT (bad seed list),
 * RPCNET_PERMISSION_DENIED (a seed rejected this node's cluster key; the
 * message says which seed and why) or RPCNET_UNAVAILABLE (no seed answered).
 * May be called again. Thread-safe. */
RPCNET_API int rpcnet_cluster_join(rpcnet_cluster *cl, const char *seeds);

/* Leaves gracefully: the others record this node as "left", not failed.
 * Waits up to timeout_ms for the leave to be gossiped (not at all when no
 * other member is alive or suspect), then stops probing;
 * the node still answers until freed. Returns RPCNET_OK or
 * RPCNET_DEADLINE_EXCEEDED (not confirmed in time; others still learn it). */
RPCNET_API int rpcnet_cluster_leave(rpcnet_cluster *cl, int timeout_ms);

/* The members whose tags match filter ("k=v,k2=v2", "k" for presence,
 * "k!=v"; NULL or "" for all), this node included, as one CBOR array of
 * maps (deterministic encoding):
 *   {"name": text, "gossip_addr": text, "rpc_addr": text ("" if none),
 *    "state": "alive"|"suspect"|"dead"|"left", "incarnation": uint,
 *    "tags": {text: text}, "self": bool, "inflight": uint,
 *    "latency_us": uint (call latency EWMA, 0 until measured),
 *    "phi": float (phi accrual score of call latencies),
 *    "breaker": "closed"|"open"|"half_open"}
 * Dead and left members are listed until reaped. On RPCNET_OK *data (the
 * CBOR; free with rpcnet_free) and *len are set. Returns RPCNET_OK or
 * RPCNET_INVALID_ARGUMENT (bad filter). Thread-safe. */
RPCNET_API int rpcnet_cluster_members(rpcnet_cluster *cl, const char *filter, void **data,
                                      size_t *len);

/* Takes the next membership event, waiting up to timeout_ms (< 0: for ever,
 * 0: do not wait). An event is a CBOR map {"type": text, "member": map as in
 * rpcnet_cluster_members} with type "joined", "left", "failed", "updated",
 * "recovered", "suspected", "partitioned" or "healed" (the last two without
 * "member"). On RPCNET_OK *data (the CBOR; free with rpcnet_free) and *len
 * are set.
 * Returns RPCNET_OK or RPCNET_DEADLINE_EXCEEDED. At most 65536 events wait;
 * older ones are dropped beyond that. Thread-safe. */
RPCNET_API int rpcnet_cluster_next_event(rpcnet_cluster *cl, int timeout_ms, void **data,
                                         size_t *len);

/* A file descriptor readable while an event is queued (level-triggered).
 * Owned by the cluster: do not read or close it. */
RPCNET_API int rpcnet_cluster_fd(const rpcnet_cluster *cl);

/* This node's name, and the bound gossip port. Valid until free. */
RPCNET_API const char *rpcnet_cluster_name(const rpcnet_cluster *cl);
RPCNET_API int rpcnet_cluster_gossip_port(const rpcnet_cluster *cl);

/* Replaces the keyring (same format as the cluster_keys config key; the
 * first key seals, all open) without a restart. Rotation with no downtime:
 * on every node set "old,new", then "new,old", then "new". An empty string
 * switches to unauthenticated gossip. Returns RPCNET_OK or
 * RPCNET_INVALID_ARGUMENT (bad key: the keyring is unchanged; the message
 * names the key's position, never the key). Thread-safe. */
RPCNET_API int rpcnet_cluster_set_keys(rpcnet_cluster *cl, const char *keys);

/* Counters of this node as one CBOR map of text keys to unsigned integers:
 * pkts_in, pkts_out, bytes_in, bytes_out, malformed (datagrams and
 * push-pull bodies rejected by the decoder), auth_failures (datagrams and
 * push-pull bodies that failed authentication, dropped), rejects_sent
 * (key-mismatch notices sent), unknown_msgs, tx_dropped, probes,
 * probe_failures, indirect_probes, nacks_recv, refutes, sync_failures,
 * events_dropped, health (Lifeguard's awareness score), partitioned (0/1),
 * incarnation, members (records held, tombstones included). For metrics
 * exporters. On RPCNET_OK *data (free with rpcnet_free) and *len are set.
 * Thread-safe. */
RPCNET_API int rpcnet_cluster_stats(rpcnet_cluster *cl, void **data, size_t *len);

/* A unary call to one alive member whose tags match filter, chosen by
 * cluster_strategy; connections to members are pooled. Same contract as
 * rpcnet_client_call otherwise. Without flags a call is attempted once:
 * RPCNET_UNAVAILABLE is returned when no member matches or the chosen one
 * is unreachable. Thread-safe. */
RPCNET_API int rpcnet_cluster_call(rpcnet_cluster *cl, const char *filter, const char *method,
                                   const void *req, size_t req_len, void **resp, size_t *resp_len,
                                   int timeout_ms);

/* rpcnet_cluster_call with flags (rpcnet_call_flags) and, when member is not
 * NULL, the name of the member that answered written to member[member_len]
 * ("" when none did). */
RPCNET_API int rpcnet_cluster_call_ex(rpcnet_cluster *cl, const char *filter, const char *method,
                                      const void *req, size_t req_len, void **resp,
                                      size_t *resp_len, int timeout_ms, int flags, char *member,
                                      size_t member_len);

/* The streaming form: starts a call (see rpcnet_client_start) on a member
 * chosen as for rpcnet_cluster_call. Streams are not retried. Returns NULL
 * when no member matches or it cannot be reached (rpcnet_last_error says
 * why). The call handle is used and freed as any other; rpcnet_cluster_free
 * cancels it if still running (free it anyway). A member that cannot be
 * reached counts against its circuit breaker; stream latencies are not
 * measured. */
RPCNET_API rpcnet_call *rpcnet_cluster_start(rpcnet_cluster *cl, const char *filter,
                                             const char *method, int timeout_ms);

/* Stops gossip (without a leave: others will see this node fail unless
 * rpcnet_cluster_leave ran first), closes pooled connections and frees the
 * node. Must not run concurrently with other calls on cl. NULL is allowed. */
RPCNET_API void rpcnet_cluster_free(rpcnet_cluster *cl);

#ifdef __cplusplus
}
#endif
#endif /* RPCNET_RPCNET_H */
