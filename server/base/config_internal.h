/*
 * Private to the configuration's files (see config.h):
 *   config_flags.c   the settings' table (flag, type, range, help), the
 *                    defaults and --help;
 *   config_images.c  the image queries (python versions, allowed images);
 *   config.c         parsing: flags, environment, the --config file, and
 *                    the checks of values and of their combinations.
 */
#ifndef PYEXEC_BASE_CONFIG_INTERNAL_H
#define PYEXEC_BASE_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "server/base/config.h"

#define MIB (INT64_C(1) << 20)

typedef enum opt_kind {
    OPT_STR,
    OPT_INT,
    OPT_I64,
    OPT_LEVEL,
    OPT_FORMAT, /* log_format: text|json */
    OPT_PYIMAGE,
    OPT_IMAGES, /* allowed_images: patterns, checked */
    OPT_PULL,   /* pull_missing: never|missing */
    OPT_BOOL,   /* a flag without a value (--insecure); env 1|true|0|false */
} opt_kind;

/* One setting: its flag (without "--"), its type, where it lives in
 * px_config, the accepted range for numbers, and the default of the
 * OPT_STR, OPT_INT and OPT_I64 kinds (px_config_default sets the others). */
typedef struct opt {
    const char *name;
    opt_kind kind;
    size_t offset;
    size_t size; /* for OPT_STR: the buffer size */
    int64_t min, max;
    const char *help;
    int64_t def;         /* OPT_INT, OPT_I64 */
    const char *def_str; /* OPT_STR */
} opt;

/* Every setting, in --help's order (config_flags.c). */
extern const opt px_config_opts[];
extern const size_t px_config_n_opts;

/* "max_timeout_s" -> "max-timeout-s" (the flag, without "--"). */
void px_config_flag_name(const opt *o, char *out, size_t n);
/* "max_timeout_s" -> "PYEXEC_MAX_TIMEOUT_S" (the environment variable). */
void px_config_env_name(const opt *o, char *out, size_t n);
/* The setting whose flag is the `len` bytes of `name`, or NULL. */
const opt *px_config_find_flag(const char *name, size_t len);

#endif
