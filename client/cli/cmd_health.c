/* pyexec health: grpc.health.v1 Check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"

static void help(void) {
    fputs("Usage: pyexec health [OPTIONS]\n"
          "\n"
          "Asks the server's health service. Prints SERVING, or NOT_SERVING and why\n"
          "(e.g. \"NOT_SERVING: GET /_ping: Docker engine at ...: connect: ...\").\n"
          "Exits 0 when SERVING, 1 otherwise, 125 if the call failed.\n"
          "\n",
          stdout);
    cli_print_options_help(stdout, CLI_OPTS_GLOBAL | CLI_OPTS_SERVICE,
                           "print nothing: the exit code says it");
}

int cmd_health(int argc, char **argv, cli_opts *o) {
    int rc = cli_parse("health", argc, argv, CLI_OPTS_GLOBAL | CLI_OPTS_SERVICE, o);
    if (rc)
        return rc;
    if (o->help) {
        help();
        return CLI_EXIT_OK;
    }
    if (o->operands.n)
        return cli_usage_error("health", "unexpected argument '%s'", o->operands.v[0]);
    pyexec_client *c = cli_client(o);
    if (!c)
        return CLI_EXIT_FAILED;
    pyexec_health h = PYEXEC_HEALTH_UNKNOWN;
    char *reason = NULL;
    pyexec_error err = PYEXEC_ERROR_INIT;
    if (pyexec_health_check_reason(c, o->service, &h, &reason, &err) < 0) {
        rc = cli_fail("health", &err);
    } else {
        if (o->json) {
            printf("{\"status\": \"%s\"", pyexec_health_name(h));
            if (reason) {
                fputs(", \"reason\": ", stdout);
                cli_json_string(stdout, (const uint8_t *)reason, strlen(reason));
            }
            fputs("}\n", stdout);
        } else if (!o->quiet) {
            printf("%s%s%s\n", pyexec_health_name(h), reason ? ": " : "", reason ? reason : "");
        }
        rc = h == PYEXEC_HEALTH_SERVING ? CLI_EXIT_OK : 1;
    }
    free(reason);
    pyexec_client_free(c);
    return rc;
}
