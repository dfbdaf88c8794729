/* pyexec run: submit asynchronously, stream the output, exit like the program. */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec run [OPTIONS] [FILE|DIR|ARCHIVE.tar[.gz]] [-- SCRIPT_ARGS...]\n"
          "\n"
          "Runs a project and streams its stdout and stderr live. Exits with the\n"
          "program's exit code (128+N if killed by signal N), 124 if it timed out,\n"
          "137 if it was killed, 125 if the call failed or the execution FAILED,\n"
          "2 on a usage error. Ctrl-C kills the execution (and shows its end);\n"
          "a second Ctrl-C quits at once.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST, CLI_QUIET_PROGRAM);
}

int cmd_run(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("run", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    cli_project p;
    pyexec_error err = PYEXEC_ERROR_INIT;
    if (cli_project_load(&p, o, &err) < 0) {
        cli_project_release(&p);
        return cli_usage_error("run", "%s", err.msg);
    }
    pyexec_request req;
    cli_request_fill(&req, o, &p);

    /* Before the client exists: gRPC's threads inherit the blocked mask, so
     * only our interrupt thread ever takes these signals. */
    cli_interrupt_block();
    pyexec_client *c = cli_client(o);
    if (!c) {
        cli_project_release(&p);
        return CLI_EXIT_FAILED;
    }
    pyexec_result *sub = NULL;
    if (pyexec_execute_async(c, &req, &sub, &err) < 0) {
        rc = cli_fail("run", &err);
    } else {
        if (o->verbose)
            fprintf(stderr, "Submitted: %s\n", sub->execution_id);
        cli_interrupt *in = cli_interrupt_start(c, sub->execution_id);
        rc = cli_follow(c, o, sub->execution_id, 0);
        cli_interrupt_stop(in);
    }
    pyexec_result_free(sub);
    pyexec_client_free(c);
    cli_project_release(&p);
    return rc;
}
