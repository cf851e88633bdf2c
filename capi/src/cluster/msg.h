/*
 * The gossip message codec: CBOR datagrams and push-pull bodies of the SWIM
 * core (docs/cluster.md, section "Messages", is the reference).
 *
 * Design notes
 * - Hand-written over the wire/prim.h heads: the decoder never allocates.
 *   Strings come back as rpci_gstr slices into the caller's buffer (valid as
 *   long as that buffer), checked for length limits and NUL bytes.
 * - A datagram (and a push-pull body) is a definite CBOR array
 *   [proto_version, msg, msg, ...]; a body carries exactly one message. Each
 *   message is a definite array [type, fields...].
 * - Forward compatibility: a message of an unknown type is skipped whole
 *   (any well-formed item); extra trailing fields of a known message are
 *   skipped; a missing field, a wrong major type or a limit exceeded makes
 *   the message malformed. An unknown proto_version drops the datagram.
 * - A message is validated completely when rpci_gdec_next returns it
 *   (lists of sync records and digests included), so the list iterators
 *   below cannot fail on a message that decoded.
 * - Encoding is deterministic: shortest heads, definite lengths, tag maps
 *   with keys in RFC 8949 section 4.2.1 order (bytewise order of the
 *   encoded keys). The decoder accepts long heads everywhere except inside
 *   a tag map, which must be exactly canonical (it is stored and
 *   re-gossiped as received, and compared bytewise).
 * - The type registry is append-only: the numbers are the protocol.
 */
#ifndef RPCI_CLUSTER_MSG_H
#define RPCI_CLUSTER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"
#include "wire/buf.h"

/* Message types (append-only; never reuse a number). */
enum rpci_gtype {
  RPCI_GM_PING = 1,         /* [1, seq, target, sender] */
  RPCI_GM_INDIRECT = 2,     /* [2, seq, target, target_addr, sender, want_nack] */
  RPCI_GM_ACK = 3,          /* [3, seq] */
  RPCI_GM_NACK = 4,         /* [4, seq] */
  RPCI_GM_ALIVE = 5,        /* [5, name, inc, addr, rpc_addr, tags, [pmin, pmax]] */
  RPCI_GM_SUSPECT = 6,      /* [6, name, inc, from] */
  RPCI_GM_DEAD = 7,         /* [7, name, inc, from]; from == name: left */
  RPCI_GM_SYNC_HELLO = 16,  /* [16, hash, count, alive message] */
  RPCI_GM_SYNC_INSYNC = 17, /* [17] */
  RPCI_GM_SYNC_DIGEST = 18, /* [18, [[name, inc, state], ...]] */
  RPCI_GM_SYNC_PUSH = 19,   /* [19, [record, ...], [name, ...]] */
  RPCI_GM_SYNC_RECORDS = 20 /* [20, [record, ...]] */
};
/* record = [name, inc, state, addr, rpc_addr, tags, [pmin, pmax], age_ms] */

/* Bytes of the datagram envelope at most: array head (3 bytes, up to 65535
 * items) + proto_version (1 byte). */
#define RPCI_GM_ENVELOPE 4

/* A slice of a received buffer (not NUL-terminated). */
typedef struct rpci_gstr {
  const uint8_t *p;
  size_t n;
} rpci_gstr;

/* An alive record: the body of an alive message, of a sync hello and of a
 * sync record. tags is the whole canonical CBOR map. */
typedef struct rpci_galive {
  rpci_gstr name, addr, rpc_addr;
  uint64_t inc;
  rpci_gstr tags; /* encoded map, RPCI_GM_ALIVE layout; 0xa0 when empty */
  uint32_t ntags;
  uint8_t pmin, pmax;
} rpci_galive;

/* A sync record: an alive record plus the holder's state and, for dead and
 * left tombstones, how long ago the holder saw the state change. */
typedef struct rpci_grecord {
  rpci_galive a;
  int state; /* rpci_mstate: alive, suspect, dead or left */
  uint64_t age_ms;
} rpci_grecord;

/* A list inside a decoded sync message, iterated with rpci_glist_*. */
typedef struct rpci_glist {
  const uint8_t *p;
  size_t len, off;
  uint64_t left; /* items not yet returned */
} rpci_glist;

