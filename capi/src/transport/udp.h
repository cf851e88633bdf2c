/*
 * UDP sockets and addresses: parsing "host:port" / "[v6]:port", binding,
 * batched send (sendmmsg) and receive (recvmmsg).
 *
 * Design notes: stateless helpers; sockets are non-blocking. Sending is
 * safe from any thread; receiving is done by the socket's loop thread.
 */
#ifndef RPCI_TRANSPORT_UDP_H
#define RPCI_TRANSPORT_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Resolves addr into out. Returns 0, or -1 with rpci_set_error. A missing
 * host ("":port or ":7000") means the wildcard when `passive`. host_out
 * (may be NULL) receives the host part without brackets. */
int rpci_parse_addr(const char *addr, int passive, struct sockaddr_storage *out, socklen_t *len,
                    char *host_out, size_t host_len);
/* "ip:port" or "[ip]:port". */
void rpci_addr_str(const struct sockaddr *sa, char *buf, size_t len);
int rpci_addr_port(const struct sockaddr *sa);
/* A non-blocking socket connected to addr; local receives its local address.
 * Returns the fd, or -1 with rpci_set_error. */
int rpci_udp_connect(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *local,
                     socklen_t *local_len);
/* A non-blocking socket bound to addr. Returns fd or -1 with rpci_set_error. */
int rpci_udp_bind(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *bound,
                  socklen_t *bound_len);
/* Sends n datagrams (to `to`, or on a connected socket when to is NULL).
 * Failed sends are dropped (QUIC recovers losses). Returns -1 when a
 * connected socket reports ICMP "port unreachable" (the kernel hands that
 * error to whichever send or receive comes next), else 0. */
int rpci_udp_send_batch(int fd, const struct sockaddr *to, socklen_t tolen, uint8_t (*bufs)[1452],
                        const size_t *lens, size_t n);
typedef void (*rpci_udp_pkt_fn)(void *arg, const struct sockaddr *from, socklen_t fromlen,
                                const uint8_t *data, size_t len);
/* Reads every pending datagram (up to a bound per call, for fairness) and
 * hands each to fn. Returns the number read. On a connected socket, an ICMP
 * "port unreachable" sets *refused (refused may be NULL). */
size_t rpci_udp_recv_each(int fd, rpci_udp_pkt_fn fn, void *arg, int *refused);

#endif
