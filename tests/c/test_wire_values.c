/*
 * Value codec tests: every vector of conformance/vectors/values.json, plus
 * encoder, diagnostic-notation and allocation-discipline cases.
 *
 * For each vector:
 *  - "error": decoding hex fails with exactly that error (by its stable
 *    name, mapped through rpci_verr_from_name).
 *  - otherwise decoding succeeds, encoding gives "canonical" (or "hex" when
 *    the vector is canonical), decoding that again is a fixed point,
 *    parsing "diag" encodes to the same bytes, and for canonical vectors the
 *    printer reproduces "diag" exactly; every proper prefix of the input
 *    fails with "truncated".
 */
#include <math.h>

#include "testutil.h"
#include "wire/diag.h"
#include "wire/json.h"
#include "wire/value.h"

static rpci_value *g_doc;

static const char *str_field(const rpci_value *v, const char *key) {
  const rpci_value *f = rpci_value_map_get(v, key);
  return f && f->kind == RPCI_V_TEXT ? (const char *)f->u.str.p : NULL;
}

static char *to_hex(const uint8_t *p, size_t n) {
  char *s = malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++) snprintf(s + 2 * i, 3, "%02x", p[i]);
  s[2 * n] = 0;
  return s;
}

static void load(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/conformance/vectors/values.json", RPCNET_SOURCE_DIR);
  size_t len = 0;
  char *text = tu_read_file(path, &len);
  REQUIRE(text != NULL);
  size_t off = 0;
  const char *msg = NULL;
  int e = rpci_json_parse(text, len, &g_doc, &off, &msg);
  if (e) fprintf(stderr, "values.json: %s at %zu: %s\n", rpci_verr_name(e), off, msg);
  free(text);
  REQUIRE(e == 0);
  const rpci_value *depth = rpci_value_map_get(g_doc, "max_depth");
  REQUIRE(depth && depth->kind == RPCI_V_UINT);
  CHECK_EQ_INT(depth->u.uint, RPCI_VALUE_MAX_DEPTH);
}

static int run_vector(const rpci_value *vec) {
  int before = tu_failed_checks;
  const char *name = str_field(vec, "name"), *hex = str_field(vec, "hex");
  const char *diag = str_field(vec, "diag"), *canon = str_field(vec, "canonical");
  const char *err = str_field(vec, "error");
  if (!name || !hex) {
    CHECK(!"vector without name or hex");
    return 0;
  }
  size_t n = 0;
  uint8_t *in = tu_hex_decode(hex, &n);
  CHECK(in != NULL);
  if (!in) return 0;
  rpci_value *v = NULL;
  size_t off = 0;
  int e = rpci_value_decode(in, n, NULL, &v, &off);
  if (err) {
    int want = rpci_verr_from_name(err);
    CHECK(want > 0);
    if (e != want)
      fprintf(stderr, "%s: got %s (offset %zu), want %s\n", name, rpci_verr_name(e), off, err);
    CHECK_EQ_INT(e, want);
    CHECK(v == NULL);
    CHECK(off <= n);
  } else {
    if (e) fprintf(stderr, "%s: unexpected %s at %zu\n", name, rpci_verr_name(e), off);
    CHECK_EQ_INT(e, 0);
    CHECK(diag != NULL);
    if (!e) {
      const char *want = canon ? canon : hex;
      rpci_buf out = RPCI_BUF_INIT;
      CHECK_EQ_INT(rpci_value_encode(v, &out), 0);
      char *got = to_hex(out.data, out.len);
      if (strcmp(got, want)) fprintf(stderr, "%s: encoded %s, want %s\n", name, got, want);
      CHECK(strcmp(got, want) == 0);
      /* fixed point: decode(encode(decode(x))) re-encodes identically */
      rpci_value *v2 = NULL;
      CHECK_EQ_INT(rpci_value_decode(out.data, out.len, NULL, &v2, NULL), 0);
      if (v2) {
        CHECK(rpci_value_equal(v, v2));
        rpci_buf out2 = RPCI_BUF_INIT;
        CHECK_EQ_INT(rpci_value_encode(v2, &out2), 0);
        CHECK(out2.len == out.len && memcmp(out2.data, out.data, out.len) == 0);
        rpci_buf_free(&out2);
        if (!canon) { /* printer reproduces the vector's notation */
          rpci_buf d = RPCI_BUF_INIT;
          CHECK_EQ_INT(rpci_diag_write(v2, &d), 0);
          rpci_buf_push(&d, 0);
          if (diag && strcmp((char *)d.data, diag))
            fprintf(stderr, "%s: diag %s, want %s\n", name, (char *)d.data, diag);
          CHECK(diag && strcmp((char *)d.data, diag) == 0);
          rpci_buf_free(&d);
        }
      }
      rpci_value_free(v2);
      /* the notation parses to the same value */
      if (diag) {
        rpci_value *pv = NULL;
        const char *msg = "";
        int pe = rpci_diag_parse(diag, strlen(diag), &pv, &off, &msg);
        if (pe)
          fprintf(stderr, "%s: diag parse %s at %zu: %s\n", name, rpci_verr_name(pe), off, msg);
        CHECK_EQ_INT(pe, 0);
        if (pv) {
          rpci_buf pb = RPCI_BUF_INIT;
          CHECK_EQ_INT(rpci_value_encode(pv, &pb), 0);
          char *ph = to_hex(pb.data, pb.len);
          if (strcmp(ph, want))
            fprintf(stderr, "%s: diag encodes to %s, want %s\n", name, ph, want);
          CHECK(strcmp(ph, want) == 0);
          free(ph);
          rpci_buf_free(&pb);
        }
        rpci_value_free(pv);
      }
      free(got);
      rpci_buf_free(&out);
      /* every proper prefix is truncated input */
      for (size_t k = 0; k < n; k++) {
        rpci_value *pv = NULL;
        int pe = rpci_value_decode(in, k, NULL, &pv, NULL);
        if (pe != RPCI_VERR_TRUNCATED)
          fprintf(stderr, "%s: prefix %zu gave %s\n", name, k, rpci_verr_name(pe));
        CHECK_EQ_INT(pe, RPCI_VERR_TRUNCATED);
        rpci_value_free(pv);
      }
    }
  }
  rpci_value_free(v);
  free(in);
  if (tu_failed_checks != before) fprintf(stderr, "  in vector %s\n", name);
  return 1;
}

