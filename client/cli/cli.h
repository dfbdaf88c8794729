/*
 * The `pyexec` command-line client: shared options, input loading and
 * output formatting for the commands in client/cli/cmd_*.c.
 *
 * Exit codes (docs/cli.md): the program's exit code for `run`/`follow`
 * (128+N for signal N), 124 when the execution timed out, 137 when it was
 * killed, 125 when the call failed or the execution FAILED, 2 for usage
 * errors (bad flags, unreadable local input), 0 otherwise.
 * Single-threaded; no global mutable state beyond getopt's own.
 */
#ifndef PYEXEC_CLIENT_CLI_CLI_H
#define PYEXEC_CLIENT_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "client/pyexec.h"
#include "client/pyexec_error.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_TIMEOUT 124
#define CLI_EXIT_FAILED 125
#define CLI_EXIT_KILLED 137

/* Upper bound on the bytes the CLI reads from local files and stdin for one
 * request (code, requirements and program stdin together). */
#define CLI_MAX_INPUT_BYTES (64u * 1024 * 1024)

/* Deepest directory nesting walked for a directory argument. */
#define CLI_MAX_DIR_DEPTH 64

/* What -q does for run and follow (their --help). */
#define CLI_QUIET_PROGRAM                                                                          \
    "only the program's stdout, held until the end and shown\n"                                    \
    "                        only if it exited 0; no notes"

/* Which option groups a command accepts (bit set). */
enum {
    CLI_OPTS_GLOBAL = 1 << 0,  /* --server --tls-* --token -q -v --json --help */
    CLI_OPTS_REQUEST = 1 << 1, /* run/submit: limits, inputs, env, args */
    CLI_OPTS_OFFSET = 1 << 2,  /* follow: --offset */
    CLI_OPTS_SERVICE = 1 << 3, /* health: --service */
    CLI_OPTS_EVAL = 1 << 4,    /* eval: --no-result */
    CLI_OPTS_LIST = 1 << 5,    /* ls: --status */
};

/* A growable list of strings; owns nothing (points into argv or the
 * environment block built by the option parser). */
typedef struct cli_strv {
    const char **v;
    size_t n, cap;
} cli_strv;

typedef struct cli_opts {
    const char *server;
    bool server_from_env; /* o->server came from $PYEXEC_SERVER */
    /* TLS files and bearer token: flags, else $PYEXEC_TLS_CA, $PYEXEC_TLS_CERT,
     * $PYEXEC_TLS_KEY, $PYEXEC_TOKEN; NULL: unset. */
    const char *tls_ca, *tls_cert, *tls_key, *token;
    bool quiet, verbose, json, help;

    /* request */
    int32_t timeout_seconds, memory_mb, disk_mb, cpu_shares;
    bool network;
    const char *image, *entrypoint, *requirements_file, *stdin_file, *request_id;
    const char *python; /* --python VERSION */
    const char *code;   /* eval: the CODE argument, run as main.py */
    bool no_result;     /* eval --no-result: run as a plain program (Execute) */
    cli_strv env;       /* "KEY=value"; entries of the form KEY are resolved into env_owned */
    cli_strv args;      /* --arg values, then the words after `--` */
    cli_strv pre;       /* --pre */
    cli_strv files;     /* --file */
    char **env_owned;
    size_t n_env_owned;

    /* follow / health / ls */
    int64_t offset;
    const char *service;
    const char *status; /* ls --status */

    /* operands before `--` */
    cli_strv operands;
} cli_opts;

/* Sets the defaults (server from $PYEXEC_SERVER, else PYEXEC_DEFAULT_SERVER). */
void cli_opts_init(cli_opts *o);

/* Frees what parsing allocated. */
void cli_opts_release(cli_opts *o);

/* Parses argv[1..argc) of command `cmd` (argv[0] is the command name) into
 * `o`, accepting the option groups in `groups`. The first `--` ends the
 * options; words after it are script arguments (CLI_OPTS_REQUEST only).
 * Returns 0, or prints "pyexec CMD: ..." and returns CLI_EXIT_USAGE. */
int cli_parse(const char *cmd, int argc, char **argv, unsigned groups, cli_opts *o);

/* Prints the description of the option groups in `groups` (for --help);
 * `quiet` says what -q does for the command. */
void cli_print_options_help(FILE *f, unsigned groups, const char *quiet);

/* Prints "pyexec: ..." with the error's code name and message to stderr;
 * returns CLI_EXIT_FAILED. */
int cli_fail(const char *what, const pyexec_error *err);

/* Prints "pyexec CMD: <msg>" and a hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates the client for o->server; on failure prints and returns NULL. */
pyexec_client *cli_client(const cli_opts *o);

/* ---- input (input.c) ---- */

/* The code of one request, loaded from local inputs. Owns everything. */
typedef struct cli_project {
    pyexec_file *files;
    size_t n_files, cap_files;
    uint8_t *tar;
    size_t tar_len;
    char *entrypoint; /* implied by a single file or stdin; NULL otherwise */
    uint8_t *stdin_data;
    size_t stdin_len;
    char *requirements;
    size_t total; /* bytes read so far, bounded by CLI_MAX_INPUT_BYTES */
} cli_project;

/* Loads the code named by `o` (precedence: eval's CODE argument, --file, a .tar operand, a
 * directory operand, a file operand, code on stdin when stdin is not a TTY),
 * plus --requirements and --stdin-file. Returns 0, or -1 with `err` set
 * (PYEXEC_E_INVALID: nothing to run or an unreadable input). */
