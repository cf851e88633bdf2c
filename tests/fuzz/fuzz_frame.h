/*
 * Shared body of the frame fuzzers (fuzz_frame_request.c,
 * fuzz_frame_response.c). For one input and two sets of limits (default,
 * and small ones that make limit errors reachable) it checks:
 *  - differential: feeding the input whole, split at pseudo-random points
 *    (seeded from the input) and byte by byte gives the same frames and
 *    the same error;
 *  - round trip: when the stream is valid, re-encoding the frames with the
 *    encoders and decoding again gives the same frames, and re-encoding is
 *    a fixed point.
 * Any difference aborts.
 */
#ifndef RPCNET_FUZZ_FRAME_H
#define RPCNET_FUZZ_FRAME_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"

static int entry_cmp(const void *a, const void *b) {
  return strcmp((*(const rpci_md_entry *const *)a)->key, (*(const rpci_md_entry *const *)b)->key);
}

/* Metadata in key order: the wire order of a non-canonical map may differ
 * from the re-encoding's; keys are unique (duplicates are malformed). */
static void digest_md(rpci_buf *dig, const rpci_md *md) {
  rpci_buf_append(dig, &md->n, sizeof md->n);
  const rpci_md_entry **e = malloc((md->n + 1) * sizeof *e);
  if (!e) abort();
  for (size_t i = 0; i < md->n; i++) e[i] = &md->v[i];
  qsort(e, md->n, sizeof *e, entry_cmp);
  for (size_t i = 0; i < md->n; i++) {
    if (i && strcmp(e[i - 1]->key, e[i]->key) == 0) abort();
    rpci_buf_append(dig, e[i]->key, strlen(e[i]->key) + 1);
    rpci_buf_append(dig, &e[i]->val_len, sizeof e[i]->val_len);
    rpci_buf_append(dig, e[i]->val, e[i]->val_len);
  }
  free(e);
}

/* Serialises one frame into dig. */
static void digest_frame(rpci_buf *dig, const rpci_frame *f) {
  rpci_buf_push(dig, (uint8_t)f->type);
  switch (f->type) {
    case RPCI_FRAME_HEADER:
      if (!f->method || !f->method[0]) abort();
      rpci_buf_append(dig, f->method, strlen(f->method) + 1);
      rpci_buf_append(dig, &f->timeout_ms, sizeof f->timeout_ms);
      digest_md(dig, &f->metadata);
      break;
    case RPCI_FRAME_MESSAGE:
      if (!f->data) abort();
      rpci_buf_append(dig, &f->len, sizeof f->len);
      rpci_buf_append(dig, f->data, f->len);
      break;
    case RPCI_FRAME_STATUS:
      rpci_buf_append(dig, &f->status, sizeof f->status);
      if (f->message) rpci_buf_append(dig, f->message, strlen(f->message) + 1);
      digest_md(dig, &f->trailers);
      break;
    default:
      abort();
  }
}

static int encode_frame(rpci_buf *out, const rpci_frame *f) {
  if (f->type == RPCI_FRAME_HEADER)
    return rpci_frame_encode_header(out, f->method, f->timeout_ms, &f->metadata);
  if (f->type == RPCI_FRAME_STATUS)
    return rpci_frame_encode_status(out, f->status, f->message, &f->trailers);
  uint8_t head[9];
  size_t n = rpci_frame_message_head(head, f->len);
  return rpci_buf_append(out, head, n) || rpci_buf_append(out, f->data, f->len);
}

/* Decodes in[0..len) fed in pieces: step 0 means whole, 1 byte by byte,
 * otherwise pseudo-random piece sizes from the seed. Fills dig (frames +
 * final error); re-encodes valid frames into reenc when non-NULL. */
static int run_reader(rpci_dir dir, const rpci_wire_limits *lim, const uint8_t *in, size_t len,
                      int mode, uint32_t seed, rpci_buf *dig, rpci_buf *reenc) {
  rpci_frame_reader *r = rpci_frame_reader_new(dir, lim);
  if (!r) abort();
  size_t pos = 0;
  int err = 0;
  while (pos < len && !err) {
    size_t piece = len - pos;
    if (mode == 1) {
      piece = 1;
    } else if (mode == 2) {
      seed = seed * 1103515245u + 12345u;
      piece = 1 + (seed >> 16) % 64;
      if (piece > len - pos) piece = len - pos;
    }
    size_t end = pos + piece;
    while (pos < end && !err) {
      rpci_frame f;
      memset(&f, 0, sizeof f);
      size_t used = 0;
      err = rpci_frame_reader_feed(r, in + pos, end - pos, &used, &f);
      if (used > end - pos) abort();
      pos += used;
      if (f.type != RPCI_FRAME_NONE) {
        digest_frame(dig, &f);
        if (reenc && encode_frame(reenc, &f)) abort();
      } else if (!err && used == 0) {
        abort(); /* no progress */
      }
      rpci_frame_clear(&f);
    }
  }
  if (!err) err = rpci_frame_reader_finish(r);
  if (err && !rpci_frame_reader_error(r)[0]) abort();
  rpci_buf_push(dig, 0xee);
  rpci_buf_push(dig, (uint8_t)err);
  rpci_frame_reader_free(r);
  return err;
}

static void same(const rpci_buf *a, const rpci_buf *b) {
  if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len) != 0)) abort();
}

static void fuzz_frames(rpci_dir dir, const uint8_t *data, size_t size) {
  rpci_wire_limits lims[2];
  rpci_wire_limits_default(&lims[0]);
  lims[1].max_message_size = 64;
  lims[1].max_header_size = 96;
  lims[1].max_metadata_entries = 2;
  uint32_t seed = 2166136261u;
  for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 16777619u;
  for (int l = 0; l < 2; l++) {
    rpci_buf whole = RPCI_BUF_INIT, split = RPCI_BUF_INIT, bytes = RPCI_BUF_INIT;
    rpci_buf reenc = RPCI_BUF_INIT;
    int err = run_reader(dir, &lims[l], data, size, 0, 0, &whole, &reenc);
    run_reader(dir, &lims[l], data, size, 2, seed, &split, NULL);
    same(&whole, &split);
    if (size <= 4096) {
      run_reader(dir, &lims[l], data, size, 1, 0, &bytes, NULL);
      same(&whole, &bytes);
    }
    if (err == RPCI_WIRE_OK) {
      /* re-encoded frames decode to the same frames; encoding is a fixed
       * point (the re-encoding is canonical) */
      rpci_buf again = RPCI_BUF_INIT, reenc2 = RPCI_BUF_INIT;
      if (run_reader(dir, &lims[0], reenc.data ? reenc.data : (const uint8_t *)"", reenc.len, 0, 0,
                     &again, &reenc2) != RPCI_WIRE_OK)
        abort();
      same(&whole, &again);
      same(&reenc, &reenc2);
      rpci_buf_free(&again);
      rpci_buf_free(&reenc2);
    }
    rpci_buf_free(&whole);
    rpci_buf_free(&split);
    rpci_buf_free(&bytes);
    rpci_buf_free(&reenc);
  }
}

#endif
