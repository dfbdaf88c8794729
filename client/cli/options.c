/* Option parsing shared by every command (getopt_long, one table). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"

enum {
    OPT_SERVER = 1000,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_MEMORY,
    OPT_DISK,
    OPT_CPU,
    OPT_NETWORK,
    OPT_IMAGE,
    OPT_ENTRYPOINT,
    OPT_ARG,
    OPT_REQUIREMENTS,
    OPT_PRE,
    OPT_STDIN_FILE,
    OPT_FILE,
    OPT_REQUEST_ID,
    OPT_OFFSET,
    OPT_SERVICE,
    OPT_PYTHON,
    OPT_NO_RESULT,
    OPT_STATUS,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TOKEN,
};

static const struct option long_options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"disk", required_argument, NULL, OPT_DISK},
    {"cpu", required_argument, NULL, OPT_CPU},
    {"network", no_argument, NULL, OPT_NETWORK},
    {"image", required_argument, NULL, OPT_IMAGE},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
    {"env", required_argument, NULL, 'e'},
    {"arg", required_argument, NULL, OPT_ARG},
    {"requirements", required_argument, NULL, OPT_REQUIREMENTS},
    {"pre", required_argument, NULL, OPT_PRE},
    {"stdin-file", required_argument, NULL, OPT_STDIN_FILE},
    {"file", required_argument, NULL, OPT_FILE},
    {"request-id", required_argument, NULL, OPT_REQUEST_ID},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"service", required_argument, NULL, OPT_SERVICE},
    {"python", required_argument, NULL, OPT_PYTHON},
    {"no-result", no_argument, NULL, OPT_NO_RESULT},
    {"status", required_argument, NULL, OPT_STATUS},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"token", required_argument, NULL, OPT_TOKEN},
    {NULL, 0, NULL, 0},
};

/* The option group of each option code. */
static unsigned group_of(int code) {
    switch (code) {
    case OPT_SERVER:
    case OPT_TLS_CA:
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
    case OPT_TOKEN:
    case 'q':
    case 'v':
    case OPT_JSON:
    case 'h': return CLI_OPTS_GLOBAL;
    case OPT_OFFSET: return CLI_OPTS_OFFSET;
    case OPT_SERVICE: return CLI_OPTS_SERVICE;
    case OPT_NO_RESULT: return CLI_OPTS_EVAL;
    case OPT_STATUS: return CLI_OPTS_LIST;
    default: return CLI_OPTS_REQUEST;
    }
}

void cli_opts_init(cli_opts *o) {
    memset(o, 0, sizeof *o);
    const char *env = getenv("PYEXEC_SERVER");
    o->server = env && *env ? env : PYEXEC_DEFAULT_SERVER;
    o->server_from_env = env && *env;
    static const struct {
        const char *name;
        size_t offset;
    } from_env[] = {
        {"PYEXEC_TLS_CA", offsetof(cli_opts, tls_ca)},
        {"PYEXEC_TLS_CERT", offsetof(cli_opts, tls_cert)},
        {"PYEXEC_TLS_KEY", offsetof(cli_opts, tls_key)},
        {"PYEXEC_TOKEN", offsetof(cli_opts, token)},
    };
    for (size_t i = 0; i < sizeof from_env / sizeof from_env[0]; i++) {
        const char *v = getenv(from_env[i].name);
        if (v && *v)
            *(const char **)(void *)((char *)o + from_env[i].offset) = v;
    }
}

void cli_opts_release(cli_opts *o) {
    free(o->env.v);
    free(o->args.v);
    free(o->pre.v);
    free(o->files.v);
    free(o->operands.v);
    for (size_t i = 0; i < o->n_env_owned; i++)
        free(o->env_owned[i]);
    free(o->env_owned);
    memset(o, 0, sizeof *o);
}

static int strv_push(cli_strv *s, const char *v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        const char **nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "pyexec %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'pyexec %s --help' for usage.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *what, const pyexec_error *err) {
    fprintf(stderr, "pyexec: %s: %s: %s\n", what, pyexec_code_name(err->code), err->msg);
    return CLI_EXIT_FAILED;
}

pyexec_client *cli_client(const cli_opts *o) {
    pyexec_error err = PYEXEC_ERROR_INIT;
    pyexec_client_options opts = {
        .tls_ca_file = o->tls_ca,
        .tls_cert_file = o->tls_cert,
        .tls_key_file = o->tls_key,
        .token = o->token,
    };
    pyexec_client *c = pyexec_client_new(o->server, &opts, &err);
    if (!c)
        cli_fail("client", &err);
    return c;
}

/* Parses a decimal integer in [lo, hi]. */
static int parse_int(const char *cmd, const char *name, const char *s, long long lo, long long hi,
                     long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi)
        return cli_usage_error(cmd, "--%s: expected an integer in [%lld, %lld], got '%s'", name, lo,
                               hi, s);
    *out = v;
    return 0;
}

