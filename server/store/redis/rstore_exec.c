/*
 * The Redis store's executions (see rstore.h): claiming jobs from the
 * queue, the owner's writes (running, output, the end), kills, and reading
 * records and output logs back into C structs.
 */
#include "server/store/redis/rstore.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/cleanup.h"
#include "server/base/clock.h"
#include "server/store/redis/conn.h"
#include "server/store/redis/rstore_internal.h"
#include "server/store/redis/scripts.h"

static void uncertain_add(px_rstore *rs, const char *id, const char *qid, int64_t token) {
    pthread_mutex_lock(&rs->mu);
    if (rs->n_uncertain < MAX_UNCERTAIN) {
        uncertain_claim *u = &rs->uncertain[rs->n_uncertain++];
        snprintf(u->id, sizeof u->id, "%s", id);
        snprintf(u->qid, sizeof u->qid, "%s", qid);
        u->token = token;
    }
    pthread_mutex_unlock(&rs->mu);
}

static bool uncertain_pop(px_rstore *rs, uncertain_claim *out) {
    pthread_mutex_lock(&rs->mu);
    bool any = rs->n_uncertain > 0;
    if (any)
        *out = rs->uncertain[--rs->n_uncertain];
    pthread_mutex_unlock(&rs->mu);
    return any;
}

