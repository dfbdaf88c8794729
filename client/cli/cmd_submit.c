/* pyexec submit: submit asynchronously and print the execution id. */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec submit [OPTIONS] [FILE|DIR|ARCHIVE.tar[.gz]] [-- SCRIPT_ARGS...]\n"
          "\n"
          "Submits a project and prints its execution id (with --json, the whole\n"
          "initial result). Follow it with 'pyexec follow ID', stop it with\n"
          "'pyexec kill ID'. Exits 0, 125 if the call failed, 2 on a usage error.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST,
                           "only the execution id; no warnings");
}

int cmd_submit(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("submit", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST, o);
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
        return cli_usage_error("submit", "%s", err.msg);
    }
    pyexec_request req;
    cli_request_fill(&req, o, &p);
    pyexec_client *c = cli_client(o);
    if (!c) {
        cli_project_release(&p);
        return CLI_EXIT_FAILED;
    }
    pyexec_result *r = NULL;
    if (pyexec_execute_async(c, &req, &r, &err) < 0) {
        rc = cli_fail("submit", &err);
    } else {
        if (o->json)
            cli_json_result(stdout, r, NULL, 0, NULL, 0);
        else
            printf("%s\n", r->execution_id);
        rc = CLI_EXIT_OK;
    }
    pyexec_result_free(r);
    pyexec_client_free(c);
    cli_project_release(&p);
    return rc;
}
