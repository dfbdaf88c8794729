/*
 * The data model: plain data shared by the executor, its sandbox back-ends,
 * the store and the RPC codec: what to run (px_job_spec) and how it ended
 * (status, reason, px_outcome with its usage figures). Enum values equal the
 * proto's so the RPC codec can copy them. This module depends on base only;
 * everything that speaks about executions depends on it, never the reverse.
 */
#ifndef PYEXEC_MODEL_JOB_H
#define PYEXEC_MODEL_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum px_status {
    PX_STATUS_UNSPECIFIED = 0,
    PX_STATUS_PENDING = 1,
    PX_STATUS_RUNNING = 2,
    PX_STATUS_COMPLETED = 3,
    PX_STATUS_FAILED = 4,
    PX_STATUS_KILLED = 5,
} px_status;

typedef enum px_reason {
    PX_REASON_UNSPECIFIED = 0,
    PX_REASON_EXITED = 1,
    PX_REASON_TIMEOUT = 2,
    PX_REASON_MEMORY_LIMIT = 3,
    PX_REASON_OUTPUT_LIMIT = 4,
    PX_REASON_KILLED = 5,
    PX_REASON_CLIENT_CANCELLED = 6,
    PX_REASON_LOST = 7,
    PX_REASON_SANDBOX_ERROR = 8,
} px_reason;

typedef enum px_stream {
    PX_STREAM_STDOUT = 1,
    PX_STREAM_STDERR = 2,
} px_stream;

/* Why someone other than the program ended it. */
typedef enum px_kill_cause {
    PX_KILL_NONE = 0,
    PX_KILL_RPC = 1,      /* Kill RPC: status KILLED, reason KILLED */
    PX_KILL_CANCEL = 2,   /* sync caller went away: KILLED, CLIENT_CANCELLED */
    PX_KILL_SHUTDOWN = 3, /* server shutdown: FAILED, SANDBOX_ERROR */
} px_kill_cause;

/* The proto's names without their prefix ("COMPLETED", "EXITED"), for
 * logs; "UNSPECIFIED" for values outside the enum. Never NULL. */
const char *px_status_name(px_status s);
const char *px_reason_name(px_reason r);

static inline bool px_status_terminal(px_status s) {
    return s == PX_STATUS_COMPLETED || s == PX_STATUS_FAILED || s == PX_STATUS_KILLED;
}

/*
 * Everything needed to run one execution. All strings and arrays are owned by
 * the spec (heap, freed by px_job_spec_free) and already validated by the RPC
 * layer: limits are within the configured maximums and defaults are filled in.
 */
/* Longest tenant name, with its NUL: a name from --auth-tokens, or the
 * subject of a client certificate. */
#define PX_TENANT_MAX 256

typedef struct px_job_spec {
    char execution_id[48];
    /* Who asked: the tenant the record belongs to ("" when the server has no
     * tenants). Set by the door that took the request. */
    char tenant[PX_TENANT_MAX];
    char *image;      /* never empty */
    char *entrypoint; /* normalised path inside /work */
    uint8_t *tar;     /* normalised project archive (px_project_pack) */
    size_t tar_len;
    uint8_t *stdin_data; /* may be NULL when stdin_len == 0 */
    size_t stdin_len;
    char **env; /* "KEY=value", validated */
    size_t n_env;
    char **args; /* script arguments */
    size_t n_args;
    char **pre_commands; /* each run by `sh -c` before the program */
    size_t n_pre_commands;
    char *requirements_txt; /* normalised (server/model/requirements.h); NULL or "": none,
                                * "-\n": none and none detected from imports */
    int timeout_s;          /* > 0 */
    bool network;           /* true: network enabled */
    int memory_mb;          /* > 0 */
    int disk_mb;            /* > 0 */
    int cpu_shares;         /* > 0 */
    bool eval;              /* Eval: run REPL-style and report (px_py_report) */
} px_job_spec;

/* NULL-safe; frees the spec and everything it owns. */
void px_job_spec_free(px_job_spec *spec);

/*
 * What an Eval's code reported from inside the sandbox: the repr() of its
 * last expression, or the uncaught exception it raised. Strings are
 * NUL-terminated UTF-8, NULL when absent; whoever holds the report owns them
 * (see where it is embedded). All zero: nothing reported (Execute, or an
 * Eval that ended without a report, e.g. killed).
 */
typedef struct px_py_report {
    char *result;        /* repr() of the last expression's value */
    char *error_type;    /* the uncaught exception's type, e.g. "NameError" */
    int32_t error_line;  /* its line in the entrypoint file; 0: unknown */
    char *error_message; /* str() of that exception */
} px_py_report;

/* Frees the strings and zeroes *r. NULL-safe. */
void px_py_report_release(px_py_report *r);

/* Deep copy of `src` into *dst (overwritten, not released). Returns 0, or
 * -1 out of memory with *dst left empty. */
int px_py_report_copy(px_py_report *dst, const px_py_report *src);

/* The bytes of the report's strings (what holding it costs, beyond the
 * struct). 0 for an empty report. */
size_t px_py_report_bytes(const px_py_report *r);

/*
 * How an execution ended. Filled by the executor, delivered once through
 * px_job_events.on_done.
 */
typedef struct px_outcome {
    px_status status; /* COMPLETED, FAILED or KILLED */
    px_reason reason;
    bool ran;      /* the program (or its setup) ran: exit_code is meaningful */
    int exit_code; /* process exit code, 128+N for signal N */
    bool output_truncated;
    int64_t peak_memory_bytes; /* 0 if unknown */
    int64_t cpu_time_ms;       /* 0 if unknown */
    int64_t started_at_ms;     /* Unix ms when the program started; 0 if it never did */
    int64_t finished_at_ms;    /* Unix ms of the terminal transition */
    /* For FAILED: why, and the class of the failure when it happened before a
     * container existed (PX_E_PRECONDITION for a missing image,
     * PX_E_UNAVAILABLE for an unreachable engine), else PX_E_INTERNAL. */
    px_code error_code;
    char error[PX_ERROR_MSG_MAX];
    /* Eval's report. Borrowed in the outcome on_done delivers (valid for
     * the call); px_record_finish keeps a copy. */
    px_py_report py;
} px_outcome;

#ifdef __cplusplus
}
#endif

#endif
