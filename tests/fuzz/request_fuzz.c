/*
 * libFuzzer target for the request path of Execute: arbitrary bytes are
 * decoded as an ExecuteRequest with protobuf-c (as rpc/execute.c does with
 * the bytes a client sends) and, when they decode, validated and turned into
 * a job spec by px_codec_job_spec() with the server's default configuration.
 *
 * Checks, beyond the sanitizers: a rejection always says why and is
 * PX_E_INVALID (or PX_E_INTERNAL for out of memory); an accepted spec has
 * every default filled in, limits within the configured maximums, an
 * entrypoint, and a project archive that server/tar accepts again and that
 * contains the entrypoint.
 *
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer,address,undefined);
 * seeds in tests/fuzz/corpus/request/ (tests/fuzz/make_seeds.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyexec/v1/executor.pb-c.h"
#include "server/base/config.h"
#include "server/rpc/codec.h"
#include "server/tar/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_spec(const px_job_spec *spec, const px_config *cfg) {
    if (spec->timeout_s <= 0 || spec->timeout_s > cfg->max_timeout_s)
        abort();
    if (spec->memory_mb <= 0 || spec->memory_mb > cfg->max_memory_mb)
        abort();
    if (spec->disk_mb <= 0 || spec->disk_mb > cfg->max_disk_mb)
        abort();
    if (spec->cpu_shares <= 0 || spec->cpu_shares > cfg->max_cpu_shares)
        abort();
    if (!spec->image || !spec->image[0] || !spec->entrypoint || !spec->entrypoint[0])
        abort();
    if (!spec->tar || spec->tar_len == 0)
        abort();
    if ((int64_t)spec->stdin_len > cfg->max_stdin_bytes || (spec->stdin_len && !spec->stdin_data))
        abort();
    if (spec->n_env > (size_t)cfg->max_env_vars || spec->n_args > (size_t)cfg->max_args ||
        spec->n_pre_commands > (size_t)cfg->max_pre_commands)
        abort();
    for (size_t i = 0; i < spec->n_env; i++)
        if (!strchr(spec->env[i], '='))
            abort();

    px_tar_limits limits;
    px_tar_limits_default(&limits);
    limits.max_entries = (size_t)cfg->max_files;
    limits.max_path_len = (size_t)cfg->max_path_len;
    limits.max_total_bytes = (uint64_t)cfg->max_project_bytes;
    px_error err = PX_ERROR_INIT;
    px_project *again = px_project_from_tar(spec->tar, spec->tar_len, &limits, &err);
    if (!again) {
        fprintf(stderr, "repacked project rejected: %s\n", err.msg);
        abort();
    }
    if (!px_project_has_file(again, spec->entrypoint)) {
        fprintf(stderr, "entrypoint '%s' not in the repacked project\n", spec->entrypoint);
        abort();
    }
    px_project_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Pyexec__V1__ExecuteRequest *req = (Pyexec__V1__ExecuteRequest *)protobuf_c_message_unpack(
        &pyexec__v1__execute_request__descriptor, NULL, size, data);
    if (!req)
        return 0;
    px_config cfg;
    px_config_default(&cfg);
    px_error err = PX_ERROR_INIT;
    px_job_spec *spec = px_codec_job_spec(req, &cfg, &err);
    if (!spec) {
        if (err.msg[0] == '\0' || (err.code != PX_E_INVALID && err.code != PX_E_INTERNAL)) {
            fprintf(stderr, "rejection without a proper error: code %d '%s'\n", (int)err.code,
                    err.msg);
            abort();
        }
    } else {
        check_spec(spec, &cfg);
        px_job_spec_free(spec);
    }
    protobuf_c_message_free_unpacked(&req->base, NULL);
    return 0;
}