/* Runs the claim script for (id, qid); fills *out on success. */
static int claim_entry(px_rstore *rs, px_redis_conn *c, const char *id, const char *qid,
                       int64_t token, bool resume, px_rstore_job *out, px_error *err) {
    char tok[24];
    NUM(tok, token);
    const char *argv[] = {id, qid, rs->node, tok, resume ? "1" : "0"};
    _cleanup_reply_ redisReply *r = rstore_eval_on(rs, c, PX_RSCRIPT_CLAIM, 5, argv, NULL, false,
                                                   err);
    if (!r) {
        if (err && (err->code == PX_E_UNAVAILABLE || err->code == PX_E_TIMEOUT))
            uncertain_add(rs, id, qid, token);
        return px_error_wrap(err, "claim '%s'", id);
    }
    long long kind = rstore_elem_int(r, 0, -2);
    if (kind == -1)
        return PX_RSTORE_FENCED;
    if (kind == 0)
        return 0;
    const redisReply *job = rstore_elem_str(r, 1);
    if (kind != 1 || !job)
        return rstore_bad_reply(PX_RSCRIPT_CLAIM, err);
    if (rstore_wait_replicas(rs, c, err) < 0) {
        /* Not started: a failover could lose the claim and let another
         * worker run the job too. The next claim resumes this one (and
         * waits again); until then the job stays claimed, unstarted. */
        uncertain_add(rs, id, qid, token);
        return px_error_wrap(err, "claim '%s'", id);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    out->job = malloc(job->len ? job->len : 1);
    if (!out->job)
        return px_error_set(err, PX_E_INTERNAL, "claim: out of memory");
    memcpy(out->job, job->str, job->len);
    out->job_len = job->len;
    return PX_RSTORE_DONE;
}

/* Reads one entry of the queue for this node: its own pending entries with
 * `from` "0" (no wait), new ones with ">" (waiting up to block_ms). Returns
 * 1 with qid and id set (borrowed from the reply; id NULL if the entry was
 * deleted), 0 if there was none, -1 on error. */
static int read_queue(px_rstore *rs, px_redis_conn *c, const char *from, int64_t block_ms,
                      redisReply **reply, const redisReply **qid, const redisReply **id,
                      px_error *err) {
    char block[24];
    NUM(block, block_ms);
    const char *wait[] = {"XREADGROUP", "GROUP", "workers", rs->node,      "COUNT", "1",
                          "BLOCK",      block,   "STREAMS", rs->queue_key, from};
    const char *now[] = {"XREADGROUP", "GROUP",   "workers",     rs->node, "COUNT",
                         "1",          "STREAMS", rs->queue_key, from};
    /* BLOCK 0 would wait forever: "do not wait" is no BLOCK at all. */
    bool blocking = strcmp(from, ">") == 0 && block_ms > 0;
    redisReply *r = blocking ? px_redis_conn_call(c, PX_ARRAY_SIZE(wait), wait, NULL, block_ms,
                                                  false, err)
                             : px_redis_conn_call(c, PX_ARRAY_SIZE(now), now, NULL, 0, false, err);
    if (!r)
        return px_error_wrap(err, "read the queue");
    *reply = r;
    /* [[queue, [[qid, [field, value, ...] or nil], ...]]] or nil. */
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        return rstore_bad_reply(PX_RSCRIPT_CLAIM, err);
    const redisReply *entries = r->element[0]->element[1];
    if (entries->elements == 0)
        return 0;
    const redisReply *e = entries->element[0];
    *qid = rstore_elem_str(e, 0);
    if (!*qid)
        return rstore_bad_reply(PX_RSCRIPT_CLAIM, err);
    const redisReply *fields = e->elements > 1 ? e->element[1] : NULL;
    *id = fields ? rstore_elem_str(fields, 1) : NULL;
    if (*id && (*id)->len != PX_ID_LEN)
        *id = NULL;
    return 1;
}

int px_rstore_claim(px_rstore *rs, int64_t token, int64_t block_ms, px_rstore_job *out,
                    px_error *err) {
    unsigned slot;
    px_redis_conn *c = rstore_pool_take(rs, &slot, err);
    if (!c)
        return -1;
    int rc;
    uncertain_claim u;
    pthread_mutex_lock(&rs->mu);
    bool recheck = rs->pel_dirty;
    rs->pel_dirty = false;
    pthread_mutex_unlock(&rs->mu);
    if (uncertain_pop(rs, &u)) {
        /* A claim whose reply was lost: finish it first (only with the same
         * token; a new lease reaped it already). */
        rc = u.token == token ? claim_entry(rs, c, u.id, u.qid, token, true, out, err) : 0;
        rstore_pool_give(rs, slot);
        return rc;
    }
    /* After a lost XREADGROUP reply an entry may sit in this node's pending
     * list unseen: look there first ("0"), then at new entries (">"). */
    _cleanup_reply_ redisReply *r = NULL;
    const redisReply *qid = NULL, *id = NULL;
    rc = 0;
    if (recheck)
        rc = read_queue(rs, c, "0", 0, &r, &qid, &id, err);
    if (rc == 0) {
        if (r) {
            freeReplyObject(r);
            r = NULL;
        }
        rc = read_queue(rs, c, ">", block_ms, &r, &qid, &id, err);
    }
    if (rc < 0 && err && (err->code == PX_E_UNAVAILABLE || err->code == PX_E_TIMEOUT)) {
        pthread_mutex_lock(&rs->mu);
        rs->pel_dirty = true;
        pthread_mutex_unlock(&rs->mu);
    }
    if (rc == 1 && !id) {
        /* Deleted meanwhile (e.g. killed while queued): acknowledge. */
        const char *ack[] = {"XACK", rs->queue_key, "workers", qid->str};
        redisReply *a = px_redis_conn_call(c, 4, ack, NULL, 0, true, err);
        rc = a ? 0 : px_error_wrap(err, "acknowledge a deleted queue entry");
        if (a)
            freeReplyObject(a);
    } else if (rc == 1) {
        rc = claim_entry(rs, c, id->str, qid->str, token, false, out, err);
    }
    rstore_pool_give(rs, slot);
    return rc;
}

int px_rstore_set_running(px_rstore *rs, const char *id, int64_t token, int64_t started_at_ms,
                          px_error *err) {
    char tok[24], sa[24];
    NUM(tok, token);
    NUM(sa, started_at_ms);
    const char *argv[] = {id, tok, sa};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_SET_RUNNING, 3, argv, NULL, true,
                                                err);
    if (!r)
        return px_error_wrap(err, "execution '%s': set running", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_SET_RUNNING, err);
    return rstore_owner_result(r->integer, id, err);
}

int px_rstore_append(px_rstore *rs, const char *id, int64_t token, int64_t offset, px_stream stream,
                     const uint8_t *data, size_t len, px_error *err) {
    if (len == 0 || offset < 0)
        return px_error_set(err, PX_E_INVALID, "append: empty chunk or negative offset");
    char tok[24], off[24], st[24];
    NUM(tok, token);
    NUM(off, offset);
    NUM(st, (int)stream);
    const char *argv[] = {id, tok, off, st, (const char *)data};
    size_t lens[] = {strlen(id), strlen(tok), strlen(off), strlen(st), len};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_APPEND, 5, argv, lens, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': append", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_APPEND, err);
    return r->integer > 0 ? PX_RSTORE_DONE : rstore_owner_result(r->integer, id, err);
}