static void test_vectors(void) {
  REQUIRE(g_doc != NULL);
  const rpci_value *vecs = rpci_value_map_get(g_doc, "vectors");
  REQUIRE(vecs && vecs->kind == RPCI_V_ARRAY);
  size_t ran = 0, errors = 0, appendix = 0;
  for (size_t i = 0; i < vecs->u.arr.n; i++) {
    const rpci_value *vec = &vecs->u.arr.items[i];
    ran += (size_t)run_vector(vec);
    if (rpci_value_map_get(vec, "error")) errors++;
    if (rpci_value_map_get(vec, "rfc8949_appendix_a")) appendix++;
  }
  fprintf(stderr, "values.json: %zu vectors (%zu errors, %zu from RFC 8949 Appendix A)\n", ran,
          errors, appendix);
  CHECK_EQ_INT(ran, vecs->u.arr.n);
  CHECK(ran >= 200);
  CHECK(appendix >= 80);
}

/* Every vector error name maps to an enum value and back. */
static void test_error_names(void) {
  const char *names[] = {"malformed",     "truncated",   "trailing",    "depth", "utf8",
                         "duplicate_key", "unsupported", "invalid_tag", "nomem"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int e = rpci_verr_from_name(names[i]);
    CHECK(e > 0);
    CHECK(strcmp(rpci_verr_name(e), names[i]) == 0);
  }
  CHECK_EQ_INT(rpci_verr_from_name("bogus"), -1);
}

static rpci_value *nest(int levels) {
  rpci_value *root = rpci_value_new(), *cur = root;
  for (int i = 0; i < levels; i++) {
    cur->kind = RPCI_V_ARRAY;
    cur = rpci_value_append(cur);
  }
  return root;
}

static void test_encoder_limits(void) {
  rpci_buf b = RPCI_BUF_INIT;
  rpci_value *ok = nest(64), *deep = nest(65);
  CHECK_EQ_INT(rpci_value_encode(ok, &b), 0);
  CHECK_EQ_INT(b.len, 65);
  b.len = 0;
  CHECK_EQ_INT(rpci_value_encode(deep, &b), RPCI_VERR_DEPTH);
  rpci_value_free(ok);
  rpci_value_free(deep);

  /* duplicate keys in a built tree, after canonicalisation (24 twice) */
  rpci_value m = {.kind = RPCI_V_MAP};
  rpci_value_set_int(rpci_value_append(&m), 0, 24);
  rpci_value_set_int(rpci_value_append(&m), 0, 1);
  rpci_value_set_int(rpci_value_append(&m), 0, 24);
  rpci_value_set_int(rpci_value_append(&m), 0, 2);
  b.len = 0;
  CHECK_EQ_INT(rpci_value_encode(&m, &b), RPCI_VERR_DUPLICATE_KEY);
  /* odd item count */
  rpci_value_append(&m);
  b.len = 0;
  CHECK_EQ_INT(rpci_value_encode(&m, &b), RPCI_VERR_MALFORMED);
  rpci_value_clear(&m);

  /* invalid UTF-8 in a built text string */
  rpci_value t = {0};
  CHECK_EQ_INT(rpci_value_set_str(&t, RPCI_V_TEXT, "\xc3", 1), 0);
  b.len = 0;
  CHECK_EQ_INT(rpci_value_encode(&t, &b), RPCI_VERR_UTF8);
  rpci_value_clear(&t);
  rpci_buf_free(&b);
}

