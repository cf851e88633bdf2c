/*
 * TLS: server verification failures (untrusted CA, wrong name) with a reason
 * in rpcnet_last_error, verify_peer=false, mutual TLS (rejected without a
 * client certificate, accepted with one, subject in the peer string),
 * in-memory PEM, and SSLKEYLOGFILE.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

static _Atomic int handled;

/* "peer" answers the peer string; everything else echoes. */
static void handler(rpcnet_request *req, void *user) {
  (void)user;
  handled++;
  if (strcmp(rpcnet_request_method(req), "peer") == 0) {
    const char *p = rpcnet_request_peer(req);
    rpcnet_request_reply(req, p, strlen(p));
    return;
  }
  size_t len;
  const void *d = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, d, len);
}

static rpcnet_server *start(rpcnet_config *cfg) {
  rpcnet_server *srv = tu_server_start(cfg, "127.0.0.1:0");
  if (srv) {
    rpcnet_server_handle(srv, "echo", handler, NULL);
    rpcnet_server_handle(srv, "peer", handler, NULL);
  }
  return srv;
}

static rpcnet_server *start_default(void) {
  return start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL));
}

/* Connects with cfg (freed here) to srv. */
static rpcnet_client *connect_to(const rpcnet_server *srv, rpcnet_config *cfg) {
  if (!cfg) return NULL;
  rpcnet_client *cli = rpcnet_client_connect(cfg, tu_server_addr(srv, 0));
  rpcnet_config_free(cfg);
  return cli;
}

/* One echo call; returns its status. */
static int echo(rpcnet_client *cli) {
  void *resp = NULL;
  size_t len = 0;
  int rc = rpcnet_client_call(cli, "echo", "ping", 4, &resp, &len, 10000);
  if (rc == RPCNET_OK && (len != 4 || memcmp(resp, "ping", 4) != 0)) rc = -1;
  rpcnet_free(resp);
  return rc;
}

