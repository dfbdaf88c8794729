/* pyexec kill ID: end an execution (idempotent). */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec kill [OPTIONS] EXECUTION_ID\n"
          "\n"
          "Kills a pending or running execution; on a finished one it changes\n"
          "nothing. Prints the final status (with --json, the result). Exits 0, 125\n"
          "if the call failed (e.g. unknown id), 2 on a usage error.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL, "print nothing: the exit code says it");
}

int cmd_kill(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("kill", argc, argv, CLI_OPTS_GLOBAL, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->operands.n != 1)
        return cli_usage_error("kill", "expected one execution id, got %zu", o->operands.n);
    pyexec_client *c = cli_client(o);
    if (!c)
        return CLI_EXIT_FAILED;
    pyexec_result *r = NULL;
    pyexec_error err = PYEXEC_ERROR_INIT;
    if (pyexec_kill(c, o->operands.v[0], &r, &err) < 0) {
        rc = cli_fail("kill", &err);
    } else {
        rc = CLI_EXIT_OK;
        if (o->json)
            cli_json_result(stdout, r, NULL, 0, NULL, 0);
        else if (!o->quiet)
            printf("%s %s\n", r->execution_id, pyexec_status_name(r->status));
        if (o->verbose)
            cli_print_summary(r);
    }
    pyexec_result_free(r);
    pyexec_client_free(c);
    return rc;
}
