/* pyexec ls: list the server's retained executions, newest first. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cli/cli.h"

/* Executions asked for per ListExecutions call (the server's maximum). */
#define LS_PAGE_SIZE 1000

static void help(void) {
    fputs("Usage: pyexec ls [OPTIONS]\n"
          "\n"
          "Lists the executions the server still retains, newest first, one per line:\n"
          "id, status, reason, exit code, start time (UTC) and duration. With --json,\n"
          "one JSON object per execution and line (without stdout/stderr). Exits 0,\n"
          "125 if the call failed, 2 on a usage error.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_LIST, "only the ids");
}

static int parse_status(const char *s, pyexec_status *out) {
    static const pyexec_status all[] = {PYEXEC_STATUS_PENDING, PYEXEC_STATUS_RUNNING,
                                        PYEXEC_STATUS_COMPLETED, PYEXEC_STATUS_FAILED,
                                        PYEXEC_STATUS_KILLED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, pyexec_status_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

static void print_line(const pyexec_result *r) {
    char started[32] = "-", dur[32] = "-", code[16] = "-";
    if (r->has_started_at) {
        time_t t = (time_t)r->started_at_sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (pyexec_status_is_terminal(r->status)) {
        cli_format_duration(dur, sizeof dur, r->duration_ms);
        snprintf(code, sizeof code, "%" PRId32, r->exit_code);
    }
    printf("%s  %-9s  %-16s  %4s  %s  %s\n", r->execution_id, pyexec_status_name(r->status),
           pyexec_status_is_terminal(r->status) ? pyexec_reason_name(r->reason) : "-", code,
           started, dur);
}

int cmd_ls(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("ls", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_LIST, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->operands.n)
        return cli_usage_error("ls", "unexpected argument '%s'", o->operands.v[0]);
    pyexec_status status = PYEXEC_STATUS_UNSPECIFIED;
    if (o->status && parse_status(o->status, &status) < 0)
        return cli_usage_error("ls",
                               "--status: '%s' is not one of pending, running, completed, "
                               "failed, killed",
                               o->status);
    pyexec_client *c = cli_client(o);
    if (!c)
        return CLI_EXIT_FAILED;
    pyexec_error err = PYEXEC_ERROR_INIT;
    char *token = NULL;
    rc = CLI_EXIT_OK;
    for (;;) {
        pyexec_list *page = NULL;
        if (pyexec_list_executions(c, status, LS_PAGE_SIZE, token, &page, &err) < 0) {
            rc = cli_fail("ls", &err);
            break;
        }
        for (size_t i = 0; i < page->n; i++) {
            if (o->json)
                cli_json_result(stdout, page->items[i], NULL, 0, NULL, 0);
            else if (o->quiet)
                printf("%s\n", page->items[i]->execution_id);
            else
                print_line(page->items[i]);
        }
        free(token);
        token = page->next_page_token[0] ? strdup(page->next_page_token) : NULL;
        pyexec_list_free(page);
        if (!token)
            break;
    }
    free(token);
    fflush(stdout);
    pyexec_client_free(c);
    return rc;
}
