/*
 * rpcnet: command-line entry point and subcommand dispatch. See cli.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rpcnet/rpcnet.h"

typedef struct cli_cmd {
  const char *name;
  const char *summary;
  cli_main_fn main;
  void (*usage)(FILE *out);
} cli_cmd;

static const cli_cmd commands[] = {
    {"cbor", "convert between CBOR (hex or binary), diagnostic notation and JSON", cli_cbor_main,
     cli_cbor_usage},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
  fprintf(out,
          "usage: rpcnet <command> [options]\n"
          "       rpcnet help <command>\n"
          "       rpcnet --version\n\n"
          "commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nRun 'rpcnet <command> --help' for a command's options.\n");
}

static const cli_cmd *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  const char *a = argv[1];
  if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
    usage(stdout);
    return CLI_OK;
  }
  if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
    printf("rpcnet %d.%d.%d\n", RPCNET_VERSION_MAJOR, RPCNET_VERSION_MINOR, RPCNET_VERSION_PATCH);
    return CLI_OK;
  }
  if (strcmp(a, "help") == 0) {
    if (argc < 3) {
      usage(stdout);
      return CLI_OK;
    }
    const cli_cmd *c = find(argv[2]);
    if (!c) {
      fprintf(stderr, "rpcnet: unknown command '%s'\n", argv[2]);
      return CLI_USAGE;
    }
    c->usage(stdout);
    return CLI_OK;
  }
  const cli_cmd *c = find(a);
  if (!c) {
    fprintf(stderr, "rpcnet: unknown command '%s'\n\n", a);
    usage(stderr);
    return CLI_USAGE;
  }
  return c->main(argc - 1, argv + 1);
}
