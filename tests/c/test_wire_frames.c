/*
 * Frame codec tests: every vector of conformance/vectors/frames.json, fed
 * whole, byte by byte and split at every point into two pieces (the results
 * must be identical), and re-encoded with the frame encoders when the
 * vector is canonical; plus the allocation bound, error codes and encoder
 * details.
 */
#include "testutil.h"
#include "wire/frame.h"
#include "wire/json.h"
#include "wire/value.h"

static rpci_value *g_doc;

static const char *str_field(const rpci_value *v, const char *key) {
  const rpci_value *f = rpci_value_map_get(v, key);
  return f && f->kind == RPCI_V_TEXT ? (const char *)f->u.str.p : NULL;
}

static void load(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/conformance/vectors/frames.json", RPCNET_SOURCE_DIR);
  size_t len = 0;
  char *text = tu_read_file(path, &len);
  REQUIRE(text != NULL);
  int e = rpci_json_parse(text, len, &g_doc, NULL, NULL);
  free(text);
  REQUIRE(e == 0);
}

/* Decoded frames in a comparable form. */
typedef struct result {
  rpci_frame frames[16];
  size_t n;
  int err; /* from feed or finish */
} result;

static void result_clear(result *r) {
  for (size_t i = 0; i < r->n; i++) rpci_frame_clear(&r->frames[i]);
  r->n = 0;
}

/* Feeds in[0..len) in pieces cut at cuts[0..ncuts) (ascending), then FIN. */
static void decode(rpci_dir dir, const rpci_wire_limits *lim, const uint8_t *in, size_t len,
                   const size_t *cuts, size_t ncuts, result *out) {
  memset(out, 0, sizeof *out);
  rpci_frame_reader *r = rpci_frame_reader_new(dir, lim);
  size_t start = 0;
  for (size_t c = 0; c <= ncuts && !out->err; c++) {
    size_t end = c < ncuts ? cuts[c] : len;
    while (start < end && !out->err) {
      size_t used = 0;
      rpci_frame f;
      memset(&f, 0, sizeof f);
      int e = rpci_frame_reader_feed(r, in + start, end - start, &used, &f);
      if (used > end - start) {
        CHECK(!"consumed more than given");
        used = end - start;
      }
      start += used;
      if (f.type != RPCI_FRAME_NONE) {
        if (out->n < 16)
          out->frames[out->n++] = f;
        else
          rpci_frame_clear(&f);
      }
      if (e) {
        out->err = e;
        CHECK(rpci_frame_reader_error(r)[0] != 0);
        /* stays failed */
        size_t u2 = 0;
        rpci_frame g;
        memset(&g, 0, sizeof g);
        CHECK_EQ_INT(rpci_frame_reader_feed(r, (const uint8_t *)"\0", 1, &u2, &g), e);
        CHECK_EQ_INT(rpci_frame_reader_finish(r), e);
      } else if (used == 0 && f.type == RPCI_FRAME_NONE) {
        CHECK(!"no progress");
        break;
      }
    }
  }
  if (!out->err) out->err = rpci_frame_reader_finish(r);
  rpci_frame_reader_free(r);
}

static int md_equal(const rpci_md *a, const rpci_md *b) {
  if (a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++) {
    const rpci_md_entry *e = rpci_md_get(b, a->v[i].key);
    if (!e || e->val_len != a->v[i].val_len || memcmp(e->val, a->v[i].val, e->val_len)) return 0;
  }
  return 1;
}

static int frame_equal(const rpci_frame *a, const rpci_frame *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case RPCI_FRAME_HEADER:
      return strcmp(a->method, b->method) == 0 && a->timeout_ms == b->timeout_ms &&
             md_equal(&a->metadata, &b->metadata);
    case RPCI_FRAME_MESSAGE:
      return a->len == b->len && a->data && b->data && memcmp(a->data, b->data, a->len) == 0;
    case RPCI_FRAME_STATUS:
      return a->status == b->status && !a->message == !b->message &&
             (!a->message || strcmp(a->message, b->message) == 0) &&
             md_equal(&a->trailers, &b->trailers);
    default:
      return 0;
  }
}

