/*
 * The requirements of one run (see sb_deps_requirements in
 * sandbox_internal.h): the request's own, plus, with --auto-requirements,
 * the distributions its .py files import, found by the detect helper
 * (deps_helper.c) and remembered per image and project in a ring under
 * deps_mu.
 */
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/base/sha256.h"
#include "server/executor/docker/deps_internal.h"
#include "server/executor/docker/sandbox_internal.h"
#include "server/model/requirements.h"

/* Whether normalised `reqs` has a line for the canonical name `name`. */
static bool has_name(const char *reqs, const char *name) {
    size_t n = strlen(name);
    for (const char *p = reqs; p && *p;) {
        if (strcspn(p, "[<>=!~ ;\n") == n && memcmp(p, name, n) == 0)
            return true;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return false;
}

/* Runs the detect helper on spec's project. Returns 0 with *out set to the
 * distributions it found ("name\n" each, normalised; maybe ""), or -1 with
 * `err` set (PX_E_CANCELLED with *end when the run was killed or timed out). */
static int detect(docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                  int64_t deadline, helper_end *end, char **out, px_error *err) {
    const char *args[] = {"detect"};
    _cleanup_free_ helper_io *io = calloc(1, sizeof *io);
    if (!io)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    io->run = run;
    io->in = spec->tar;
    io->in_len = spec->tar_len;
    int code = -1;
    if (sb_ensure_image(sb, spec->image, err) < 0 ||
        sb_deps_run_helper(sb, spec->image, args, 1, io, deadline, end, &code, err) < 0)
        return -1;
    if (*end != HELPER_EXITED)
        return px_error_set(err, PX_E_CANCELLED, "the import detection was stopped");
    _cleanup_json_ json_t *j = json_loads(io->out, 0, NULL);
    json_t *names = json_object_get(j, "requirements");
    if (code != 0 || !json_is_array(names))
        return px_error_set(err, PX_E_INTERNAL, "the import detection helper exited %d", code);
    size_t len = 0;
    _cleanup_free_ char *buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return px_error_set_errno(err, PX_E_INTERNAL, errno, "open_memstream");
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        /* The helper only prints module names, but it parsed the user's
         * code: what it says is checked like a request's line. */
        px_requirements r;
        px_error e = PX_ERROR_INIT;
        const char *name = json_string_value(v);
        if (name && px_requirements_parse(name, 1, &r, &e) == 0) {
            if (r.count == 1 && !strpbrk(r.normalised, "[<>=!~ ;"))
                fputs(r.normalised, f);
            px_requirements_release(&r);
        }
    }
    if (fclose(f) != 0)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    *out = TAKE_PTR(buf);
    return 0;
}

/* The detection remembered for `digest`, copied, or NULL. */
static char *detected_lookup(docker_sandbox *sb, const uint8_t digest[PX_SHA256_LEN]) {
    char *found = NULL;
    pthread_mutex_lock(&sb->deps_mu);
    for (size_t i = 0; i < DETECT_CACHE_SIZE && !found; i++)
        if (sb->detected[i].requirements &&
            memcmp(sb->detected[i].digest, digest, PX_SHA256_LEN) == 0)
            found = strdup(sb->detected[i].requirements);
    pthread_mutex_unlock(&sb->deps_mu);
    return found;
}

static void detected_remember(docker_sandbox *sb, const uint8_t digest[PX_SHA256_LEN],
                              const char *requirements) {
    char *copy = strdup(requirements);
    if (!copy)
        return;
    pthread_mutex_lock(&sb->deps_mu);
    struct sb_detected *slot = &sb->detected[sb->detected_next];
    sb->detected_next = (sb->detected_next + 1) % DETECT_CACHE_SIZE;
    free(slot->requirements);
    memcpy(slot->digest, digest, PX_SHA256_LEN);
    slot->requirements = copy;
    pthread_mutex_unlock(&sb->deps_mu);
}

char *sb_deps_requirements(docker_sandbox *sb, const px_job_spec *spec, px_sandbox_run *run,
                           int64_t *deadline, px_sandbox_result *result) {
    const char *own = spec->requirements_txt ? spec->requirements_txt : "";
    px_error err = PX_ERROR_INIT;
    sb_deps_ensure_loaded(sb);
    if (strcmp(own, "-\n") == 0 || !sb->deps_auto) {
        char *copy = strdup(strcmp(own, "-\n") == 0 ? "" : own);
        if (!copy) {
            px_error_set(&err, PX_E_INTERNAL, "out of memory");
            sb_deps_no_layer(result, &err, HELPER_EXITED);
        }
        return copy;
    }
    uint8_t digest[PX_SHA256_LEN];
    px_sha256_ctx c;
    px_sha256_init(&c);
    px_sha256_update(&c, spec->image, strlen(spec->image));
    px_sha256_update(&c, "\n", 1);
    px_sha256_update(&c, spec->tar, spec->tar_len);
    px_sha256_final(&c, digest);
    _cleanup_free_ char *found = detected_lookup(sb, digest);
    if (!found) {
        sb_deps_start_clock(spec, run, deadline);
        helper_end end = HELPER_EXITED;
        int64_t begun = px_now_mono_ms();
        if (detect(sb, spec, run, *deadline, &end, &found, &err) < 0) {
            px_error_wrap(&err, "detect the project's imports");
            sb_deps_no_layer(result, &err, end);
            return NULL;
        }
        detected_remember(sb, digest, found);
        px_info("docker: deps: execution %s: imports detected in %lld ms: %s", spec->execution_id,
                (long long)(px_now_mono_ms() - begun), found[0] ? found : "none");
    }
    size_t len = 0;
    _cleanup_free_ char *merged = NULL, *added = NULL;
    size_t added_len = 0;
    FILE *m = open_memstream(&merged, &len);
    FILE *a = m ? open_memstream(&added, &added_len) : NULL;
    if (a) {
        fputs(own, m);
        for (char *save = NULL, *line = strtok_r(found, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (has_name(own, line))
                continue; /* the request's own line for it wins */
            fprintf(m, "%s\n", line);
            fprintf(a, " %s", line);
        }
    }
    if (!m || !a || fclose(a) != 0 || fclose(m) != 0) {
        if (m && !a)
            fclose(m);
        px_error_set(&err, PX_E_INTERNAL, "out of memory");
        sb_deps_no_layer(result, &err, HELPER_EXITED);
        return NULL;
    }
    if (added_len > 0) {
        char line[1024];
        snprintf(line, sizeof line,
                 "pyexec: install: requirements detected from the project's imports:%.900s\n",
                 added);
        sb_deps_say(run, line);
    }
    px_requirements r;
    if (px_requirements_parse(merged, SIZE_MAX, &r, &err) < 0) {
        px_error_wrap(&err, "the requirements with the detected ones");
        sb_deps_no_layer(result, &err, HELPER_EXITED);
        return NULL;
    }
    return r.normalised;
}
