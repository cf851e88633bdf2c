/*
 * Frame codec: the CBOR frames carried on one call's QUIC stream
 * (docs/wire-format.md, section "Frames"). Sans-I/O: bytes in, frames out,
 * frames in, bytes out. No clock, no sockets, no threads.
 *
 * Design notes
 * - A reader belongs to one direction of one stream and is used by one
 *   thread at a time (the stream's owner); it holds no locks.
 * - The reader is incremental: bytes may arrive split anywhere, even inside
 *   a CBOR head. It never reads past the bytes it is given, never allocates
 *   more than about twice the bytes it has actually received (a 9-byte head
 *   claiming an 8 GiB byte string fails at once when over the limit and
 *   otherwise grows its buffer only as data arrives), and never recurses.
 * - Frame order is enforced here: requests are header, message*; responses
 *   are message*, status, nothing after.
 * - Everything emitted uses RFC 8949 core deterministic encoding.
 */
#ifndef RPCI_WIRE_FRAME_H
#define RPCI_WIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wire/buf.h"

/* QUIC application error codes (RESET_STREAM, STOP_SENDING,
 * CONNECTION_CLOSE). Part of the protocol: append only. */
enum rpci_app_error {
  RPCI_H_NO_ERROR = 0x0,       /* orderly close / stop reading early */
  RPCI_H_PROTOCOL_ERROR = 0x1, /* malformed CBOR or frames out of order */
  RPCI_H_LIMIT_EXCEEDED = 0x2, /* a message, header or metadata limit */
  RPCI_H_CANCELLED = 0x3,      /* call cancelled, or its deadline passed */
  RPCI_H_REFUSED = 0x4,        /* server shutting down: never processed */
  RPCI_H_INTERNAL_ERROR = 0x5  /* the peer failed for its own reasons */
};

/* Results of the reader. */
enum rpci_wire_err {
  RPCI_WIRE_OK = 0,
  RPCI_WIRE_MALFORMED = 1,  /* not well-formed CBOR, wrong type, bad UTF-8,
                               duplicate key, missing required key */
  RPCI_WIRE_TOO_LARGE = 2,  /* over a limit of rpci_wire_limits */
  RPCI_WIRE_UNEXPECTED = 3, /* well-formed frame in the wrong place */
  RPCI_WIRE_TRUNCATED = 4,  /* stream ended mid-frame or without status */
  RPCI_WIRE_NOMEM = 5
};

/* The QUIC application error code that answers a reader error. */
uint64_t rpci_wire_err_app_code(int wire_err);

typedef struct rpci_wire_limits {
  size_t max_message_size;     /* default 16 MiB */
  size_t max_header_size;      /* request header / status map, 16 KiB */
  size_t max_metadata_entries; /* default 64 */
} rpci_wire_limits;

void rpci_wire_limits_default(rpci_wire_limits *l);

/* Metadata: text keys; values are bytes. A key ending in "-bin" carries a
 * CBOR byte string, any other key a text string (valid UTF-8). */
typedef struct rpci_md_entry {
  char *key;    /* NUL-terminated, malloc'd */
  uint8_t *val; /* malloc'd, NUL-terminated for convenience, may hold NULs */
  size_t val_len;
} rpci_md_entry;

typedef struct rpci_md {
  rpci_md_entry *v;
  size_t n;
} rpci_md;

/* Appends a copy of (key, val). Returns 0, or -1 when out of memory. */
int rpci_md_add(rpci_md *md, const char *key, const void *val, size_t len);
/* First value for key, or NULL; *len receives its length. */
const rpci_md_entry *rpci_md_get(const rpci_md *md, const char *key);
void rpci_md_free(rpci_md *md);

typedef enum rpci_frame_type {
  RPCI_FRAME_NONE = 0,
  RPCI_FRAME_HEADER = 1,  /* request header (client to server, first) */
  RPCI_FRAME_MESSAGE = 2, /* one message (either direction) */
  RPCI_FRAME_STATUS = 3   /* status (server to client, last) */
} rpci_frame_type;