/* Float encoding picks the shortest exact width for a sweep of values. */
static void test_float_widths(void) {
  struct {
    double d;
    size_t len;
  } cases[] = {{0.0, 3},     {1.0, 3},        {65504.0, 3},    {65505.0, 5},  {1e-7, 9},
               {0.25, 3},    {16777216.0, 5}, {16777217.0, 9}, {-65504.0, 3}, {1.0 / 3, 9},
               {0x1p-24, 3}, {0x1p-25, 5},    {0x1p-149, 5},   {0x1p-150, 9}, {0x1p127, 5},
               {0x1p128, 9}, {INFINITY, 3},   {-INFINITY, 3},  {NAN, 3}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rpci_value v = {.kind = RPCI_V_FLOAT, .u.f = cases[i].d};
    rpci_buf b = RPCI_BUF_INIT;
    CHECK_EQ_INT(rpci_value_encode(&v, &b), 0);
    if (b.len != cases[i].len) fprintf(stderr, "float %g: %zu bytes\n", cases[i].d, b.len);
    CHECK_EQ_INT(b.len, cases[i].len);
    rpci_value *back = NULL;
    CHECK_EQ_INT(rpci_value_decode(b.data, b.len, NULL, &back, NULL), 0);
    CHECK(back && rpci_value_equal(back, &v));
    rpci_value_free(back);
    rpci_buf_free(&b);
  }
}

/* All 65536 half-precision patterns decode and re-encode to themselves
 * (NaNs to f97e00). */
static void test_all_halves(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    uint8_t in[3] = {0xf9, (uint8_t)(h >> 8), (uint8_t)h};
    rpci_value *v = NULL;
    if (rpci_value_decode(in, 3, NULL, &v, NULL)) {
      bad++;
      continue;
    }
    rpci_buf b = RPCI_BUF_INIT;
    rpci_value_encode(v, &b);
    int nan = ((h >> 10) & 31) == 31 && (h & 0x3ff);
    uint8_t want[3] = {0xf9, nan ? 0x7e : in[1], nan ? 0 : in[2]};
    if (b.len != 3 || memcmp(b.data, want, 3)) bad++;
    rpci_buf_free(&b);
    rpci_value_free(v);
  }
  CHECK_EQ_INT(bad, 0);
}

/* Options: a smaller depth limit, and simple values allowed for tools. */
static void test_options(void) {
  uint8_t three[] = {0x81, 0x81, 0x81, 0x00};
  rpci_vdec_opts o = {.max_depth = 2};
  rpci_value *v = NULL;
  size_t off = 0;
  CHECK_EQ_INT(rpci_value_decode(three, sizeof three, &o, &v, &off), RPCI_VERR_DEPTH);
  CHECK_EQ_INT(off, 2);
  o.max_depth = 3;
  CHECK_EQ_INT(rpci_value_decode(three, sizeof three, &o, &v, NULL), 0);
  rpci_value_free(v);
  uint8_t simple[] = {0x83, 0xf7, 0xf0, 0xf8, 0xff};
  rpci_vdec_opts lax = {.allow_simple = 1};
  CHECK_EQ_INT(rpci_value_decode(simple, sizeof simple, NULL, &v, NULL), RPCI_VERR_UNSUPPORTED);
  CHECK_EQ_INT(rpci_value_decode(simple, sizeof simple, &lax, &v, NULL), 0);
  REQUIRE(v != NULL);
  rpci_buf d = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_diag_write(v, &d), 0);
  rpci_buf_push(&d, 0);
  CHECK(strcmp((char *)d.data, "[undefined, simple(16), simple(255)]") == 0);
  rpci_buf b = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_value_encode(v, &b), 0);
  CHECK(b.len == sizeof simple && memcmp(b.data, simple, b.len) == 0);
  rpci_buf_free(&b);
  rpci_buf_free(&d);
  rpci_value_free(v);
  /* decode_one reads the first item of a sequence */
  uint8_t seq[] = {0x01, 0x82, 0x02, 0x03, 0xf6};
  size_t used = 0;
  CHECK_EQ_INT(rpci_value_decode_one(seq, sizeof seq, NULL, &v, &used), 0);
  CHECK_EQ_INT(used, 1);
  rpci_value_free(v);
  CHECK_EQ_INT(rpci_value_decode_one(seq + 1, sizeof seq - 1, NULL, &v, &used), 0);
  CHECK_EQ_INT(used, 3);
  rpci_value_free(v);
}

