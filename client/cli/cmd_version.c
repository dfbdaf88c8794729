/* pyexec version. */
#include <stdio.h>

#include "client/cli/cli.h"

int cmd_version(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("version", argc, argv, CLI_OPTS_GLOBAL, o);
    if (rc)
        return rc;
    if (o->help) {
        fputs("Usage: pyexec version [--json]\n\nPrints the version of the pyexec CLI.\n", stdout);
        return CLI_EXIT_OK;
    }
    if (o->operands.n)
        return cli_usage_error("version", "unexpected argument '%s'", o->operands.v[0]);
    if (o->json)
        printf("{\"version\": \"%s\"}\n", PYEXEC_VERSION);
    else
        printf("pyexec %s\n", PYEXEC_VERSION);
    return CLI_EXIT_OK;
}
