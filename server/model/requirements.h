/*
 * requirements_txt: what a request may ask the server to install, checked
 * once for every door (gRPC Execute and Eval, HTTP) before anything runs.
 *
 * A line is a requirement in the form PEP 508 gives a named requirement,
 * without a URL:
 *   name [ "[" extra ("," extra)* "]" ] [ specifier ("," specifier)* ]
 *        [ ";" marker ]
 * where a specifier is one of ~= == != <= >= < > === followed by a version
 * ([A-Za-z0-9.*+!_-]), the specifiers may be wrapped in parentheses, and a
 * marker is PEP 508's environment-marker expression (its variables, its
 * operators, quoted strings, "and", "or", parentheses). Blank lines and
 * comments ("#" at the start of a line or after whitespace) are ignored.
 * Everything else is refused, naming the line: options ("-i", "--index-url",
 * "-e", "-r", "-c", "-f", "--extra-index-url", "--trusted-host", ...),
 * URLs and direct references ("name @ url", "git+https://..."), paths
 * ("./pkg", "/x.whl", "dir/pkg", "pkg.whl", "pkg.tar.gz"), line
 * continuations and environment variables ("${VAR}").
 *
 * The one text "-" (blank and comment lines aside) names no requirement
 * and asks the server not to detect any from the project's imports either
 * (--auto-requirements); its normalised form is "-\n".
 *
 * The normalised form is what the dependency cache keys on: one requirement
 * per line, each with its canonical name (lower case, runs of "-", "_", "."
 * as one "-"), its extras canonical and sorted, its specifiers without
 * blanks and sorted, its marker's tokens separated by single blanks; the
 * lines sorted, duplicates dropped, each ending in "\n". Two texts that ask
 * for the same requirements in another order or spelling normalise alike.
 *
 * Pure functions; thread-safe.
 */
#ifndef PYEXEC_MODEL_REQUIREMENTS_H
#define PYEXEC_MODEL_REQUIREMENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "server/base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest requirement line, bytes (a fixed bound: a real one is far shorter). */
#define PX_REQUIREMENT_LINE_MAX 1024

typedef struct px_requirements {
    char *normalised; /* the normalised form ("" when there is none, "-\n" for "-"); owned */
    size_t count;     /* requirements in it */
    bool no_detect;   /* the text was "-": detect none from imports */
} px_requirements;

/* Checks `text` (NUL-terminated; NULL is "") against the grammar above, with
 * at most `max_lines` requirements, and fills *out (released with
 * px_requirements_release). Returns 0, or -1 with `err` set to PX_E_INVALID
 * and a message naming the line, e.g. "line 2 ('-i http://x'): options are
 * not allowed ...", or PX_E_INTERNAL out of memory; *out is then empty. */
int px_requirements_parse(const char *text, size_t max_lines, px_requirements *out, px_error *err);

/* Frees what *r owns and zeroes it. NULL-safe. */
void px_requirements_release(px_requirements *r);

/* Writes the canonical form of a distribution name (`name`, `len` bytes)
 * into out[cap]: lower case, each run of "-", "_", "." as one "-".
 * Returns 0, or -1 if it does not fit. */
int px_requirement_canonical_name(const char *name, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
