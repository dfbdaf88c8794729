/*
 * libFuzzer target for server/model/requirements.c: parses arbitrary bytes
 * as a request's requirements_txt and checks the contract of
 * px_requirements_parse:
 *   - a refusal is PX_E_INVALID (or PX_E_INTERNAL out of memory) and names
 *     the line ("line N");
 *   - an accepted text's normalised form has `count` lines (or is "-\n"),
 *     each without an option, URL or path, and is accepted again as itself
 *     (normalising is idempotent), so the dependency cache's key is stable.
 *
 * Not wired into Bazel (it needs clang's -fsanitize=fuzzer): scripts/fuzz
 * builds and runs it with the other targets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/model/requirements.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LINES = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* the RPC layer's strings are NUL-terminated: a NUL ends the text */
    px_requirements r;
    px_error err = PX_ERROR_INIT;
    if (px_requirements_parse(text, MAX_LINES, &r, &err) < 0) {
        if (err.code != PX_E_INVALID && err.code != PX_E_INTERNAL)
            abort();
        if (err.code == PX_E_INVALID && !strstr(err.msg, "line ") && !strstr(err.msg, "'-'"))
            abort();
        free(text);
        return 0;
    }
    size_t lines = 0;
    for (const char *p = r.normalised; *p; p++)
        lines += *p == '\n';
    if (r.no_detect ? strcmp(r.normalised, "-\n") != 0 : lines != r.count)
        abort();
    if (r.count > MAX_LINES)
        abort();
    for (const char *line = r.normalised; !r.no_detect && *line;) {
        if (line[0] == '-' || line[0] == '.' || line[0] == '/' || strchr(line, '@'))
            abort();
        const char *nl = strchr(line, '\n');
        if (memmem(line, (size_t)(nl - line), "://", 3) || memchr(line, '/', (size_t)(nl - line)))
            abort();
        line = nl + 1;
    }
    px_requirements again;
    px_error err2 = PX_ERROR_INIT;
    if (px_requirements_parse(r.normalised, MAX_LINES, &again, &err2) < 0)
        abort();
    if (strcmp(again.normalised, r.normalised) != 0 || again.count != r.count)
        abort();
    px_requirements_release(&again);
    px_requirements_release(&r);
    free(text);
    return 0;
}