/* The peer string as the server sees it (malloc'd), or NULL. */
static char *peer_of(rpcnet_client *cli) {
  void *resp = NULL;
  size_t len = 0;
  int rc = rpcnet_client_call(cli, "peer", NULL, 0, &resp, &len, 10000);
  if (rc != RPCNET_OK) {
    fprintf(stderr, "peer call: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
    return NULL;
  }
  char *s = strndup(resp, len);
  rpcnet_free(resp);
  return s;
}

static void test_untrusted_ca(void) {
  rpcnet_server *srv = start_default();
  REQUIRE(srv);
  rpcnet_client *cli = connect_to(srv, tu_config("ca_file", "@other-ca.pem", NULL));
  const char *why = rpcnet_last_error();
  fprintf(stderr, "client trusting other-ca: %s: \"%s\"\n", cli ? "connected?!" : "failed", why);
  CHECK(cli == NULL);
  CHECK(tu_contains(why, "certificate"));
  CHECK(tu_contains(why, "not trusted") || tu_contains(why, "untrusted") ||
        tu_contains(why, "signer") || tu_contains(why, "verif") || tu_contains(why, "issuer"));
  rpcnet_client_close(cli);

  /* The same check the other way round: a server with other-ca's certificate
   * and a client trusting ca. */
  rpcnet_server *other =
      start(tu_config("cert_file", "@other-server.pem", "key_file", "@other-server-key.pem", NULL));
  CHECK(other != NULL);
  if (other) {
    cli = connect_to(other, tu_config("ca_file", "@ca.pem", NULL));
    fprintf(stderr, "other-server, client trusting ca: %s: \"%s\"\n",
            cli ? "connected?!" : "failed", rpcnet_last_error());
    CHECK(cli == NULL);
    CHECK(tu_contains(rpcnet_last_error(), "certificate"));
    rpcnet_client_close(cli);
    rpcnet_server_free(other);
  }
  CHECK_EQ_INT(handled, 0);
  rpcnet_server_free(srv);
}

static void test_wrong_server_name(void) {
  rpcnet_server *srv = start_default();
  REQUIRE(srv);
  rpcnet_client *cli =
      connect_to(srv, tu_config("ca_file", "@ca.pem", "server_name", "wrong.example", NULL));
  const char *why = rpcnet_last_error();
  fprintf(stderr, "server_name wrong.example: %s: \"%s\"\n", cli ? "connected?!" : "failed", why);
  CHECK(cli == NULL);
  CHECK(why[0] != 0);
  CHECK(tu_contains(why, "name") || tu_contains(why, "wrong.example"));
  rpcnet_client_close(cli);

  /* server_name "localhost" (in the certificate) works with an IP address. */
  cli = connect_to(srv, tu_config("ca_file", "@ca.pem", "server_name", "localhost", NULL));
  if (!cli) fprintf(stderr, "server_name localhost: %s\n", rpcnet_last_error());
  CHECK(cli != NULL);
  if (cli) CHECK_EQ_INT(echo(cli), RPCNET_OK);
  rpcnet_client_close(cli);
  rpcnet_server_free(srv);
}

static void test_verify_peer_false(void) {
  rpcnet_server *srv =
      start(tu_config("cert_file", "@other-server.pem", "key_file", "@other-server-key.pem", NULL));
  REQUIRE(srv);
  rpcnet_client *cli = connect_to(srv, tu_config("verify_peer", "false", NULL));
  if (!cli) fprintf(stderr, "verify_peer=false: %s\n", rpcnet_last_error());
  CHECK(cli != NULL);
  if (cli) CHECK_EQ_INT(echo(cli), RPCNET_OK);
  rpcnet_client_close(cli);
  /* verify_peer=false also ignores a CA that would reject the server. */
  cli = connect_to(srv, tu_config("verify_peer", "0", "ca_file", "@ca.pem", NULL));
  if (!cli) fprintf(stderr, "verify_peer=0 + ca: %s\n", rpcnet_last_error());
  CHECK(cli != NULL);
  if (cli) CHECK_EQ_INT(echo(cli), RPCNET_OK);
  rpcnet_client_close(cli);
  rpcnet_server_free(srv);
}

/* With require_client_cert, a client without an acceptable certificate is
 * rejected: either connect fails, or (TLS 1.3 lets the client finish first)
 * its calls fail and never reach a handler. */
static void expect_rejected(const rpcnet_server *srv, rpcnet_config *cfg, const char *what) {
  int before = handled;
  rpcnet_client *cli = connect_to(srv, cfg);
  if (!cli) {
    fprintf(stderr, "%s: connect failed: \"%s\"\n", what, rpcnet_last_error());
    CHECK(rpcnet_last_error()[0] != 0);
  } else {
    int rc = echo(cli);
    fprintf(stderr, "%s: connected, call: %s: \"%s\"\n", what, rpcnet_status_name(rc),
            rpcnet_last_error());
    CHECK(rc != RPCNET_OK);
    rpcnet_client_close(cli);
  }
  CHECK_EQ_INT(handled, before);
}

static void mtls(rpcnet_config *server_cfg, rpcnet_config *good_client_cfg) {
  rpcnet_server *srv = start(server_cfg);
  if (!srv) rpcnet_config_free(good_client_cfg);
  REQUIRE(srv);
  expect_rejected(srv, tu_config("ca_file", "@ca.pem", NULL), "mTLS, no client certificate");
  expect_rejected(srv,
                  tu_config("ca_file", "@ca.pem", "cert_file", "@other-server.pem", "key_file",
                            "@other-server-key.pem", NULL),
                  "mTLS, client certificate from other-ca");

  rpcnet_client *cli = connect_to(srv, good_client_cfg);
  if (!cli) fprintf(stderr, "mTLS with client.pem: %s\n", rpcnet_last_error());
  CHECK(cli != NULL);
  if (cli) {
    CHECK_EQ_INT(echo(cli), RPCNET_OK);
    char *peer = peer_of(cli);
    fprintf(stderr, "mTLS peer: %s\n", peer ? peer : "(none)");
    CHECK(peer != NULL);
    if (peer) {
      CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
      CHECK(strstr(peer, " subject=") != NULL);
      CHECK(strstr(peer, "test-client") != NULL);
      /* The subject comes after the address. */
      CHECK(strstr(peer, "test-client") > strstr(peer, "subject="));
    }
    free(peer);
    rpcnet_client_close(cli);
  }
  rpcnet_server_free(srv);
}

static void test_mtls_files(void) {
  mtls(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", "ca_file", "@ca.pem",
                 "require_client_cert", "true", NULL),
       tu_config("ca_file", "@ca.pem", "cert_file", "@client.pem", "key_file", "@client-key.pem",
                 NULL));
}

static char *slurp(const char *name) {
  char *s = tu_read_file(tu_pki(name), NULL);
  if (!s) fprintf(stderr, "cannot read %s\n", tu_pki(name));
  return s;
}

