/*
 * One QUIC connection (client or server side) over ngtcp2, and its streams.
 * This module and endpoint.c are the only places that call ngtcp2.
 *
 * Design notes
 * - Every ngtcp2 call for a connection happens under that connection's
 *   mutex (rpci_qconn_lock). The connection's loop thread takes it to read
 *   packets and run timers; an application thread takes it to open streams,
 *   queue data and *write the resulting packets itself* at unlock, so a
 *   call's request leaves with no thread hand-off.
 * - The loss/idle timer is a timerfd re-armed with one syscall by whichever
 *   thread last wrote, so writing from an application thread wakes nobody.
 * - Events (rpci_qconn_events) are called with the lock held and must not
 *   block or take the lock again; after_batch is the one event called
 *   without the lock (on the loop thread, after a batch of packets), which
 *   is where servers run handlers.
 * - Stream send data is a list of malloc'd chunks whose addresses never
 *   move: ngtcp2 keeps pointers into them until the bytes are acknowledged,
 *   and acknowledged chunks are freed as acks arrive.
 * - Lifetime: a connection is refcounted. Its loop's handles hold a
 *   reference until closed on the loop thread; each rpc call attached to it
 *   holds one. After teardown the object stays valid (state CLOSED) until
 *   the last reference goes, so late users get a clean error.
 */
#ifndef RPCI_TRANSPORT_QCONN_H
#define RPCI_TRANSPORT_QCONN_H

#include <ngtcp2/ngtcp2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "transport/loop.h"
#include "transport/tls.h"

typedef struct rpci_qconn rpci_qconn;
typedef struct rpci_endpoint rpci_endpoint;

/* Application error code reported to stream_close when the connection
 * itself went away (not a QUIC code; never sent). */
#define RPCI_CONN_LOST UINT64_MAX

typedef struct rpci_chunk {
  struct rpci_chunk *next;
  size_t len;
  uint8_t data[];
} rpci_chunk;

/* The transport part of a call, embedded in the rpc layer's call object.
 * All fields are guarded by the connection's lock. */
typedef struct rpci_stream {
  int64_t id; /* -1 until opened */
  rpci_qconn *qc;
  rpci_chunk *head, *tail; /* unacknowledged send data, in order */
  rpci_chunk *cur;         /* first chunk with unsent bytes */
  size_t cur_off;          /* unsent position inside cur */
  uint64_t head_off;       /* stream offset of head's first byte */
  uint64_t queued;         /* bytes queued so far */
  uint64_t sent;           /* bytes handed to ngtcp2 so far */
  unsigned fin_queued : 1, fin_sent : 1, in_sendq : 1, attached : 1, blocked : 1;
  struct rpci_stream *sendq_next;  /* streams with data to send */
  struct rpci_stream *prev, *next; /* all attached streams */
} rpci_stream;

typedef struct rpci_qconn_events {
  /* Server: the peer opened stream_id. Attach a stream with
   * rpci_stream_attach, or reset it with rpci_qconn_reset_id. */
  void (*stream_open)(rpci_qconn *qc, int64_t stream_id, void *user);
  /* Bytes arrived in order; fin when the peer finished sending. The
   * receiver returns the credit with rpci_stream_consume. */
  void (*stream_data)(rpci_stream *s, const uint8_t *data, size_t len, int fin);
  /* Acknowledged send data was released (rpci_stream_unacked shrank). */
  void (*stream_acked)(rpci_stream *s);
  /* The peer reset its sending side (RESET_STREAM). A peer's STOP_SENDING
   * is not reported by ngtcp2 0.12: it resets our side itself, and the
   * code arrives with stream_close. */
  void (*stream_reset)(rpci_stream *s, uint64_t app_error);
  /* The transport is done with s and will never touch it again.
   * app_error is RPCI_CONN_LOST when the connection went away. */
  void (*stream_close)(rpci_stream *s, uint64_t app_error);
  /* Client: handshake confirmed. Both: the connection ended (after every
   * stream got stream_close). */
  void (*established)(rpci_qconn *qc, void *user);
  void (*closed)(rpci_qconn *qc, void *user);
  /* Without the lock, on the loop thread, after a batch of packets. */
  void (*after_batch)(rpci_qconn *qc, void *user);
} rpci_qconn_events;

typedef struct rpci_qconn_params {
  uint64_t max_concurrent_streams;
  int64_t idle_timeout_ms;
  int64_t keep_alive_ms; /* 0: off */
  int64_t handshake_timeout_ms;
  /* Connection-level receive window (initial_max_data); 0: 16 MiB. It
   * bounds what a peer can make us buffer across all streams whose
   * connection credit we hold back (rpci_stream_consume_stream). */
  uint64_t conn_window;
} rpci_qconn_params;

