/*
 * echo_client: calls an echo_server once per message.
 *
 *   echo_client --ca ca.pem [--server-name localhost] [--method echo|upper]
 *               [--timeout MS] ADDR MESSAGE...
 *
 * For each message prints the status, the number of bytes answered, the
 * round-trip time and the answer. Exits 0 only when every call succeeded
 * (and, for "echo", the answer equals the message).
 */
#include <rpcnet/rpcnet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s --ca FILE [--server-name NAME] [--method echo|upper] [--timeout MS] "
          "ADDR MESSAGE...\n",
          argv0);
}

int main(int argc, char **argv) {
  const char *ca = NULL, *server_name = NULL, *method = "echo", *timeout = "5000";
  setvbuf(stdout, NULL, _IOLBF, 0); /* keep results and errors in order */
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "echo_client: %s needs a value\n", argv[i]);
      usage(argv[0]);
      return 2;
    }
    if (strcmp(argv[i], "--ca") == 0) {
      ca = argv[++i];
    } else if (strcmp(argv[i], "--server-name") == 0) {
      server_name = argv[++i];
    } else if (strcmp(argv[i], "--method") == 0) {
      method = argv[++i];
    } else if (strcmp(argv[i], "--timeout") == 0) {
      timeout = argv[++i];
    } else {
      fprintf(stderr, "echo_client: unknown option %s\n", argv[i]);
      usage(argv[0]);
      return 2;
    }
  }
  if (!ca || argc - i < 2) {
    usage(argv[0]);
    return 2;
  }
  const char *addr = argv[i++];
  int timeout_ms = atoi(timeout);

  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg) {
    fprintf(stderr, "echo_client: out of memory\n");
    return 1;
  }
  if (rpcnet_config_set(cfg, "ca_file", ca) != RPCNET_OK ||
      (server_name && rpcnet_config_set(cfg, "server_name", server_name) != RPCNET_OK) ||
      rpcnet_config_set(cfg, "default_timeout_ms", timeout) != RPCNET_OK) {
    fprintf(stderr, "echo_client: bad configuration: %s\n", rpcnet_last_error());
    rpcnet_config_free(cfg);
    return 1;
  }
  double t0 = now_ms();
  rpcnet_client *cli = rpcnet_client_connect(cfg, addr);
  rpcnet_config_free(cfg);
  if (!cli) {
    fprintf(stderr, "echo_client: connect failed: %s\n", rpcnet_last_error());
    return 1;
  }
  printf("connected to %s in %.2f ms\n", addr, now_ms() - t0);

  int failures = 0;
  for (; i < argc; i++) {
    const char *msg = argv[i];
    size_t len = strlen(msg);
    void *resp = NULL;
    size_t resp_len = 0;
    double start = now_ms();
    int rc = rpcnet_client_call(cli, method, msg, len, &resp, &resp_len, timeout_ms);
    double rtt = now_ms() - start;
    if (rc != RPCNET_OK) {
      printf("%s(%zu bytes): %s after %.2f ms: %s\n", method, len, rpcnet_status_name(rc), rtt,
             rpcnet_last_error());
      failures++;
      continue;
    }
    int mismatch = strcmp(method, "echo") == 0 && (resp_len != len || memcmp(resp, msg, len) != 0);
    printf("%s(%zu bytes): OK, %zu bytes back, round trip %.3f ms: \"%.*s%s\"%s\n", method, len,
           resp_len, rtt, (int)(resp_len > 60 ? 60 : resp_len), (const char *)resp,
           resp_len > 60 ? "..." : "", mismatch ? "  MISMATCH" : "");
    failures += mismatch;
    rpcnet_free(resp);
  }
  rpcnet_client_close(cli);
  if (failures) fprintf(stderr, "echo_client: %d call(s) failed\n", failures);
  return failures ? 1 : 0;
}
