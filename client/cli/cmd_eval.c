/* pyexec eval [CODE]: run Python code REPL-style, print its output, then its result. */
#include <stdio.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec eval [OPTIONS] [CODE]\n"
          "\n"
          "Runs Python CODE (the argument, or standard input when there is none; or\n"
          "--file PATH... with --entrypoint) like the Python REPL: prints its output,\n"
          "then the repr() of the value of its last line if that is an expression\n"
          "(and not None). Exits like 'pyexec run': the program's exit code, so 1\n"
          "when the code raised (the traceback is on stderr), 124 if it timed out,\n"
          "137 if killed, 125 if the call failed, 2 on a usage error. Piped input\n"
          "goes to the program when CODE is an argument. --json prints the whole\n"
          "result, with result, error_type, error_line and error_message.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST | CLI_OPTS_EVAL,
                           "no notes (output and result only)");
}

int cmd_eval(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("eval", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_REQUEST | CLI_OPTS_EVAL, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->image || o->pre.n || o->args.n)
        return cli_usage_error("eval", "--image, --pre and script arguments do not apply to "
                                       "eval (see 'pyexec run')");
    if (o->operands.n > 1)
        return cli_usage_error("eval", "expected one CODE argument, got %zu (quote the code)",
                               o->operands.n);
    if (o->operands.n == 1) {
        if (o->files.n)
            return cli_usage_error("eval", "CODE and --file: give one of them");
        o->code = o->operands.v[0];
        o->operands.n = 0;
    }
    cli_project p;
    pyexec_error err = PYEXEC_ERROR_INIT;
    if (cli_project_load(&p, o, &err) < 0) {
        cli_project_release(&p);
        return cli_usage_error("eval", "%s", err.msg);
    }
    pyexec_request req;
    cli_request_fill(&req, o, &p);

    pyexec_client *c = cli_client(o);
    if (!c) {
        cli_project_release(&p);
        return CLI_EXIT_FAILED;
    }
    pyexec_result *r = NULL;
    int call = o->no_result ? pyexec_execute_sync(c, &req, &r, &err)
                            : pyexec_eval_sync(c, NULL, &req, &r, &err);
    if (call < 0) {
        rc = cli_fail("eval", &err);
    } else {
        rc = cli_exit_code(r);
        if (o->json) {
            cli_json_result(stdout, r, NULL, 0, NULL, 0);
        } else {
            fwrite(r->stdout_buf, 1, r->stdout_len, stdout);
            fflush(stdout);
            fwrite(r->stderr_buf, 1, r->stderr_len, stderr);
            if (r->result)
                printf("%s\n", r->result);
            if (!o->quiet)
                cli_print_abnormal(r, (int64_t)(r->stdout_len + r->stderr_len), o->timeout_seconds);
            if (o->verbose)
                cli_print_summary(r);
        }
        fflush(stdout);
    }
    pyexec_result_free(r);
    pyexec_client_free(c);
    cli_project_release(&p);
    return rc;
}