static int result_equal(const result *a, const result *b) {
  if (a->err != b->err || a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (!frame_equal(&a->frames[i], &b->frames[i])) return 0;
  return 1;
}

static void md_from_json(const rpci_value *list, rpci_md *md) {
  if (!list) return;
  for (size_t i = 0; i < list->u.arr.n; i++) {
    const rpci_value *kv = &list->u.arr.items[i];
    const char *k = (const char *)kv->u.arr.items[0].u.str.p;
    const char *v = (const char *)kv->u.arr.items[1].u.str.p;
    if (rpci_md_key_is_bin(k)) {
      size_t n = 0;
      uint8_t *b = tu_hex_decode(v, &n);
      rpci_md_add(md, k, b, n);
      free(b);
    } else {
      rpci_md_add(md, k, v, strlen(v));
    }
  }
}

static void frame_from_json(const rpci_value *j, rpci_frame *f) {
  memset(f, 0, sizeof *f);
  const char *type = str_field(j, "type");
  if (strcmp(type, "header") == 0) {
    f->type = RPCI_FRAME_HEADER;
    f->method = strdup(str_field(j, "method"));
    const rpci_value *t = rpci_value_map_get(j, "timeout_ms");
    f->timeout_ms = t ? (int64_t)t->u.uint : -1;
    md_from_json(rpci_value_map_get(j, "metadata"), &f->metadata);
  } else if (strcmp(type, "message") == 0) {
    f->type = RPCI_FRAME_MESSAGE;
    f->data = tu_hex_decode(str_field(j, "data"), &f->len);
  } else {
    f->type = RPCI_FRAME_STATUS;
    f->status = (int)rpci_value_map_get(j, "code")->u.uint;
    const char *m = str_field(j, "message");
    f->message = m ? strdup(m) : NULL;
    md_from_json(rpci_value_map_get(j, "trailers"), &f->trailers);
  }
}

static int encode_frame(rpci_buf *out, const rpci_frame *f) {
  switch (f->type) {
    case RPCI_FRAME_HEADER:
      return rpci_frame_encode_header(out, f->method, f->timeout_ms, &f->metadata);
    case RPCI_FRAME_MESSAGE: {
      uint8_t head[9];
      size_t n = rpci_frame_message_head(head, f->len);
      return rpci_buf_append(out, head, n) || rpci_buf_append(out, f->data, f->len);
    }
    default:
      return rpci_frame_encode_status(out, f->status, f->message, &f->trailers);
  }
}

static int run_vector(const rpci_value *vec) {
  int before = tu_failed_checks;
  const char *name = str_field(vec, "name"), *hex = str_field(vec, "hex");
  const char *dirs = str_field(vec, "direction"), *err = str_field(vec, "error");
  if (!name || !hex || !dirs) {
    CHECK(!"vector without name, hex or direction");
    return 0;
  }
  rpci_dir dir = strcmp(dirs, "request") == 0 ? RPCI_DIR_REQUEST : RPCI_DIR_RESPONSE;
  rpci_wire_limits lim;
  rpci_wire_limits_default(&lim);
  const rpci_value *lj = rpci_value_map_get(vec, "limits"), *x;
  if ((x = rpci_value_map_get(lj, "max_message_size"))) lim.max_message_size = x->u.uint;
  if ((x = rpci_value_map_get(lj, "max_header_size"))) lim.max_header_size = x->u.uint;
  if ((x = rpci_value_map_get(lj, "max_metadata_entries"))) lim.max_metadata_entries = x->u.uint;

  size_t n = 0;
  uint8_t *in = tu_hex_decode(hex, &n);
  CHECK(in != NULL);
  if (!in) return 0;

  /* expected */
  result want;
  memset(&want, 0, sizeof want);
  const rpci_value *fj = rpci_value_map_get(vec, "frames");
  for (size_t i = 0; fj && i < fj->u.arr.n && i < 16; i++)
    frame_from_json(&fj->u.arr.items[i], &want.frames[want.n++]);
  want.err = RPCI_WIRE_OK;
  if (err) {
    const char *names[] = {"ok", "malformed", "too_large", "unexpected", "truncated"};
    want.err = -1;
    for (int i = 0; i < 5; i++)
      if (strcmp(err, names[i]) == 0) want.err = i;
    CHECK(want.err > 0);
    CHECK(strcmp(rpci_wire_err_name(want.err), err) == 0);
  }

  result whole;
  decode(dir, &lim, in, n, NULL, 0, &whole);
  if (!result_equal(&whole, &want))
    fprintf(stderr, "%s: got %zu frames, %s; want %zu frames, %s\n", name, whole.n,
            rpci_wire_err_name(whole.err), want.n, rpci_wire_err_name(want.err));
  CHECK(result_equal(&whole, &want));

  /* byte by byte */
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
  result split;
  decode(dir, &lim, in, n, cuts, n ? n - 1 : 0, &split);
  CHECK(result_equal(&split, &whole));
  result_clear(&split);
  /* every two-piece split */
  for (size_t c = 1; c < n && n <= 2048; c++) {
    decode(dir, &lim, in, n, &c, 1, &split);
    if (!result_equal(&split, &whole)) fprintf(stderr, "%s: split at %zu differs\n", name, c);
    CHECK(result_equal(&split, &whole));
    result_clear(&split);
  }
  free(cuts);

  /* re-encoding */
  const rpci_value *canon = rpci_value_map_get(vec, "canonical");
  int is_canon = !(canon && canon->kind == RPCI_V_BOOL && !canon->u.boolean);
  if (!err) {
    rpci_buf out = RPCI_BUF_INIT;
    for (size_t i = 0; i < want.n; i++) CHECK_EQ_INT(encode_frame(&out, &want.frames[i]), 0);
    if (is_canon) {
      CHECK(out.len == n && (n == 0 || memcmp(out.data, in, n) == 0));
    } else {
      /* the re-encoding decodes to the same frames */
      result again;
      decode(dir, &lim, out.data ? out.data : (const uint8_t *)"", out.len, NULL, 0, &again);
      CHECK(result_equal(&again, &want));
      result_clear(&again);
    }
    rpci_buf_free(&out);
  }
  result_clear(&whole);
  result_clear(&want);
  free(in);
  if (tu_failed_checks != before) fprintf(stderr, "  in vector %s\n", name);
  return 1;
}

static void test_vectors(void) {
  REQUIRE(g_doc != NULL);
  const rpci_value *vecs = rpci_value_map_get(g_doc, "vectors");
  REQUIRE(vecs && vecs->kind == RPCI_V_ARRAY);
  size_t ran = 0, errors = 0;
  for (size_t i = 0; i < vecs->u.arr.n; i++) {
    ran += (size_t)run_vector(&vecs->u.arr.items[i]);
    if (rpci_value_map_get(&vecs->u.arr.items[i], "error")) errors++;
  }
  fprintf(stderr, "frames.json: %zu vectors (%zu errors)\n", ran, errors);
  CHECK_EQ_INT(ran, vecs->u.arr.n);
  CHECK(ran >= 60);
}

static void test_app_codes(void) {
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_OK), RPCI_H_NO_ERROR);
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_MALFORMED), RPCI_H_PROTOCOL_ERROR);
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_UNEXPECTED), RPCI_H_PROTOCOL_ERROR);
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_TRUNCATED), RPCI_H_PROTOCOL_ERROR);
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_TOO_LARGE), RPCI_H_LIMIT_EXCEEDED);
  CHECK_EQ_INT(rpci_wire_err_app_code(RPCI_WIRE_NOMEM), RPCI_H_INTERNAL_ERROR);
  rpci_wire_limits l;
  rpci_wire_limits_default(&l);
  CHECK_EQ_INT(l.max_message_size, 16 << 20);
  CHECK_EQ_INT(l.max_header_size, 16 << 10);
  CHECK_EQ_INT(l.max_metadata_entries, 64);
}

