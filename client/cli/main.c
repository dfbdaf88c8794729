/* pyexec: command-line client of the pyexec service (docs/cli.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, cli_opts *o);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "run a project, stream its output, exit with its exit code"},
    {"eval", cmd_eval, "run Python code like the REPL: its output, then its result"},
    {"submit", cmd_submit, "submit a project and print its execution id"},
    {"get", cmd_get, "print the state and output of an execution"},
    {"follow", cmd_follow, "stream an execution's output until it ends"},
    {"kill", cmd_kill, "kill an execution"},
    {"ls", cmd_ls, "list the server's executions, newest first"},
    {"health", cmd_health, "check that the server is serving"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f) {
    fputs("Usage: pyexec [--server ADDR] COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "Runs Python projects on a pyexec server, each in a fresh locked-down container.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'pyexec COMMAND --help' for the options of a command.\n"
          "Server: --server ADDR, or env PYEXEC_SERVER (default " PYEXEC_DEFAULT_SERVER ");\n"
          "TLS with https://ADDR or --tls-ca FILE; a tenant's token with --token or\n"
          "env PYEXEC_TOKEN.\n",
          f);
}

int main(int argc, char **argv) {
    /* Options may precede the command (pyexec --server X run ...): find the
     * command word, skipping the values of --server, --tls-* and --token. */
    int i = 1;
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("pyexec %s\n", PYEXEC_VERSION);
            return CLI_EXIT_OK;
        }
        static const char *const with_value[] = {"--server", "--tls-ca", "--tls-cert", "--tls-key",
                                                 "--token"};
        bool takes_value = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            takes_value |= strcmp(argv[i], with_value[k]) == 0;
        i += takes_value ? 2 : 1;
    }
    if (i >= argc || strcmp(argv[i], "--") == 0) {
        fputs("pyexec: no command given\n\n", stderr);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            cmd = &commands[k];
    if (!cmd) {
        fprintf(stderr, "pyexec: unknown command '%s'\n\n", argv[i]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }

    /* argv for the command: its name, then every other word in order. */
    char **cargv = calloc((size_t)argc + 1, sizeof *cargv);
    if (!cargv) {
        fputs("pyexec: out of memory\n", stderr);
        return CLI_EXIT_FAILED;
    }
    int n = 0;
    cargv[n++] = argv[i];
    for (int k = 1; k < argc; k++)
        if (k != i)
            cargv[n++] = argv[k];

    cli_opts o;
    cli_opts_init(&o);
    int rc = cmd->run(n, cargv, &o);
    cli_opts_release(&o);
    free(cargv);
    return rc;
}
