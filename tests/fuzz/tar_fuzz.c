/*
 * libFuzzer target for server/tar: parses arbitrary bytes as a client's tar
 * archive and, when they are accepted, packs the project and checks that
 * the packed archive parses back to the same entries.
 *
 * Not wired into Bazel (it needs clang's -fsanitize=fuzzer): scripts/fuzz
 * builds and runs it with the other targets. By hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -I. \
 *       tests/fuzz/tar_fuzz.c server/tar/tar.c server/base/error.c -larchive -o tar_fuzz
 *   ./tar_fuzz -max_total_time=30 -max_len=65536 tests/fuzz/corpus/tar
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/tar/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits so the fuzzer reaches every limit check quickly. */
static void fuzz_limits(px_tar_limits *limits) {
    px_tar_limits_default(limits);
    limits->max_entries = 64;
    limits->max_path_len = 256;
    limits->max_path_depth = 8;
    limits->max_total_bytes = 1 << 20;
}

static void check_same(const px_project *a, const px_project *b) {
    if (a->n_entries != b->n_entries || a->total_bytes != b->total_bytes)
        abort();
    for (size_t i = 0; i < a->n_entries; i++) {
        const px_entry *x = &a->entries[i];
        const px_entry *y = &b->entries[i];
        if (x->type != y->type || strcmp(x->path, y->path) != 0 || x->mode != y->mode ||
            x->len != y->len || (x->len && memcmp(x->data, y->data, x->len) != 0))
            abort();
        if (x->type == PX_ENTRY_SYMLINK && strcmp(x->link_target, y->link_target) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    px_tar_limits limits;
    fuzz_limits(&limits);
    px_error err = PX_ERROR_INIT;
    px_project *project = px_project_from_tar(data, size, &limits, &err);
    if (!project) {
        if (err.code == PX_OK || err.msg[0] == '\0')
            abort(); /* a failure must say why */
        return 0;
    }
    px_error_clear(&err);
    const char *entry = px_project_entrypoint(project, NULL, &err);
    if (entry && !px_project_has_file(project, entry))
        abort();

    uint8_t *packed = NULL;
    size_t packed_len = 0;
    if (px_project_pack(project, &packed, &packed_len, &err) != 0)
        abort();
    px_project *again = px_project_from_tar(packed, packed_len, &limits, &err);
    if (!again) {
        fprintf(stderr, "packed archive rejected: %s\n", err.msg);
        abort();
    }
    check_same(project, again);
    px_project_free(again);
    free(packed);
    px_project_free(project);
    return 0;
}