int px_rstore_finish(px_rstore *rs, const char *id, int64_t token, const px_outcome *o,
                     px_error *err) {
    char tok[24], ttl[24], st[24], rsn[24], ex[24], mem[24], cpu[24], sa[24], fa[24], ec[24];
    NUM(tok, token);
    NUM(ttl, rs->cfg.retention_ms);
    NUM(st, (int)o->status);
    NUM(rsn, (int)o->reason);
    NUM(ex, o->exit_code);
    NUM(mem, o->peak_memory_bytes);
    NUM(cpu, o->cpu_time_ms);
    NUM(sa, o->started_at_ms);
    NUM(fa, o->finished_at_ms);
    NUM(ec, (int)o->error_code);
    char pel[24];
    NUM(pel, o->py.error_line);
    const char *argv[] = {id,
                          tok,
                          ttl,
                          st,
                          rsn,
                          o->ran ? "1" : "0",
                          ex,
                          o->output_truncated ? "1" : "0",
                          mem,
                          cpu,
                          sa,
                          fa,
                          ec,
                          o->error,
                          o->py.result ? "1" : "0",
                          o->py.result ? o->py.result : "",
                          o->py.error_type ? o->py.error_type : "",
                          pel,
                          o->py.error_message ? o->py.error_message : ""};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_FINISH, 19, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': finish", id);
    if (r->type != REDIS_REPLY_INTEGER)
        return rstore_bad_reply(PX_RSCRIPT_FINISH, err);
    return rstore_owner_result(r->integer, id, err);
}

int px_rstore_kill(px_rstore *rs, const char *id, px_kill_cause cause,
                   char owner_out[PX_RSTORE_NAME_MAX + 1], px_error *err) {
    owner_out[0] = '\0';
    if (cause != PX_KILL_RPC && cause != PX_KILL_CANCEL)
        return px_error_set(err, PX_E_INVALID, "kill: cause %d is not a client's", (int)cause);
    char cs[24], ttl[24], now[24], st[24], rsn[24];
    NUM(cs, (int)cause);
    NUM(ttl, rs->cfg.retention_ms);
    NUM(now, px_now_unix_ms());
    NUM(st, (int)PX_STATUS_KILLED);
    NUM(rsn, (int)(cause == PX_KILL_RPC ? PX_REASON_KILLED : PX_REASON_CLIENT_CANCELLED));
    const char *argv[] = {id, cs, ttl, now, st, rsn};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_KILL, 6, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': kill", id);
    long long kind = rstore_elem_int(r, 0, -3);
    switch (kind) {
    case -2: return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    case 0: return PX_RSTORE_KILL_ENDED;
    case 1: return PX_RSTORE_KILL_QUEUED;
    case 2: {
        const redisReply *own = rstore_elem_str(r, 1);
        if (!own || own->len > PX_RSTORE_NAME_MAX)
            return rstore_bad_reply(PX_RSCRIPT_KILL, err);
        memcpy(owner_out, own->str, own->len);
        owner_out[own->len] = '\0';
        return PX_RSTORE_KILL_SENT;
    }
    default: return rstore_bad_reply(PX_RSCRIPT_KILL, err);
    }
}

/* ---- reading ---- */

static void copy_field(char *dst, size_t size, const redisReply *v) {
    size_t n = v->len < size - 1 ? v->len : size - 1;
    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

static int dup_bytes(const redisReply *v, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!v || v->len == 0)
        return 0;
    *data = malloc(v->len);
    if (!*data)
        return -1;
    memcpy(*data, v->str, v->len);
    *len = v->len;
    return 0;
}