static void test_in_memory_pem(void) {
  char *ca = slurp("ca.pem"), *cert = slurp("server.pem"), *key = slurp("server-key.pem");
  char *ccert = slurp("client.pem"), *ckey = slurp("client-key.pem");
  if (ca && cert && key && ccert && ckey) {
    /* Server and client from memory only. */
    rpcnet_server *srv = start(tu_config("cert_pem", cert, "key_pem", key, NULL));
    CHECK(srv != NULL);
    if (srv) {
      rpcnet_client *cli = connect_to(srv, tu_config("ca_pem", ca, NULL));
      if (!cli) fprintf(stderr, "ca_pem: %s\n", rpcnet_last_error());
      CHECK(cli != NULL);
      if (cli) CHECK_EQ_INT(echo(cli), RPCNET_OK);
      rpcnet_client_close(cli);
      rpcnet_server_free(srv);
    }
    /* mTLS from memory. */
    mtls(
        tu_config("cert_pem", cert, "key_pem", key, "ca_pem", ca, "require_client_cert", "1", NULL),
        tu_config("ca_pem", ca, "cert_pem", ccert, "key_pem", ckey, NULL));
    /* Garbage PEM is refused when the server is created. */
    rpcnet_config *cfg = tu_config("cert_pem", "not a certificate", "key_pem", key, NULL);
    CHECK(cfg != NULL);
    if (cfg) {
      rpcnet_server *bad = rpcnet_server_new(cfg);
      fprintf(stderr, "garbage cert_pem: %s\n", rpcnet_last_error());
      CHECK(bad == NULL);
      CHECK(rpcnet_last_error()[0] != 0);
      rpcnet_server_free(bad);
      rpcnet_config_free(cfg);
    }
  } else {
    CHECK(0);
  }
  free(ca);
  free(cert);
  free(key);
  free(ccert);
  free(ckey);
}

static void test_bad_server_files(void) {
  rpcnet_config *cfg =
      tu_config("cert_file", "/nonexistent/server.pem", "key_file", "@server-key.pem", NULL);
  REQUIRE(cfg);
  rpcnet_server *srv = rpcnet_server_new(cfg);
  fprintf(stderr, "missing cert_file: %s\n", rpcnet_last_error());
  CHECK(srv == NULL);
  CHECK(rpcnet_last_error()[0] != 0);
  rpcnet_server_free(srv);
  rpcnet_config_free(cfg);

  /* A key that does not match the certificate. */
  cfg = tu_config("cert_file", "@server.pem", "key_file", "@client-key.pem", NULL);
  REQUIRE(cfg);
  srv = rpcnet_server_new(cfg);
  fprintf(stderr, "mismatched key: %s\n", srv ? "accepted?!" : rpcnet_last_error());
  CHECK(srv == NULL);
  rpcnet_server_free(srv);
  rpcnet_config_free(cfg);

  /* No certificate at all. */
  cfg = rpcnet_config_new();
  REQUIRE(cfg);
  srv = rpcnet_server_new(cfg);
  fprintf(stderr, "no certificate: %s\n", rpcnet_last_error());
  CHECK(srv == NULL);
  rpcnet_server_free(srv);
  rpcnet_config_free(cfg);

  /* mTLS without a CA to check clients against. */
  cfg = tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", "require_client_cert",
                  "true", "ca_file", "/nonexistent/ca.pem", NULL);
  REQUIRE(cfg);
  srv = rpcnet_server_new(cfg);
  fprintf(stderr, "mTLS with missing CA: %s\n", rpcnet_last_error());
  CHECK(srv == NULL);
  rpcnet_server_free(srv);
  rpcnet_config_free(cfg);
}

static void test_sslkeylogfile(void) {
  char path[1300];
  snprintf(path, sizeof path, "%s/keylog-%d.txt", tu_pki_dir(), (int)getpid());
  unlink(path);
  rpcnet_server *srv = start_default();
  REQUIRE(srv);
  setenv("SSLKEYLOGFILE", path, 1);
  rpcnet_client *cli = connect_to(srv, tu_config("ca_file", "@ca.pem", NULL));
  CHECK(cli != NULL);
  if (cli) CHECK_EQ_INT(echo(cli), RPCNET_OK);
  rpcnet_client_close(cli);
  unsetenv("SSLKEYLOGFILE");
  char *log = tu_read_file(path, NULL);
  fprintf(stderr, "key log %s: %s\n", path, log ? "present" : "missing");
  CHECK(log != NULL);
  if (log) {
    CHECK(strstr(log, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ") != NULL);
    CHECK(strstr(log, "CLIENT_TRAFFIC_SECRET_0 ") != NULL);
    free(log);
  }
  unlink(path);
  rpcnet_server_free(srv);
}

int main(void) {
  tu_pki_dir_locked();
  RUN(test_untrusted_ca);
  RUN(test_wrong_server_name);
  RUN(test_verify_peer_false);
  RUN(test_mtls_files);
  RUN(test_in_memory_pem);
  RUN(test_bad_server_files);
  RUN(test_sslkeylogfile);
  return TEST_END();
}