typedef enum rpci_qconn_state {
  RPCI_QC_HANDSHAKE,
  RPCI_QC_ESTABLISHED,
  RPCI_QC_CLOSED
} rpci_qconn_state;

/* Client: creates a connection to addr on loop and starts the handshake.
 * server_name is verified (and sent as SNI). Returns NULL with
 * rpci_set_error. The caller holds one reference. */
rpci_qconn *rpci_qconn_connect(rpci_loop *loop, const struct sockaddr *addr, socklen_t addrlen,
                               rpci_tls_ctx *tls, const char *server_name,
                               const rpci_qconn_params *params, const rpci_qconn_events *ev,
                               void *user);

void rpci_qconn_ref(rpci_qconn *qc);
void rpci_qconn_unref(rpci_qconn *qc);

void rpci_qconn_lock(rpci_qconn *qc);
/* Writes whatever became sendable while locked, re-arms the timer, then
 * unlocks. */
void rpci_qconn_unlock(rpci_qconn *qc);

/* Under the lock. */
rpci_qconn_state rpci_qconn_state_get(const rpci_qconn *qc);
/* Why the connection failed or closed ("" when it did not). */
const char *rpci_qconn_error(const rpci_qconn *qc);
/* "ip:port" of the peer, and the peer certificate's subject DN or "". */
const char *rpci_qconn_peer_addr(const rpci_qconn *qc);
const char *rpci_qconn_peer_subject(const rpci_qconn *qc);
void *rpci_qconn_user(const rpci_qconn *qc);

/* Closes the connection with CONNECTION_CLOSE(app_error) and tears it down
 * (streams get stream_close with RPCI_CONN_LOST, then closed). Any thread;
 * the lock must NOT be held. Waits for the teardown on the loop thread. */
void rpci_qconn_close(rpci_qconn *qc, uint64_t app_error, const char *reason);

/* Streams. All under the lock. */
void rpci_stream_init(rpci_stream *s);
/* Client: opens a new bidirectional stream for s (queued when the peer's
 * stream limit is reached; it opens as credit arrives). Returns 0, or -1
 * when the connection is closed. */
int rpci_stream_open(rpci_qconn *qc, rpci_stream *s);
/* Server: binds s to the peer-opened stream_id. */
void rpci_stream_attach(rpci_qconn *qc, rpci_stream *s, int64_t stream_id);
/* Queues a copy of data (and FIN when fin). Returns 0 or -1 (out of memory
 * or the stream's sending side is finished). */
int rpci_stream_write(rpci_stream *s, const void *data, size_t len, int fin);
/* Like rpci_stream_write for several pieces gathered into one chunk. */
int rpci_stream_writev(rpci_stream *s, const struct iovec *iov, int iovcnt, int fin);
/* Bytes queued on s and not yet acknowledged (memory held for it). */
uint64_t rpci_stream_unacked(const rpci_stream *s);
/* Resets both directions with app_error (RESET_STREAM + STOP_SENDING). */
void rpci_stream_reset(rpci_stream *s, uint64_t app_error);
/* Gives back n bytes of receive credit (stream and connection windows). */
void rpci_stream_consume(rpci_stream *s, size_t n);
/* Gives back only the stream's credit; the connection's comes later with
 * rpci_qconn_consume, so bytes buffered for work not yet started count
 * against the connection window. */
void rpci_stream_consume_stream(rpci_stream *s, size_t n);
void rpci_qconn_consume(rpci_qconn *qc, size_t n);
/* Server: resets a stream that has no rpci_stream. */
void rpci_qconn_reset_id(rpci_qconn *qc, int64_t stream_id, uint64_t app_error);

/* For endpoint.c: server connections. */
rpci_qconn *rpci_qconn_accept(rpci_endpoint *ep, rpci_loop *loop, int fd, const ngtcp2_pkt_hd *hd,
                              const struct sockaddr *local, socklen_t local_len,
                              const struct sockaddr *remote, socklen_t remote_len,
                              rpci_tls_ctx *tls, const rpci_qconn_params *params,
                              const rpci_qconn_events *ev, void *user);
/* Feeds one datagram (loop thread; takes the lock; does not flush). */
void rpci_qconn_feed(rpci_qconn *qc, const struct sockaddr *remote, socklen_t remote_len,
                     const uint8_t *pkt, size_t len);
/* Loop thread: run after_batch then write pending packets. */
void rpci_qconn_batch_end(rpci_qconn *qc);
/* Number of source CIDs currently in use, and the CIDs (for the endpoint's
 * table), under the lock. */
size_t rpci_qconn_scids(rpci_qconn *qc, ngtcp2_cid *out, size_t max);

/* Monotonic nanoseconds, the clock ngtcp2 is fed. */
uint64_t rpci_now_ns(void);

#endif