int px_rstore_get(px_rstore *rs, const char *id, bool with_output, px_rstore_view *view,
                  px_error *err) {
    memset(view, 0, sizeof *view);
    const char *argv[] = {id, with_output ? "1" : "0"};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_GET, 2, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': get", id);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_ARRAY)
        return rstore_bad_reply(PX_RSCRIPT_GET, err);
    px_record_view *v = &view->record;
    snprintf(v->id, sizeof v->id, "%s", id);
    px_outcome *o = &v->outcome;
    const redisReply *h = r->element[0];
    bool has_result = false;
    bool oom = false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *val = h->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue;
        long long n = strtoll(val->str, NULL, 10);
        const char *f = k->str;
        if (!strcmp(f, "st"))
            v->status = (px_status)n;
        else if (!strcmp(f, "rs"))
            o->reason = (px_reason)n;
        else if (!strcmp(f, "ran"))
            o->ran = n != 0;
        else if (!strcmp(f, "ex"))
            o->exit_code = (int)n;
        else if (!strcmp(f, "tr"))
            o->output_truncated = n != 0;
        else if (!strcmp(f, "mem"))
            o->peak_memory_bytes = n;
        else if (!strcmp(f, "cpu"))
            o->cpu_time_ms = n;
        else if (!strcmp(f, "sa"))
            o->started_at_ms = n;
        else if (!strcmp(f, "fa"))
            o->finished_at_ms = n;
        else if (!strcmp(f, "ec"))
            o->error_code = (px_code)n;
        else if (!strcmp(f, "er"))
            copy_field(o->error, sizeof o->error, val);
        else if (!strcmp(f, "len"))
            v->log_len = n;
        else if (!strcmp(f, "own"))
            copy_field(view->owner, sizeof view->owner, val);
        else if (!strcmp(f, "fen"))
            view->token = n;
        else if (!strcmp(f, "kil"))
            view->kill = (px_kill_cause)n;
        else if (!strcmp(f, "ca"))
            view->created_at_ms = n;
        else if (!strcmp(f, "rid"))
            copy_field(view->request_id, sizeof view->request_id, val);
        else if (!strcmp(f, "dig"))
            copy_field(view->digest, sizeof view->digest, val);
        else if (!strcmp(f, "tn"))
            copy_field(view->tenant, sizeof view->tenant, val);
        else if (!strcmp(f, "prh"))
            has_result = n != 0;
        else if (!strcmp(f, "prs"))
            oom |= !(o->py.result = strndup(val->str, val->len));
        else if (!strcmp(f, "pet") && val->len > 0)
            oom |= !(o->py.error_type = strndup(val->str, val->len));
        else if (!strcmp(f, "pel"))
            o->py.error_line = (int32_t)n;
        else if (!strcmp(f, "pem") && val->len > 0)
            oom |= !(o->py.error_message = strndup(val->str, val->len));
    }
    if (!has_result) {
        free(o->py.result);
        o->py.result = NULL;
    }
    if (oom) {
        px_record_view_release(v);
        return px_error_set(err, PX_E_INTERNAL, "get: out of memory");
    }
    o->status = px_status_terminal(v->status) ? v->status : PX_STATUS_UNSPECIFIED;
    if (dup_bytes(rstore_elem_str(r, 1), &v->stdout_data, &v->stdout_len) != 0 ||
        dup_bytes(rstore_elem_str(r, 2), &v->stderr_data, &v->stderr_len) != 0) {
        px_record_view_release(v);
        return px_error_set(err, PX_E_INTERNAL, "get: out of memory");
    }
    return 0;
}

int px_rstore_read(px_rstore *rs, const char *id, int64_t offset, size_t max_len,
                   px_log_chunk *chunk, px_error *err) {
    memset(chunk, 0, sizeof *chunk);
    if (offset < 0)
        return px_error_set(err, PX_E_INVALID, "negative offset %lld", (long long)offset);
    if (max_len == 0)
        return px_error_set(err, PX_E_INVALID, "read of 0 bytes");
    char off[24], max[24];
    NUM(off, offset);
    NUM(max, max_len);
    const char *argv[] = {id, off, max};
    _cleanup_reply_ redisReply *r = rstore_eval(rs, PX_RSCRIPT_READ, 3, argv, NULL, true, err);
    if (!r)
        return px_error_wrap(err, "execution '%s': read", id);
    long long kind = rstore_elem_int(r, 0, -3);
    if (kind == -2)
        return px_error_set(err, PX_E_NOT_FOUND, "execution '%s' not found", id);
    bool terminal = px_status_terminal((px_status)rstore_elem_int(r, 1, 0));
    long long end = rstore_elem_int(r, 2, 0);
    if (kind == 0) {
        if (!terminal)
            return PX_READ_WAIT;
        if (offset == end)
            return PX_READ_EOF;
        return px_error_set(err, PX_E_OUT_OF_RANGE,
                            "offset %lld is past the end of the output (%lld bytes)",
                            (long long)offset, end);
    }
    const redisReply *data = rstore_elem_str(r, 4);
    if (kind != 1 || !data || data->len == 0)
        return rstore_bad_reply(PX_RSCRIPT_READ, err);
    if (dup_bytes(data, &chunk->data, &chunk->len) != 0)
        return px_error_set(err, PX_E_INTERNAL, "read: out of memory");
    chunk->stream = (px_stream)rstore_elem_int(r, 3, PX_STREAM_STDOUT);
    chunk->offset = offset;
    return PX_READ_DATA;
}
