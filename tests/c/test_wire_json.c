/*
 * JSON reader/writer tests (wire/json.h): the parser the tests and the CLI
 * share must be strict, and the writer deterministic.
 */
#include "testutil.h"
#include "wire/json.h"
#include "wire/value.h"

static char *hex_of(const rpci_value *v) {
  rpci_buf b = RPCI_BUF_INIT;
  if (rpci_value_encode(v, &b)) return NULL;
  char *s = malloc(2 * b.len + 1);
  for (size_t i = 0; i < b.len; i++) snprintf(s + 2 * i, 3, "%02x", b.data[i]);
  s[2 * b.len] = 0;
  rpci_buf_free(&b);
  return s;
}

static void test_parse_ok(void) {
  struct {
    const char *in, *hex;
  } c[] = {{"0", "00"},
           {"-0", "00"},
           {"-0.0", "f98000"},
           {"1.0", "f93c00"},
           {"1e2", "f95640"},
           {"18446744073709551615", "1bffffffffffffffff"},
           {"18446744073709551616", "fa5f800000"},
           {"-18446744073709551616", "3bffffffffffffffff"},
           {"-18446744073709551617", "fadf800000"},
           {" [ true , false , null ] ", "83f5f4f6"},
           {"{\"b\": 1, \"a\": {}}", "a26161a0616201"},
           {"\"\\u00fc\\ud83d\\ude00\\n\\/\"", "68c3bcf09f98800a2f"},
           {"\"\xe6\xb0\xb4\"", "63e6b0b4"},
           {"[]", "80"}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    rpci_value *v = NULL;
    const char *msg = "";
    int e = rpci_json_parse(c[i].in, strlen(c[i].in), &v, NULL, &msg);
    if (e) fprintf(stderr, "json %s: %s %s\n", c[i].in, rpci_verr_name(e), msg);
    CHECK_EQ_INT(e, 0);
    if (!v) continue;
    char *h = hex_of(v);
    if (!h || strcmp(h, c[i].hex))
      fprintf(stderr, "json %s -> %s want %s\n", c[i].in, h ? h : "(null)", c[i].hex);
    CHECK(h && strcmp(h, c[i].hex) == 0);
    free(h);
    rpci_value_free(v);
  }
}

static void test_parse_errors(void) {
  struct {
    const char *in;
    int err;
  } c[] = {{"", RPCI_VERR_MALFORMED},          {"[1,]", RPCI_VERR_MALFORMED},
           {"{\"a\" 1}", RPCI_VERR_MALFORMED}, {"01", RPCI_VERR_TRAILING},
           {"1.", RPCI_VERR_MALFORMED},        {".5", RPCI_VERR_MALFORMED},
           {"+1", RPCI_VERR_MALFORMED},        {"[1] x", RPCI_VERR_TRAILING},
           {"\"a", RPCI_VERR_MALFORMED},       {"\"\x01\"", RPCI_VERR_MALFORMED},
           {"\"\\x\"", RPCI_VERR_MALFORMED},   {"\"\\ud800\"", RPCI_VERR_UTF8},
           {"\"\\udc00\"", RPCI_VERR_UTF8},    {"\"\xc0\xaf\"", RPCI_VERR_UTF8},
           {"{1: 2}", RPCI_VERR_MALFORMED},    {"{\"a\":1,\"a\":2}", RPCI_VERR_DUPLICATE_KEY},
           {"NaN", RPCI_VERR_MALFORMED},       {"tru", RPCI_VERR_MALFORMED},
           {"\"\\", RPCI_VERR_MALFORMED},      {"1e999", RPCI_VERR_MALFORMED}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    rpci_value *v = NULL;
    size_t off = 99;
    int e = rpci_json_parse(c[i].in, strlen(c[i].in), &v, &off, NULL);
    if (e != c[i].err) fprintf(stderr, "json [%s]: %s\n", c[i].in, rpci_verr_name(e));
    CHECK_EQ_INT(e, c[i].err);
    CHECK(v == NULL);
    CHECK(off <= strlen(c[i].in));
  }
  char deep[140];
  memset(deep, '[', 65);
  memset(deep + 65, ']', 65);
  rpci_value *v = NULL;
  CHECK_EQ_INT(rpci_json_parse(deep, 130, &v, NULL, NULL), RPCI_VERR_DEPTH);
  CHECK_EQ_INT(rpci_json_parse(deep + 1, 128, &v, NULL, NULL), 0);
  rpci_value_free(v);
}

static void test_write(void) {
  const char *in = "{\"t\": \"a\\\"\\\\\\n\\u0001\", \"b\": [1.5, -2, 1e300, true, null]}";
  rpci_value *v = NULL;
  REQUIRE(rpci_json_parse(in, strlen(in), &v, NULL, NULL) == 0);
  rpci_buf b = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_json_write(v, &b, 0), 0);
  rpci_buf_push(&b, 0);
  const char *want = "{\"t\":\"a\\\"\\\\\\n\\u0001\",\"b\":[1.5,-2,1.0e+300,true,null]}";
  if (strcmp((char *)b.data, want)) fprintf(stderr, "%s\n", (char *)b.data);
  CHECK(strcmp((char *)b.data, want) == 0);
  /* the output parses back to the same value */
  rpci_value *back = NULL;
  CHECK_EQ_INT(rpci_json_parse((char *)b.data, b.len - 1, &back, NULL, NULL), 0);
  CHECK(back && rpci_value_equal(v, back));
  rpci_value_free(back);
  rpci_value_free(v);
  rpci_buf_free(&b);
  /* CBOR-only kinds: bytes base64url, tags dropped, NaN null, int keys */
  const uint8_t cb[] = {0xa2, 0x01, 0x43, 0xfb, 0xff, 0x01, 0x61,
                        'k',  0x82, 0xc1, 0x00, 0xf9, 0x7e, 0x00};
  REQUIRE(rpci_value_decode(cb, sizeof cb, NULL, &v, NULL) == 0);
  rpci_buf c = RPCI_BUF_INIT;
  CHECK_EQ_INT(rpci_json_write(v, &c, 0), 0);
  rpci_buf_push(&c, 0);
  CHECK(strcmp((char *)c.data, "{\"1\":\"-_8B\",\"k\":[0,null]}") == 0);
  if (strcmp((char *)c.data, "{\"1\":\"-_8B\",\"k\":[0,null]}"))
    fprintf(stderr, "%s\n", (char *)c.data);
  rpci_buf_free(&c);
  rpci_value_free(v);
}

int main(void) {
  RUN(test_parse_ok);
  RUN(test_parse_errors);
  RUN(test_write);
  return TEST_END();
}