/* --env KEY=value is taken as is; --env KEY forwards KEY from this
 * process's environment. */
static int add_env(const char *cmd, cli_opts *o, const char *v) {
    if (!*v || *v == '=')
        return cli_usage_error(cmd, "--env: expected KEY=value or KEY, got '%s'", v);
    if (strchr(v, '='))
        return strv_push(&o->env, v) < 0 ? cli_usage_error(cmd, "out of memory") : 0;
    const char *val = getenv(v);
    if (!val)
        return cli_usage_error(cmd, "--env %s: not set in the environment", v);
    char **owned = realloc(o->env_owned, (o->n_env_owned + 1) * sizeof *owned);
    if (!owned)
        return cli_usage_error(cmd, "out of memory");
    o->env_owned = owned;
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", v, val) < 0)
        return cli_usage_error(cmd, "out of memory");
    o->env_owned[o->n_env_owned++] = kv;
    return strv_push(&o->env, kv) < 0 ? cli_usage_error(cmd, "out of memory") : 0;
}

int cli_parse(const char *cmd, int argc, char **argv, unsigned groups, cli_opts *o) {
    /* The first `--` ends the options: getopt never sees what follows. */
    int dash = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            dash = i;
            break;
        }
    }
    optind = 0; /* full re-initialisation of glibc's getopt */
    opterr = 0;
    int c;
    long long v;
    while ((c = getopt_long(dash, argv, ":hqve:", long_options, NULL)) != -1) {
        if (c == '?') {
            if (optopt)
                return cli_usage_error(cmd, "unknown option '-%c'", optopt);
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (c == ':')
            return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        if (!(group_of(c) & groups))
            return cli_usage_error(cmd, "option '%s' does not apply to '%s'", argv[optind - 1],
                                   cmd);
        int rc = 0;
        switch (c) {
        case OPT_SERVER:
            if (!*optarg)
                return cli_usage_error(cmd, "--server: empty address");
            o->server = optarg;
            o->server_from_env = false;
            break;
        case OPT_TLS_CA: o->tls_ca = optarg; break;
        case OPT_TLS_CERT: o->tls_cert = optarg; break;
        case OPT_TLS_KEY: o->tls_key = optarg; break;
        case OPT_TOKEN: o->token = optarg; break;
        case 'q': o->quiet = true; break;
        case 'v': o->verbose = true; break;
        case OPT_JSON: o->json = true; break;
        case 'h': o->help = true; break;
        case OPT_TIMEOUT:
            if ((rc = parse_int(cmd, "timeout", optarg, 0, INT32_MAX, &v)) == 0)
                o->timeout_seconds = (int32_t)v;
            break;
        case OPT_MEMORY:
            if ((rc = parse_int(cmd, "memory", optarg, 0, INT32_MAX, &v)) == 0)
                o->memory_mb = (int32_t)v;
            break;
        case OPT_DISK:
            if ((rc = parse_int(cmd, "disk", optarg, 0, INT32_MAX, &v)) == 0)
                o->disk_mb = (int32_t)v;
            break;
        case OPT_CPU:
            if ((rc = parse_int(cmd, "cpu", optarg, 0, INT32_MAX, &v)) == 0)
                o->cpu_shares = (int32_t)v;
            break;
        case OPT_OFFSET:
            if ((rc = parse_int(cmd, "offset", optarg, 0, INT64_MAX, &v)) == 0)
                o->offset = v;
            break;
        case OPT_NETWORK: o->network = true; break;
        case OPT_IMAGE: o->image = optarg; break;
        case OPT_ENTRYPOINT: o->entrypoint = optarg; break;
        case OPT_REQUIREMENTS: o->requirements_file = optarg; break;
        case OPT_STDIN_FILE: o->stdin_file = optarg; break;
        case OPT_REQUEST_ID: o->request_id = optarg; break;
        case OPT_SERVICE: o->service = optarg; break;
        case OPT_PYTHON: o->python = optarg; break;
        case OPT_NO_RESULT: o->no_result = true; break;
        case OPT_STATUS: o->status = optarg; break;
        case 'e': rc = add_env(cmd, o, optarg); break;
        case OPT_ARG: rc = strv_push(&o->args, optarg); break;
        case OPT_PRE: rc = strv_push(&o->pre, optarg); break;
        case OPT_FILE: rc = strv_push(&o->files, optarg); break;
        default: return cli_usage_error(cmd, "unhandled option");
        }
        if (rc)
            return rc < 0 ? cli_usage_error(cmd, "out of memory") : rc;
    }
    /* A malformed or unsupported address is a usage error, found before
     * any input is read. */
    pyexec_error err = PYEXEC_ERROR_INIT;
    char *target = pyexec_target_from_address(o->server, &err);
    if (!target)
        return cli_usage_error(cmd, "%s%s",
                               o->server_from_env ? "PYEXEC_SERVER: " : "--server: ", err.msg);
    free(target);
    if (!o->tls_cert != !o->tls_key)
        return cli_usage_error(cmd, "%s without %s: a client certificate needs both",
                               o->tls_cert ? "--tls-cert" : "--tls-key",
                               o->tls_cert ? "--tls-key" : "--tls-cert");
    for (int i = optind; i < dash; i++)
        if (strv_push(&o->operands, argv[i]) < 0)
            return cli_usage_error(cmd, "out of memory");
    if (dash < argc) {
        if (!(groups & CLI_OPTS_REQUEST))
            return cli_usage_error(cmd, "'--' (script arguments) does not apply to '%s'", cmd);
        for (int i = dash + 1; i < argc; i++)
            if (strv_push(&o->args, argv[i]) < 0)
                return cli_usage_error(cmd, "out of memory");
    }
    return 0;
}

