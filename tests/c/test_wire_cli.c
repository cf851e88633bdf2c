/*
 * `rpcnet cbor` end to end: runs the built tool (RPCNET_BINARY_DIR/capi/
 * rpcnet, or $RPCNET_CLI) and checks output and exit status. Fails when the
 * tool was not built: build the rpcnet_cli target (a full build does).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char g_cli[1100];

/* Runs `cli args` with stdin from `in` (may be NULL); returns the exit
 * status and the output (malloc'd) in *out. */
static int run(const char *args, const char *in, char **out) {
  char cmd[4096];
  char inpath[1200] = "";
  if (in) {
    snprintf(inpath, sizeof inpath, "%s/cli-test-input-%d", RPCNET_BINARY_DIR, (int)getpid());
    FILE *f = fopen(inpath, "wb");
    if (!f) return -1;
    fputs(in, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' %s < '%s' 2>/dev/null", g_cli, args, inpath);
  } else {
    snprintf(cmd, sizeof cmd, "'%s' %s < /dev/null 2>/dev/null", g_cli, args);
  }
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) n += k;
  buf[n] = 0;
  int st = pclose(p);
  if (in) unlink(inpath);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void find_cli(void) {
  const char *env = getenv("RPCNET_CLI");
  if (env)
    snprintf(g_cli, sizeof g_cli, "%s", env);
  else
    snprintf(g_cli, sizeof g_cli, "%s/capi/rpcnet", RPCNET_BINARY_DIR);
  if (access(g_cli, X_OK) != 0) fprintf(stderr, "rpcnet tool not found at %s\n", g_cli);
  REQUIRE(access(g_cli, X_OK) == 0);
}

static void expect(const char *args, const char *in, int status, const char *want) {
  char *out = NULL;
  int st = run(args, in, &out);
  if (st != status || (want && (!out || strcmp(out, want) != 0)))
    fprintf(stderr, "rpcnet %s: status %d output [%s], want %d [%s]\n", args, st, out ? out : "",
            status, want ? want : "*");
  CHECK_EQ_INT(st, status);
  if (want) CHECK(out && strcmp(out, want) == 0);
  free(out);
}

static void test_cbor_to_text(void) {
  expect("cbor a26161016162820203", NULL, 0, "{\"a\": 1, \"b\": [2, 3]}\n");
  expect("cbor -t json 83010203", NULL, 0, "[1,2,3]\n");
  expect("cbor -t json a2616101616242ffff", NULL, 0, "{\"a\":1,\"b\":\"__8\"}\n");
  expect("cbor -t json -p 8101", NULL, 0, "[\n  1\n]\n");
  expect("cbor -f hex -t hex 9f0102ff", NULL, 0, "820102\n");
  expect("cbor bf6346756ef563416d7421ff", NULL, 0, "{\"Amt\": -2, \"Fun\": true}\n");
  expect("cbor -", "f9 7e 00\n", 0, "NaN\n");
  expect("cbor --seq 01820203f6", NULL, 0, "1\n[2, 3]\nnull\n");
  expect("cbor -t json c11a514b67b0", NULL, 0, "1363896240\n");
}

static void test_text_to_cbor(void) {
  expect("cbor '{\"a\": [1, 2.5]}'", NULL, 0, "a161618201f94100\n");
  expect("cbor -f diag \"[_ 1, h'ff']\"", NULL, 0, "820141ff\n");
  expect("cbor -f json -t diag '[1.0, 1e300, -0.0]'", NULL, 0, "[1.0, 1.0e+300, -0.0]\n");
  expect("cbor -f diag '1(1363896240)'", NULL, 0, "c11a514b67b0\n");
  expect("cbor -f json -", "{\"b\": 1, \"a\": 2}", 0, "a2616102616201\n");
  expect("cbor -f diag -t bin '\"a\"'", NULL, 0, "aa");
}

static void test_errors(void) {
  expect("cbor 1c", NULL, 1, "");
  expect("cbor 8201", NULL, 1, "");
  expect("cbor f7", NULL, 1, "");
  expect("cbor -l f7", NULL, 0, "undefined\n");
  expect("cbor -f json '{\"a\":1,\"a\":2}'", NULL, 1, "");
  expect("cbor -f diag '1(\"x\")'", NULL, 1, "");
  expect("cbor -f json '[1,'", NULL, 1, "");
  expect("cbor --bogus", NULL, 2, NULL);
  expect("cbor -t auto 00", NULL, 2, NULL);
  expect("nosuchcommand", NULL, 2, NULL);
  expect("--help", NULL, 0, NULL);
  expect("help cbor", NULL, 0, NULL);
}

int main(void) {
  RUN(find_cli);
  if (tu_cases_failed) return TEST_END();
  RUN(test_cbor_to_text);
  RUN(test_text_to_cbor);
  RUN(test_errors);
  return TEST_END();
}
