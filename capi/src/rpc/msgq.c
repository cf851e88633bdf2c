/* Received-message queues: see msgq.h. */
#include "rpc/msgq.h"

#include <stdlib.h>

int rpci_msgq_push(rpci_msgq *q, uint8_t *data, size_t len) {
  rpci_msg *m = malloc(sizeof *m);
  if (!m) {
    free(data);
    return -1;
  }
  m->next = NULL;
  m->data = data;
  m->len = len;
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->count++;
  q->bytes += len;
  return 0;
}

rpci_msg *rpci_msgq_pop(rpci_msgq *q, rpci_stream *s) {
  rpci_msg *m = q->head;
  if (!m) return NULL;
  q->head = m->next;
  if (!q->head) q->tail = NULL;
  q->count--;
  q->bytes -= m->len;
  if (q->owed && q->bytes < RPCI_RECV_BUFFER) {
    rpci_stream_consume(s, q->owed);
    q->owed = 0;
  }
  return m;
}

void rpci_msgq_credit(rpci_msgq *q, rpci_stream *s, size_t n) {
  if (q->bytes < RPCI_RECV_BUFFER && !q->owed)
    rpci_stream_consume(s, n);
  else
    q->owed += n;
}

void rpci_msgq_clear(rpci_msgq *q) {
  while (q->head) {
    rpci_msg *m = q->head;
    q->head = m->next;
    free(m->data);
    free(m);
  }
  q->tail = NULL;
  q->count = q->bytes = q->owed = 0;
}
