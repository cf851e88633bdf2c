/*
 * Messages at the size limit: a 16 MiB echo (the default max_message_size)
 * arrives byte-exact; one byte more is refused by the client before sending
 * (RESOURCE_EXHAUSTED); a server reply over its own limit turns into a
 * RESOURCE_EXHAUSTED status instead of a broken stream; a client whose
 * max_message_size is smaller than the server's reply gets
 * RESOURCE_EXHAUSTED too, and the connection keeps working.
 */
#include "testutil.h"

static void echo(rpcnet_request *req, void *user) {
  (void)user;
  size_t n;
  const void *d = rpcnet_request_data(req, &n);
  rpcnet_request_reply(req, d, n);
}

static void big_reply(rpcnet_request *req, void *user) {
  size_t n = *(size_t *)user;
  void *p = calloc(1, n);
  int rc = rpcnet_request_reply(req, p, n);
  free(p);
  (void)rc;
}

static size_t big_reply_size = 2u << 20;

static void test_limits(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(srv);
  rpcnet_server_handle(srv, "echo", echo, NULL);
  rpcnet_server_handle(srv, "big", big_reply, &big_reply_size);
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);

  size_t max = 16u << 20;
  uint8_t *req = malloc(max + 1);
  REQUIRE(req);
  tu_fill(req, max + 1, 7);
  void *resp = NULL;
  size_t n = 0;
  int64_t t0 = tu_now_ms();
  int rc = rpcnet_client_call(cli, "echo", req, max, &resp, &n, 60000);
  fprintf(stderr, "16 MiB echo: %s in %lld ms\n", rpcnet_status_name(rc),
          (long long)(tu_now_ms() - t0));
  CHECK_EQ_INT(rc, RPCNET_OK);
  CHECK(n == max && resp && memcmp(resp, req, max) == 0);
  rpcnet_free(resp);

  rc = rpcnet_client_call(cli, "echo", req, max + 1, &resp, &n, 5000);
  CHECK_EQ_INT(rc, RPCNET_RESOURCE_EXHAUSTED);
  CHECK(resp == NULL);
  CHECK(tu_contains(rpcnet_last_error(), "max_message_size"));
  free(req);

  /* A client that accepts at most 1 MiB, asking for a 2 MiB reply. */
  rpcnet_config *cfg = tu_config("ca_file", "@ca.pem", "max_message_size", "1048576", NULL);
  rpcnet_client *small = rpcnet_client_connect(cfg, tu_server_addr(srv, 0));
  rpcnet_config_free(cfg);
  REQUIRE(small);
  rc = rpcnet_client_call(small, "big", "", 0, &resp, &n, 5000);
  fprintf(stderr, "2 MiB reply to a 1 MiB client: %s: %s\n", rpcnet_status_name(rc),
          rpcnet_last_error());
  CHECK_EQ_INT(rc, RPCNET_RESOURCE_EXHAUSTED);
  rc = rpcnet_client_call(small, "echo", "still", 5, &resp, &n, 5000);
  CHECK_EQ_INT(rc, RPCNET_OK);
  rpcnet_free(resp);
  rpcnet_client_close(small);

  /* A server reply over the server's own limit. */
  big_reply_size = (16u << 20) + 1;
  rc = rpcnet_client_call(cli, "big", "", 0, &resp, &n, 10000);
  fprintf(stderr, "oversized server reply: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
  CHECK_EQ_INT(rc, RPCNET_RESOURCE_EXHAUSTED);

  rpcnet_client_close(cli);
  rpcnet_server_free(srv);
}

int main(void) {
  RUN(test_limits);
  return TEST_END();
}
