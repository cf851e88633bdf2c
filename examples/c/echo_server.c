/*
 * echo_server: a minimal rpcnet server.
 *
 *   echo_server --cert server.pem --key server-key.pem [--listen 127.0.0.1:7000]
 *
 * Methods:
 *   echo   answers the request unchanged
 *   upper  answers the request with ASCII letters upper-cased
 *
 * Prints "listening on PORT" once ready (useful with port 0), serves until
 * SIGINT or SIGTERM, then shuts down letting calls in flight finish for up to
 * 2 s.
 */
#include <ctype.h>
#include <pthread.h>
#include <rpcnet/rpcnet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Handlers run on a library I/O thread and answer at once. */
static void echo(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *data = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, data, len);
}

static void upper(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const unsigned char *data = rpcnet_request_data(req, &len);
  unsigned char *out = malloc(len ? len : 1);
  if (!out) {
    rpcnet_request_fail(req, RPCNET_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < len; i++) out[i] = (unsigned char)toupper(data[i]);
  rpcnet_request_reply(req, out, len);
  free(out);
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s --cert FILE --key FILE [--listen HOST:PORT]\n", argv0);
}

int main(int argc, char **argv) {
  const char *cert = NULL, *key = NULL, *listen = "127.0.0.1:7000";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc) {
      cert = argv[++i];
    } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
      key = argv[++i];
    } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      listen = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else {
      fprintf(stderr, "echo_server: unexpected argument: %s\n", argv[i]);
      usage(argv[0]);
      return 2;
    }
  }
  if (!cert || !key) {
    usage(argv[0]);
    return 2;
  }

  /* Block the stop signals before the library starts its threads (they
   * inherit the mask), then wait for them with sigwait in main. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg) {
    fprintf(stderr, "echo_server: out of memory\n");
    return 1;
  }
  if (rpcnet_config_set(cfg, "cert_file", cert) != RPCNET_OK ||
      rpcnet_config_set(cfg, "key_file", key) != RPCNET_OK) {
    fprintf(stderr, "echo_server: bad configuration: %s\n", rpcnet_last_error());
    rpcnet_config_free(cfg);
    return 1;
  }
  rpcnet_server *srv = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg); /* the server keeps its own copy */
  if (!srv) {
    fprintf(stderr, "echo_server: cannot create the server: %s\n", rpcnet_last_error());
    return 1;
  }
  if (rpcnet_server_handle(srv, "echo", echo, NULL) != RPCNET_OK ||
      rpcnet_server_handle(srv, "upper", upper, NULL) != RPCNET_OK) {
    fprintf(stderr, "echo_server: cannot register methods: %s\n", rpcnet_last_error());
    rpcnet_server_free(srv);
    return 1;
  }
  int rc = rpcnet_server_listen(srv, listen);
  if (rc != RPCNET_OK) {
    fprintf(stderr, "echo_server: cannot listen on %s: %s: %s\n", listen, rpcnet_status_name(rc),
            rpcnet_last_error());
    rpcnet_server_free(srv);
    return 1;
  }
  printf("listening on %d\n", rpcnet_server_port(srv));
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  printf("%s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  fflush(stdout);
  rpcnet_server_shutdown(srv, 2000);
  rpcnet_server_free(srv);
  printf("stopped\n");
  return 0;
}
