/*
 * The `rpcnet` command-line tool: one dispatch table of subcommands
 * (main.c); each subcommand lives in its own file and has the signature of
 * cli_main_fn. Adding one (call, serve, ...) means one file plus one row in
 * the table.
 *
 * Design notes: subcommands write results to stdout and diagnostics to
 * stderr, prefixed "rpcnet <cmd>: ". Exit status: 0 success, 1 the input or
 * the operation failed, 2 usage error.
 */
#ifndef RPCNET_CLI_H
#define RPCNET_CLI_H

#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* argv[0] is the subcommand's name. */
typedef int (*cli_main_fn)(int argc, char **argv);

int cli_cbor_main(int argc, char **argv);
void cli_cbor_usage(FILE *out);

#endif
