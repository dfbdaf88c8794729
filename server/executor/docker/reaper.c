/*
 * The Docker sandbox back-end's reaper (see sandbox_internal.h).
 *
 * The reaper thread wakes every reaper_interval_ms (a timed condition wait,
 * so destroy() stops it at once) and removes containers of this instance
 * that are not in the live set. Names enter the live set before create and
 * leave it after removal, so the reaper never races a run or the pool.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/executor/docker/docker_client.h"
#include "server/executor/docker/sandbox_internal.h"

/* ---- reaper ---- */

/* Removes this instance's containers that no live run owns. Returns the
 * number removed, or -1 with `err` set if the list failed. */
int sb_reap(docker_sandbox *sb, px_error *err) {
    _cleanup_json_ json_t *filters = json_pack("{s:[s,s]}", "label", "pyexec.service=pyexecd",
                                               "pyexec.instance=");
    if (!filters)
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    _cleanup_free_ char *inst = NULL;
    if (asprintf(&inst, "pyexec.instance=%s", sb->instance) < 0) {
        inst = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    json_array_set_new(json_object_get(filters, "label"), 1, json_string(inst));
    _cleanup_free_ char *fs = json_dumps(filters, JSON_COMPACT);
    _cleanup_free_ char *efs = fs ? px_docker_escape(fs, NULL) : NULL;
    _cleanup_free_ char *path = NULL;
    if (!efs || asprintf(&path, "/containers/json?all=1&filters=%s", efs) < 0) {
        path = NULL;
        return px_error_set(err, PX_E_INTERNAL, "out of memory");
    }
    _cleanup_json_ json_t *list = NULL;
    if (sb_api(sb, "GET", path, NULL, 0, &list, err) < 0)
        return px_error_wrap(err, "list containers");
    int removed = 0;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id"));
        const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
        if (!cid)
            continue;
        if (name && name[0] == '/')
            name++;
        if (name && sb_live_has(sb, name))
            continue;
        px_info("docker: reaper removes orphan container '%.12s' (%s)", cid, name ? name : "?");
        sb_remove_container(sb, cid);
        removed++;
    }
    return removed;
}

void *sb_reaper_main(void *arg) {
    docker_sandbox *sb = arg;
    pthread_mutex_lock(&sb->reaper_mu);
    while (!sb->reaper_stopping) {
        int64_t until = px_now_mono_ms() + sb->reaper_interval_ms;
        while (!sb->reaper_stopping &&
               px_cond_wait_until(&sb->reaper_cond, &sb->reaper_mu, until) != ETIMEDOUT) {
        }
        if (sb->reaper_stopping)
            break;
        pthread_mutex_unlock(&sb->reaper_mu);
        px_error err = PX_ERROR_INIT;
        if (sb_reap(sb, &err) < 0)
            px_warn("docker: reaper: %s", err.msg);
        pthread_mutex_lock(&sb->reaper_mu);
    }
    pthread_mutex_unlock(&sb->reaper_mu);
    return NULL;
}