/* One decoded message. Which fields are set depends on type. */
typedef struct rpci_gmsg {
  int type;
  uint64_t seq;          /* ping, indirect, ack, nack */
  rpci_gstr target;      /* ping ("" = any node), indirect */
  rpci_gstr target_addr; /* indirect */
  rpci_gstr sender;      /* ping, indirect */
  int want_nack;         /* indirect */
  rpci_galive a;         /* alive, sync hello */
  rpci_gstr name, from;  /* suspect, dead */
  uint64_t inc;          /* suspect, dead */
  uint64_t hash, count;  /* sync hello */
  rpci_glist l1, l2;     /* digest entries / records, want names */
} rpci_gmsg;

/* Decoder over a datagram or a push-pull body. */
typedef struct rpci_gdec {
  const uint8_t *p;
  size_t len, off;
  uint64_t left; /* messages not yet returned */
} rpci_gdec;

enum { RPCI_GDEC_MALFORMED = -1, RPCI_GDEC_VERSION = -2 };

/* Opens buf[0..len): checks the envelope head and the proto version.
 * Returns 0, RPCI_GDEC_MALFORMED or RPCI_GDEC_VERSION (well-formed envelope,
 * unknown version). */
int rpci_gdec_open(rpci_gdec *d, const uint8_t *buf, size_t len);

/* Decodes the next message into *m. Returns 1 (a known message), 2 (an
 * unknown type, skipped; m->type holds it), 0 (no more messages; trailing
 * bytes after the envelope are malformed) or RPCI_GDEC_MALFORMED (the
 * decoder must not be used further). */
int rpci_gdec_next(rpci_gdec *d, rpci_gmsg *m);

/* Iterators over the lists of a decoded message. Each returns 1 with the
 * item, or 0 at the end. */
int rpci_glist_digest(rpci_glist *l, rpci_gstr *name, uint64_t *inc, int *state);
int rpci_glist_record(rpci_glist *l, rpci_grecord *r);
int rpci_glist_name(rpci_glist *l, rpci_gstr *name);

/* Walks a canonical tag map (rpci_galive.tags): *off starts at 0. Returns 1
 * with the next key and value, 0 at the end. The map must have been
 * validated (it came from rpci_gdec_next or rpci_genc_tags). */
int rpci_gtags_next(rpci_gstr tags, size_t *off, rpci_gstr *key, rpci_gstr *value);

/* ---- encoders: each appends one item to b and returns 0 or -1 (out of
 * memory; b may then hold a partial item: discard it). ---------------- */

int rpci_genc_ping(rpci_buf *b, uint64_t seq, rpci_gstr target, rpci_gstr sender);
int rpci_genc_indirect(rpci_buf *b, uint64_t seq, rpci_gstr target, rpci_gstr target_addr,
                       rpci_gstr sender, int want_nack);
int rpci_genc_ack(rpci_buf *b, int type, uint64_t seq); /* RPCI_GM_ACK or RPCI_GM_NACK */
int rpci_genc_alive(rpci_buf *b, const rpci_galive *a);
/* RPCI_GM_SUSPECT or RPCI_GM_DEAD. */
int rpci_genc_accuse(rpci_buf *b, int type, rpci_gstr name, uint64_t inc, rpci_gstr from);
int rpci_genc_hello(rpci_buf *b, uint64_t hash, uint64_t count, const rpci_galive *self);
int rpci_genc_insync(rpci_buf *b);
/* The record and digest encoders append list items; the caller writes the
 * message and list heads (rpci_genc_list_head) with the exact counts. */
int rpci_genc_record(rpci_buf *b, const rpci_grecord *r);
int rpci_genc_digest_entry(rpci_buf *b, rpci_gstr name, uint64_t inc, int state);
int rpci_genc_str(rpci_buf *b, rpci_gstr s);
/* [type, ...: the head of a message array of n items and its type. */
int rpci_genc_msg_head(rpci_buf *b, int type, size_t nitems);
int rpci_genc_list_head(rpci_buf *b, size_t n);

/* Writes the envelope [version, <count messages>] around msgs: appends to
 * out the array head, the version and msgs[0..len). Returns 0 or -1. */
int rpci_genc_envelope(rpci_buf *out, size_t count, const uint8_t *msgs, size_t len);

/* Encodes n tags as a canonical map (keys sorted, no duplicates) into b.
 * Returns 0; -1 when a limit of swim.h is exceeded (count, key or value
 * length, total bytes), a key is empty or repeated, a string holds NUL, or
 * memory runs out. */
int rpci_genc_tags(rpci_buf *b, const rpci_tag *tags, size_t n);

/* C string -> slice. */
rpci_gstr rpci_gstr_c(const char *s);
/* 1 when a slice equals a C string. */
int rpci_gstr_eq(rpci_gstr a, const char *s);

#endif
