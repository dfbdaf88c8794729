#include "server/model/job.h"

#include <stdlib.h>

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void px_job_spec_free(px_job_spec *spec) {
    if (!spec)
        return;
    free(spec->image);
    free(spec->entrypoint);
    free(spec->tar);
    free(spec->stdin_data);
    free_strv(spec->env, spec->n_env);
    free_strv(spec->args, spec->n_args);
    free_strv(spec->pre_commands, spec->n_pre_commands);
    free(spec->requirements_txt);
    free(spec);
}