/* Diagnostic notation parser: extensions and errors. */
static void test_diag_parser(void) {
  struct {
    const char *in, *hex;
  } ok[] = {{"0x10", "10"},
            {"0b101", "05"},
            {"0o17", "0f"},
            {"b64'AQID'", "43010203"},
            {"b64'_-8'", "42ffef"},
            {"h'01 02\n03'", "43010203"},
            {"/ comment / 1", "01"},
            {"simple(20)", "f4"},
            {"1.5_1", "f93e00"},
            {"-18446744073709551616", "3bffffffffffffffff"},
            {"{_ }", "a0"},
            {"(_ \"a\", \"b\")", "626162"},
            {"\"\\ud83d\\ude00\"", "64f09f9880"},
            {"\"\xc3\xbc\"", "62c3bc"},
            {"+1", "01"},
            {"-0", "00"}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    rpci_value *v = NULL;
    const char *msg = "";
    int e = rpci_diag_parse(ok[i].in, strlen(ok[i].in), &v, NULL, &msg);
    if (e) fprintf(stderr, "diag %s: %s %s\n", ok[i].in, rpci_verr_name(e), msg);
    CHECK_EQ_INT(e, 0);
    if (!v) continue;
    rpci_buf b = RPCI_BUF_INIT;
    rpci_value_encode(v, &b);
    char *h = to_hex(b.data, b.len);
    if (strcmp(h, ok[i].hex)) fprintf(stderr, "diag %s -> %s want %s\n", ok[i].in, h, ok[i].hex);
    CHECK(strcmp(h, ok[i].hex) == 0);
    free(h);
    rpci_buf_free(&b);
    rpci_value_free(v);
  }
  struct {
    const char *in;
    int err;
  } bad[] = {{"[1, 2", RPCI_VERR_MALFORMED},
             {"1 2", RPCI_VERR_TRAILING},
             {"h'0'", RPCI_VERR_MALFORMED},
             {"\"\\ud800\"", RPCI_VERR_UTF8},
             {"\"\xff\"", RPCI_VERR_UTF8},
             {"18446744073709551616", RPCI_VERR_MALFORMED},
             {"-18446744073709551617", RPCI_VERR_MALFORMED},
             {"(_ \"a\", h'00')", RPCI_VERR_MALFORMED},
             {"simple(24)", RPCI_VERR_MALFORMED},
             {"", RPCI_VERR_MALFORMED},
             {"{1}", RPCI_VERR_MALFORMED},
             {"nope", RPCI_VERR_MALFORMED},
             {"\"\\", RPCI_VERR_MALFORMED}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rpci_value *v = NULL;
    int e = rpci_diag_parse(bad[i].in, strlen(bad[i].in), &v, NULL, NULL);
    if (e != bad[i].err) fprintf(stderr, "diag %s: %s\n", bad[i].in, rpci_verr_name(e));
    CHECK_EQ_INT(e, bad[i].err);
    CHECK(v == NULL);
  }
  /* depth limit in the parser */
  char deep[200];
  memset(deep, '[', 65);
  memset(deep + 65, ']', 65);
  rpci_value *v = NULL;
  CHECK_EQ_INT(rpci_diag_parse(deep, 130, &v, NULL, NULL), RPCI_VERR_DEPTH);
  CHECK_EQ_INT(rpci_diag_parse(deep + 1, 128, &v, NULL, NULL), 0);
  rpci_value_free(v);
}

/* The decoder allocates in proportion to bytes present, not to claims: a
 * count of 2^32 with 10 bytes present fails before any element storage is
 * made, and a long array of small items grows storage geometrically. */
static void test_claims(void) {
  uint8_t in[16] = {0x9a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  rpci_value *v = NULL;
  size_t off = 0;
  CHECK_EQ_INT(rpci_value_decode(in, sizeof in, NULL, &v, &off), RPCI_VERR_TRUNCATED);
  CHECK_EQ_INT(off, 5);
  /* nested claims: each array claims as much as remains; must fail fast */
  uint8_t nested[64];
  for (size_t i = 0; i < 64; i++) nested[i] = 0x98, i++, nested[i] = (uint8_t)(64 - i);
  CHECK_EQ_INT(rpci_value_decode(nested, sizeof nested, NULL, &v, NULL), RPCI_VERR_TRUNCATED);
}

int main(void) {
  RUN(load);
  RUN(test_vectors);
  RUN(test_error_names);
  RUN(test_encoder_limits);
  RUN(test_float_widths);
  RUN(test_all_halves);
  RUN(test_options);
  RUN(test_diag_parser);
  RUN(test_claims);
  rpci_value_free(g_doc);
  return TEST_END();
}
