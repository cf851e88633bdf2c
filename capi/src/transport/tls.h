/*
 * TLS 1.3 for QUIC through GnuTLS: credentials, per-connection sessions,
 * peer verification, the SSLKEYLOGFILE key log and peer identity.
 *
 * Design notes
 * - An rpci_tls_ctx holds credentials loaded once (files or PEM in memory)
 *   and is shared read-only by every connection of a client or server; it
 *   is freed after the last connection that uses it (refcounted).
 * - A session belongs to one connection and is only touched under that
 *   connection's lock.
 * - Verification is always explicit: clients verify the server's chain and
 *   name unless verify_peer is false; servers with require_client_cert
 *   demand and verify a client chain. GnuTLS verifies nothing by default.
 */
#ifndef RPCI_TRANSPORT_TLS_H
#define RPCI_TRANSPORT_TLS_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stddef.h>

#include "rpc/options.h"

#define RPCI_ALPN "rpcnet/1"

typedef struct rpci_tls_ctx rpci_tls_ctx;

/* Loads credentials. On failure returns NULL with rpci_set_error saying
 * what could not be loaded. */
rpci_tls_ctx *rpci_tls_ctx_new(int is_server, const rpci_options *o);
void rpci_tls_ctx_ref(rpci_tls_ctx *t);
void rpci_tls_ctx_unref(rpci_tls_ctx *t);

/* A new session wired to ngtcp2 through ref. server_name (clients) is the
 * name to verify and, unless an IP literal, to send as SNI. Returns 0, or -1
 * with rpci_set_error. */
int rpci_tls_session_new(rpci_tls_ctx *t, gnutls_session_t *out, const char *server_name,
                         ngtcp2_crypto_conn_ref *ref);

/* Why a handshake failed, from the session's verification status and the
 * TLS alert: writes a readable sentence into buf. */
void rpci_tls_describe_failure(gnutls_session_t s, int tls_alert, char *buf, size_t len);

/* The peer certificate's subject DN into buf ("" when the peer sent none). */
void rpci_tls_peer_subject(gnutls_session_t s, char *buf, size_t len);

#endif
