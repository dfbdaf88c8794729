/* pyexec get ID: print the state and output of an execution. */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec get [OPTIONS] EXECUTION_ID\n"
          "\n"
          "Prints the output so far of an execution (stdout to stdout, stderr to\n"
          "stderr) and, unless -q, a note when it is still running or did not simply\n"
          "exit. With --json, prints the whole result as one JSON object. Exits 0\n"
          "when the call succeeded (whatever the program did), 125 if it failed\n"
          "(e.g. unknown id), 2 on a usage error.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL, "only the program's stdout so far; no notes");
}

int cmd_get(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("get", argc, argv, CLI_OPTS_GLOBAL, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->operands.n != 1)
        return cli_usage_error("get", "expected one execution id, got %zu", o->operands.n);
    pyexec_client *c = cli_client(o);
    if (!c)
        return CLI_EXIT_FAILED;
    pyexec_result *r = NULL;
    pyexec_error err = PYEXEC_ERROR_INIT;
    if (pyexec_get_execution(c, o->operands.v[0], &r, &err) < 0) {
        rc = cli_fail("get", &err);
    } else {
        rc = CLI_EXIT_OK;
        if (o->json) {
            cli_json_result(stdout, r, NULL, 0, NULL, 0);
        } else {
            fwrite(r->stdout_buf, 1, r->stdout_len, stdout);
            fflush(stdout);
            if (!o->quiet) {
                fwrite(r->stderr_buf, 1, r->stderr_len, stderr);
                if (!pyexec_status_is_terminal(r->status))
                    fprintf(stderr, "pyexec: execution %s is %s\n", r->execution_id,
                            pyexec_status_name(r->status));
                else
                    cli_print_abnormal(r, (int64_t)(r->stdout_len + r->stderr_len), 0);
                if (o->verbose)
                    cli_print_summary(r);
            }
        }
    }
    pyexec_result_free(r);
    pyexec_client_free(c);
    return rc;
}
