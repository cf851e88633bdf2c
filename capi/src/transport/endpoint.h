/*
 * A listening UDP endpoint: one socket, the table from connection IDs to
 * server connections, accepting new connections, stateless resets.
 *
 * Design notes
 * - The socket and its poll handle belong to the endpoint's loop thread,
 *   which alone reads the socket. Any thread may send on it (sendmsg on a
 *   UDP socket is thread-safe), so replies leave from whoever writes them.
 * - The CID table has its own mutex, taken after a connection's lock when
 *   ngtcp2 issues or retires a CID (lock order: connection, then table).
 * - Stateless-reset tokens derive from a per-process secret, so a server
 *   restarted inside the same process resets its old peers' connections
 *   at once instead of leaving them to time out.
 */
#ifndef RPCI_TRANSPORT_ENDPOINT_H
#define RPCI_TRANSPORT_ENDPOINT_H

#include "transport/qconn.h"

/* Binds addr and starts accepting on loop. Returns NULL with
 * rpci_set_error (bind failure etc.). */
rpci_endpoint *rpci_endpoint_new(rpci_loop *loop, const struct sockaddr *addr, socklen_t len,
                                 rpci_tls_ctx *tls, const rpci_qconn_params *params,
                                 const rpci_qconn_events *ev, void *user);
int rpci_endpoint_port(const rpci_endpoint *ep);
/* Stops (0) or resumes (1) accepting new connections; new ones are then
 * refused with CONNECTION_CLOSE. Any thread. */
void rpci_endpoint_set_accepting(rpci_endpoint *ep, int on);
/* Closes every connection with CONNECTION_CLOSE(app_error), then the
 * socket. Blocks until done. Any thread except the loop's. */
void rpci_endpoint_close(rpci_endpoint *ep, uint64_t app_error);
/* Frees a closed endpoint. */
void rpci_endpoint_free(rpci_endpoint *ep);

/* For qconn.c (the connection's lock held). */
void rpci_endpoint_add_cid(rpci_endpoint *ep, const ngtcp2_cid *cid, rpci_qconn *qc);
void rpci_endpoint_remove_cid(rpci_endpoint *ep, const ngtcp2_cid *cid);
/* Loop thread: forget qc (all its CIDs) and drop the table's reference. */
void rpci_endpoint_forget(rpci_endpoint *ep, rpci_qconn *qc);
/* The stateless-reset token for cid. Returns 0 or -1. */
int rpci_reset_token(uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], const ngtcp2_cid *cid);

#endif