int cli_project_load(cli_project *p, const cli_opts *o, pyexec_error *err);

void cli_project_release(cli_project *p);

/* Fills `req` from `o` and `p` (both borrowed by `req`). */
void cli_request_fill(pyexec_request *req, const cli_opts *o, const cli_project *p);

/* ---- archives (archive.c, the CLI's only libarchive user) ---- */

/* A plain tar archive (restricted pax) built in memory, at most `max_bytes`. */
typedef struct cli_tar cli_tar;

cli_tar *cli_tar_new(size_t max_bytes, pyexec_error *err);
void cli_tar_free(cli_tar *t); /* NULL-safe */

/* Adds a regular file / a symbolic link (its target as it is). */
int cli_tar_add_file(cli_tar *t, const char *path, const uint8_t *data, size_t len, mode_t mode,
                     pyexec_error *err);
int cli_tar_add_symlink(cli_tar *t, const char *path, const char *target, pyexec_error *err);

/* Entries added so far. */
size_t cli_tar_entries(const cli_tar *t);

/* Ends the archive and hands its bytes to the caller (free()). */
int cli_tar_finish(cli_tar *t, uint8_t **out, size_t *out_len, pyexec_error *err);

/* Decompresses `in` (gzip, bzip2, xz or zstd; `name` for messages) into a
 * new buffer of at most `max_bytes`: the tar inside, byte for byte. Input
 * that is not compressed, or is corrupt: PYEXEC_E_INVALID. */
int cli_decompress(const uint8_t *in, size_t len, const char *name, size_t max_bytes, uint8_t **out,
                   size_t *out_len, pyexec_error *err);

/* ---- ignore rules (ignore.c) ---- */

/* The rules deciding which files of a directory argument are not sent. */
typedef struct cli_ignore cli_ignore;

/* The default rules (.git, .hg, .svn, __pycache__/, *.pyc, .mypy_cache/,
 * .pytest_cache/, .ruff_cache/) followed by those of DIR/.pyexecignore if it
 * exists (a subset of gitignore syntax, described in ignore.c). */
cli_ignore *cli_ignore_load(const char *dir, pyexec_error *err);
void cli_ignore_free(cli_ignore *ig); /* NULL-safe */

/* True if `rel` (relative to the directory, '/'-separated) is not sent. */
bool cli_ignore_match(const cli_ignore *ig, const char *rel, bool is_dir);

/* ---- output (output.c) ---- */

/* Writes `len` bytes of `data` as a JSON string (with quotes); invalid UTF-8
 * becomes U+FFFD. */
void cli_json_string(FILE *f, const uint8_t *data, size_t len);

/* Prints `r` as one JSON object and a newline. If `out`/`err` are not NULL
 * they replace the result's own stdout/stderr bodies. */
void cli_json_result(FILE *f, const pyexec_result *r, const uint8_t *out, size_t out_len,
                     const uint8_t *err, size_t err_len);

/* The CLI exit code for a terminal result (see the top of this file). */
int cli_exit_code(const pyexec_result *r);

/* Prints the -v summary of `r` to stderr. */
void cli_print_summary(const pyexec_result *r);

/* Prints a one-line note to stderr for a result that did not simply exit,
 * in words: "timed out after 30 s", "ran out of memory (peak 512 MiB)",
 * "its output reached the server's limit of 16 MiB", "was killed", "failed
 * (...): why", "the program was killed by SIGSEGV". `log_bytes` is the length
 * of the execution's output log (the output limit when it was reached; 0 if
 * unknown); `timeout_s` the timeout the request asked for (0: unknown). */
void cli_print_abnormal(const pyexec_result *r, int64_t log_bytes, int32_t timeout_s);

/* "7.2 MiB", "512 bytes": `n` bytes in binary units. */
void cli_format_bytes(char *buf, size_t size, int64_t n);

/* "149 ms", "1.5 s", "300 s". */
void cli_format_duration(char *buf, size_t size, int64_t ms);

/* Streams execution `id` from `offset` to stdout/stderr (or, with --json or
 * -q, collects it) and returns the exit code of the finished execution. */
int cli_follow(pyexec_client *c, const cli_opts *o, const char *id, int64_t offset);

/* ---- interrupt.c: Ctrl-C kills what `run` started ---- */

typedef struct cli_interrupt cli_interrupt;

/* Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread
 * it creates later; call before the client exists. */
void cli_interrupt_block(void);

/* From now on the first of those signals kills execution `id` through `c`
 * (the stream being followed then ends with the KILLED result) and a second
 * exits at once with 128+N. Returns NULL if it cannot (the signals then stay
 * blocked and pending: the process ends when the run does). */
cli_interrupt *cli_interrupt_start(pyexec_client *c, const char *id);

/* No Kill after this returns (one in progress has finished); call before
 * freeing the client. NULL-safe. */
void cli_interrupt_stop(cli_interrupt *in);

/* ---- commands (cmd_*.c) ---- */
int cmd_run(int argc, char **argv, cli_opts *o);
int cmd_submit(int argc, char **argv, cli_opts *o);
int cmd_get(int argc, char **argv, cli_opts *o);
int cmd_follow(int argc, char **argv, cli_opts *o);
int cmd_kill(int argc, char **argv, cli_opts *o);
int cmd_health(int argc, char **argv, cli_opts *o);
int cmd_eval(int argc, char **argv, cli_opts *o);
int cmd_ls(int argc, char **argv, cli_opts *o);
int cmd_version(int argc, char **argv, cli_opts *o);

#endif
