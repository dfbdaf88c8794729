/* pyexec follow ID [--offset N]: stream an execution's output until it ends. */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec follow [OPTIONS] EXECUTION_ID\n"
          "\n"
          "Streams an execution's output from byte --offset of its combined log\n"
          "(replaying what is already there), until it ends. Exits like 'pyexec run'.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_OFFSET, CLI_QUIET_PROGRAM);
}

int cmd_follow(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("follow", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_OFFSET, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->operands.n != 1)
        return cli_usage_error("follow", "expected one execution id, got %zu", o->operands.n);
    pyexec_client *c = cli_client(o);
    if (!c)
        return CLI_EXIT_FAILED;
    rc = cli_follow(c, o, o->operands.v[0], o->offset);
    pyexec_client_free(c);
    return rc;
}