/* Storage grows with the bytes received, never with the claimed length. */
static void test_allocation_bound(void) {
  rpci_wire_limits lim;
  rpci_wire_limits_default(&lim);
  uint8_t head[] = {0xa1, 0x01, 0x61, 'm', 0x5b, 0, 0, 0, 2, 0, 0, 0, 0}; /* 8 GiB claim */
  rpci_frame f;
  memset(&f, 0, sizeof f);
  size_t used = 0;
  /* default limit: fails at the head without buffering */
  rpci_frame_reader *r = rpci_frame_reader_new(RPCI_DIR_REQUEST, &lim);
  CHECK_EQ_INT(rpci_frame_reader_feed(r, head, sizeof head, &used, &f), 0);
  CHECK_EQ_INT(used, 4);
  rpci_frame_clear(&f);
  CHECK_EQ_INT(rpci_frame_reader_feed(r, head + 4, 9, &used, &f), RPCI_WIRE_TOO_LARGE);
  CHECK_EQ_INT(rpci_frame_reader_buffered(r), 0);
  CHECK(strstr(rpci_frame_reader_error(r), "8589934592") != NULL);
  rpci_frame_reader_free(r);
  /* no limit: buffer stays within 2x of what arrived */
  lim.max_message_size = SIZE_MAX;
  r = rpci_frame_reader_new(RPCI_DIR_REQUEST, &lim);
  CHECK_EQ_INT(rpci_frame_reader_feed(r, head, sizeof head, &used, &f), 0);
  rpci_frame_clear(&f);
  CHECK_EQ_INT(rpci_frame_reader_feed(r, head + 4, 9, &used, &f), 0);
  CHECK_EQ_INT(rpci_frame_reader_buffered(r), 0);
  static uint8_t chunk[4096];
  size_t got = 0;
  for (int i = 0; i < 256; i++) {
    CHECK_EQ_INT(rpci_frame_reader_feed(r, chunk, sizeof chunk, &used, &f), 0);
    got += used;
    CHECK(rpci_frame_reader_buffered(r) <= 2 * got + 64);
  }
  CHECK_EQ_INT(got, 256 * sizeof chunk);
  CHECK(f.type == RPCI_FRAME_NONE);
  CHECK_EQ_INT(rpci_frame_reader_finish(r), RPCI_WIRE_TRUNCATED);
  rpci_frame_reader_free(r);
}