/* One decoded frame. The reader fills it; the caller owns every pointer in
 * it afterwards and releases them with rpci_frame_clear (or steals them,
 * setting the field to NULL). */
typedef struct rpci_frame {
  rpci_frame_type type;
  /* RPCI_FRAME_HEADER */
  char *method;       /* NUL-terminated, valid UTF-8, non-empty */
  int64_t timeout_ms; /* -1 when absent */
  rpci_md metadata;
  /* RPCI_FRAME_MESSAGE */
  uint8_t *data; /* malloc'd (non-NULL even when len == 0) */
  size_t len;
  /* RPCI_FRAME_STATUS */
  int status;    /* 0..16 as sent; a larger number is reported as given */
  char *message; /* NULL when absent */
  rpci_md trailers;
} rpci_frame;

void rpci_frame_clear(rpci_frame *f);

typedef enum rpci_dir {
  RPCI_DIR_REQUEST = 0, /* client to server: header, message* */
  RPCI_DIR_RESPONSE = 1 /* server to client: message*, status */
} rpci_dir;

typedef struct rpci_frame_reader rpci_frame_reader;

/* A new reader for one direction. Returns NULL when out of memory. */
rpci_frame_reader *rpci_frame_reader_new(rpci_dir dir, const rpci_wire_limits *limits);
void rpci_frame_reader_free(rpci_frame_reader *r);

/* Feeds bytes. Consumes input until one frame completes or the input is used
 * up: *consumed receives the bytes taken. When a frame completes, out is
 * filled (out->type != RPCI_FRAME_NONE) and the caller should call again
 * with the rest of the input. Returns RPCI_WIRE_OK or an error; after an
 * error the reader stays failed and returns the same error.
 * Precondition: out was cleared (zeroed or rpci_frame_clear'ed). */
int rpci_frame_reader_feed(rpci_frame_reader *r, const uint8_t *in, size_t len, size_t *consumed,
                           rpci_frame *out);

/* The stream ended (FIN). Returns RPCI_WIRE_OK when the stream ended on a
 * frame boundary in a valid place (a request after its header or any
 * message; a response right after its status), RPCI_WIRE_TRUNCATED
 * otherwise. */
int rpci_frame_reader_finish(rpci_frame_reader *r);

/* A static human-readable description of the reader's error, e.g.
 * "message of 20000000 bytes exceeds max_message_size 16777216". Valid until
 * the reader is freed. "" when no error. */
const char *rpci_frame_reader_error(const rpci_frame_reader *r);

/* Encoders: append one frame to out in deterministic encoding. They return 0
 * or -1 when out of memory; method, message and metadata keys must be valid
 * UTF-8 (the rpc layer checks user input before calling). */
int rpci_frame_encode_header(rpci_buf *out, const char *method, int64_t timeout_ms /* < 0: omit */,
                             const rpci_md *metadata /* may be NULL */);
/* Writes the CBOR head of a byte string of len bytes into head[] and returns
 * its length (1..9); the message bytes follow it on the wire unchanged, so a
 * sender need not copy a large payload. */
size_t rpci_frame_message_head(uint8_t head[9], uint64_t len);
int rpci_frame_encode_status(rpci_buf *out, int status, const char *message /* may be NULL */,
                             const rpci_md *trailers /* may be NULL */);

/* ---- additions (wire format v1 implementation) ------------------------- */

/* The stable name of a reader error, as used in conformance/vectors:
 * "ok", "malformed", "too_large", "unexpected", "truncated", "nomem". */
const char *rpci_wire_err_name(int wire_err);

/* Bytes of buffer storage the reader holds right now (message or map
 * buffer capacity). For tests of the allocation bound. */
size_t rpci_frame_reader_buffered(const rpci_frame_reader *r);

/* 1 when metadata key k (NUL-terminated) names a binary entry ("-bin"
 * suffix), else 0. */
int rpci_md_key_is_bin(const char *k);

#endif
