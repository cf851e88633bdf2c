/*
 * rpci_msgq: the messages a call received and its reader has not taken
 * yet, with the flow-control credit it holds back.
 *
 * Design notes: guarded by the call's connection lock. Receive credit is
 * returned to the peer at once while fewer than RPCI_RECV_BUFFER bytes
 * wait here, and held back ("owed") beyond that until the reader catches
 * up: so a reader that stops reading stalls its own stream only, and the
 * memory one call can hold is bounded by that limit plus the QUIC window
 * plus one message in assembly.
 */
#ifndef RPCI_RPC_MSGQ_H
#define RPCI_RPC_MSGQ_H

#include <stddef.h>
#include <stdint.h>

#include "transport/qconn.h"

#define RPCI_RECV_BUFFER (1u << 20)
/* A sender waits while more than this much of its output is unacknowledged. */
#define RPCI_SEND_BUFFER (1u << 20)

typedef struct rpci_msg {
  struct rpci_msg *next;
  uint8_t *data;
  size_t len;
} rpci_msg;

typedef struct rpci_msgq {
  rpci_msg *head, *tail;
  size_t count;
  size_t bytes;
  size_t owed; /* receive credit not yet returned */
} rpci_msgq;

/* Takes ownership of data (malloc'd). Returns 0, or -1 out of memory (data
 * is then freed). */
int rpci_msgq_push(rpci_msgq *q, uint8_t *data, size_t len);
/* The oldest message, or NULL. The caller frees it with free() after taking
 * its data. Returns credit owed to s when the queue drains below the limit. */
rpci_msg *rpci_msgq_pop(rpci_msgq *q, rpci_stream *s);
/* n raw bytes arrived on s: return their credit now or owe it. */
void rpci_msgq_credit(rpci_msgq *q, rpci_stream *s, size_t n);
void rpci_msgq_clear(rpci_msgq *q);

#endif