/* A message of exactly max_message_size passes; one byte more fails. */
static void test_message_limit_exact(void) {
  rpci_wire_limits lim;
  rpci_wire_limits_default(&lim);
  size_t n = lim.max_message_size;
  uint8_t *buf = calloc(1, n + 32);
  size_t off = 0;
  rpci_buf hdr = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_frame_encode_header(&hdr, "m", -1, NULL), 0);
  memcpy(buf, hdr.data, hdr.len);
  off = hdr.len;
  off += rpci_frame_message_head(buf + off, n);
  rpci_frame_reader *r = rpci_frame_reader_new(RPCI_DIR_REQUEST, &lim);
  size_t pos = 0, frames = 0, used;
  rpci_frame f;
  while (pos < off + n) {
    memset(&f, 0, sizeof f);
    size_t step = off + n - pos < 65536 ? off + n - pos : 65536;
    CHECK_EQ_INT(rpci_frame_reader_feed(r, buf + pos, step, &used, &f), 0);
    pos += used;
    if (f.type == RPCI_FRAME_MESSAGE) CHECK_EQ_INT(f.len, n);
    if (f.type != RPCI_FRAME_NONE) frames++;
    rpci_frame_clear(&f);
  }
  CHECK_EQ_INT(frames, 2);
  CHECK_EQ_INT(rpci_frame_reader_finish(r), 0);
  rpci_frame_reader_free(r);
  uint8_t over[9];
  size_t hn = rpci_frame_message_head(over, n + 1);
  r = rpci_frame_reader_new(RPCI_DIR_RESPONSE, &lim);
  memset(&f, 0, sizeof f);
  CHECK_EQ_INT(rpci_frame_reader_feed(r, over, hn, &used, &f), RPCI_WIRE_TOO_LARGE);
  rpci_frame_reader_free(r);
  rpci_buf_free(&hdr);
  free(buf);
}

static void test_encoders(void) {
  uint8_t head[9];
  CHECK_EQ_INT(rpci_frame_message_head(head, 0), 1);
  CHECK_EQ_INT(head[0], 0x40);
  CHECK_EQ_INT(rpci_frame_message_head(head, 23), 1);
  CHECK_EQ_INT(rpci_frame_message_head(head, 24), 2);
  CHECK_EQ_INT(rpci_frame_message_head(head, 65536), 5);
  CHECK_EQ_INT(rpci_frame_message_head(head, 1ull << 32), 9);
  /* duplicate metadata keys: the first wins */
  rpci_md md = {0};
  rpci_md_add(&md, "k", "1", 1);
  rpci_md_add(&md, "k", "2", 1);
  rpci_buf b = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_frame_encode_header(&b, "m", -1, &md), 0);
  const uint8_t want[] = {0xa2, 0x01, 0x61, 'm', 0x03, 0xa1, 0x61, 'k', 0x61, '1'};
  CHECK(b.len == sizeof want && memcmp(b.data, want, b.len) == 0);
  rpci_md_free(&md);
  /* a negative status is sent as UNKNOWN (2) */
  b.len = 0;
  CHECK_EQ_INT(rpci_frame_encode_status(&b, -5, NULL, NULL), 0);
  CHECK(b.len == 3 && b.data[0] == 0xa1 && b.data[1] == 0x01 && b.data[2] == 0x02);
  /* encoders append */
  CHECK_EQ_INT(rpci_frame_encode_status(&b, 0, "", NULL), 0);
  CHECK_EQ_INT(b.len, 3 + 5);
  rpci_buf_free(&b);
  /* md helpers */
  CHECK(rpci_md_key_is_bin("a-bin"));
  CHECK(!rpci_md_key_is_bin("bin"));
  CHECK(!rpci_md_key_is_bin("a-bin-x"));
  CHECK(rpci_md_get(NULL, "x") == NULL);
}

int main(void) {
  RUN(load);
  RUN(test_vectors);
  RUN(test_app_codes);
  RUN(test_allocation_bound);
  RUN(test_message_limit_exact);
  RUN(test_encoders);
  rpci_value_free(g_doc);
  return TEST_END();
}