void cli_print_options_help(FILE *f, unsigned groups, const char *quiet) {
    if (groups & CLI_OPTS_REQUEST)
        fputs("Input (first that applies): --file PATH (repeatable), a .tar archive (or\n"
              ".tar.gz/.tgz, .tar.bz2, .tar.xz, .tar.zst), a directory (symbolic links sent\n"
              "as links; .git, __pycache__ and what .pyexecignore names left out), a single\n"
              "file, or code on standard input (run as main.py).\n"
              "\n"
              "Execution options:\n"
              "  --entrypoint PATH     script to run (default: main.py, __main__.py, first .py)\n"
              "  --file PATH           add a file, path kept relative as given (repeatable)\n"
              "  --arg VALUE           script argument (repeatable); also words after --\n"
              "  -e, --env KEY=VALUE   environment variable; --env KEY forwards it (repeatable)\n"
              "  --requirements FILE   requirements.txt installed with pip before the run\n"
              "  --pre CMD             shell command run before the program (repeatable)\n"
              "  --stdin-file FILE     feed FILE ('-': standard input) to the program's\n"
              "                        standard input; piped input is fed by default\n"
              "  --timeout SECONDS     wall-clock limit (0: server default, 300)\n"
              "  --memory MB           memory limit (0: server default, 1024)\n"
              "  --disk MB             size of /work (0: server default, 2048)\n"
              "  --cpu SHARES          CPU weight (0: server default, 1024)\n"
              "  --network             give the sandbox a network interface (default: none)\n"
              "  --image NAME          sandbox image (default: the server's)\n"
              "  --python VERSION      Python version, e.g. 3.13: the server's image for it\n"
              "  --request-id KEY      idempotency key: resubmitting returns the same execution\n"
              "\n",
              f);
    if (groups & CLI_OPTS_EVAL)
        fputs("Eval options:\n"
              "  --no-result           run the code as a plain program (no result printed)\n"
              "\n",
              f);
    if (groups & CLI_OPTS_LIST)
        fputs("Options:\n"
              "  --status S            only executions in status S: pending, running,\n"
              "                        completed, failed or killed\n"
              "\n",
              f);
    if (groups & CLI_OPTS_OFFSET)
        fputs("Options:\n"
              "  --offset N            start at byte N of the combined output log (default 0)\n"
              "\n",
              f);
    if (groups & CLI_OPTS_SERVICE)
        fputs("Options:\n"
              "  --service NAME        the service to check: \"\" (default) is the whole\n"
              "                        server, pyexec.v1.ExecutorService the executor; any\n"
              "                        other name fails with NOT_FOUND\n"
              "\n",
              f);
    fputs("Common options:\n"
          "  --server ADDR         server: HOST[:PORT] (port 50051), http://HOST:PORT or\n"
          "                        grpc://HOST:PORT; https://HOST[:PORT] (port 443) or\n"
          "                        grpcs://HOST[:PORT] for TLS; env PYEXEC_SERVER, default\n"
          "                        " PYEXEC_DEFAULT_SERVER "\n"
          "  --tls-ca FILE         PEM CAs the server's certificate must chain to (default:\n"
          "                        the system's); implies TLS; env PYEXEC_TLS_CA\n"
          "  --tls-cert FILE       PEM client certificate, for a server that asks for one\n"
          "  --tls-key FILE        (mutual TLS), with its key; env PYEXEC_TLS_CERT, _KEY\n"
          "  --token TOKEN         sent as 'authorization: Bearer TOKEN' (a server with\n"
          "                        tenants needs one); env PYEXEC_TOKEN (safer: not in ps)\n"
          "  --json                print one JSON object instead of text\n",
          f);
    fprintf(f, "  -q, --quiet           %s\n", quiet);
    fputs("  -v, --verbose         print execution details to stderr\n"
          "  -h, --help            show this help\n",
          f);
}
