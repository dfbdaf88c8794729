/*
 * JSON requests -> the RPC layer's request messages. The door checks only
 * JSON types here ("metadata.config.memory_mb: expected an integer, got a
 * string"); every rule about values (limits, paths, entrypoint, reserved
 * names) is the RPC codec's (px_codec_job_spec), applied to the message
 * built here, so gRPC and HTTP accept exactly the same requests.
 * Private to server/http.
 */
#ifndef PYEXEC_HTTP_TRANSCODE_H
#define PYEXEC_HTTP_TRANSCODE_H

#include <jansson.h>
#include <stdbool.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/error.h"

/* A Metadata message with everything it points to. Strings are borrowed
 * from the JSON document it was parsed from, which must outlive it. */
typedef struct px_http_metadata {
    Pyexec__V1__Metadata meta;
    Pyexec__V1__ExecutionConfig config;
    Google__Protobuf__BoolValue network_disabled;
    char **pre_commands, **env_vars, **script_args; /* arrays owned here */
} px_http_metadata;

/* Fills `m` from the seed's Metadata object `obj` (NULL or JSON null: all
 * defaults). `prefix` names the object in errors ("metadata"). Unknown
 * members and members of the wrong type are PX_E_INVALID naming the member;
 * JSON null is the same as absent. Returns 0, or -1 with `err` (then `m`
 * needs no release). */
int px_http_metadata_parse(px_http_metadata *m, json_t *obj, const char *prefix, px_error *err);

void px_http_metadata_release(px_http_metadata *m);

/* POST /api/v1/eval's body as an EvalRequest. */
typedef struct px_http_eval {
    Pyexec__V1__EvalRequest req;
    Pyexec__V1__ExecutionConfig config;
    Google__Protobuf__BoolValue network_disabled;
    Pyexec__V1__File *files; /* owned here, as are the arrays below */
    Pyexec__V1__File **file_ptrs;
    char **env_vars;
    bool eval_last_expr; /* false: run as a plain program, no `result` */
    bool async;
} px_http_eval;

/* Fills `e` from the body `obj`: code, files [{name, content}], entrypoint,
 * stdin, config, python_version, requirements_txt, env_vars,
 * eval_last_expr, async. Type errors as px_http_metadata_parse's, naming
 * the member. Returns 0, or -1 with `err` (then `e` needs no release). */
int px_http_eval_parse(px_http_eval *e, json_t *obj, px_error *err);

void px_http_eval_release(px_http_eval *e);

#endif
