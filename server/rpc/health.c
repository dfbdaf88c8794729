/*
 * grpc.health.v1.Health: Check answers from the status the health thread
 * keeps (it pings the Docker engine every cfg->health_interval_ms), so a
 * Check never waits on the engine. Watch sends the current status, then
 * every change, with at most one message in flight per call: a change that
 * arrives while a send is outstanding is sent when it completes.
 *
 * Service names: "" (the server) and "pyexec.v1.ExecutorService" are known;
 * any other is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch.
 *
 * A Check answered NOT_SERVING says why in its trailing metadata
 * (PX_HEALTH_REASON_KEY), e.g. "GET /_ping: Docker engine at
 * /var/run/docker.sock: connect: No such file or directory"; the standard
 * response message has no field for it. Every change of the status is
 * logged once, with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "server/base/cleanup.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/rpc/call.h"

struct px_health_watch {
    px_call base;          /* first: freed by px_call_unref */
    px_health_watch *next; /* in srv->watches; under srv->mu */
    bool listed;           /* under srv->mu */
    bool known;            /* the service name is known */
    bool sending;          /* under base.mu */
    int last_sent;         /* under base.mu; -1 before the first send */
};

static bool known_service(const char *name) {
    return name[0] == '\0' || strcmp(name, "pyexec.v1.ExecutorService") == 0;
}

static int current(px_rpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    int s = srv->serving;
    pthread_mutex_unlock(&srv->mu);
    return s;
}

/* The status, and into `reason` why it is not SERVING ("" if it is). */
static int current_with_reason(px_rpc_server *srv, char *reason, size_t n) {
    pthread_mutex_lock(&srv->mu);
    int s = srv->serving;
    snprintf(reason, n, "%s", srv->health_reason);
    pthread_mutex_unlock(&srv->mu);
    return s;
}

bool px_rpc_server_serving(px_rpc_server *srv, char *reason, size_t n) {
    return current_with_reason(srv, reason, n) ==
           GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
}

void px_handle_health_check(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload) {
    static const px_call_ops ops = {0};
    px_call *call = px_call_new(sizeof *call, srv, gcall, &payload, &ops);
    if (!call)
        return;
    call->rpc = "Health/Check";
    px_error err = PX_ERROR_INIT;
    Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)
        px_call_decode(payload, &grpc__health__v1__health_check_request__descriptor, &err);
    if (!req) {
        px_call_finish_error(call, &err);
    } else if (!known_service(req->service)) {
        px_quoted q;
        px_error_set(&err, PX_E_NOT_FOUND, "unknown service '%s'", px_quote_str(&q, req->service));
        px_call_finish_error(call, &err);
    } else {
        char reason[sizeof srv->health_reason];
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)current_with_reason(
            srv, reason, sizeof reason);
        px_call_finish_with_trailer(call, &resp.base, GRPC_STATUS_OK, NULL, PX_HEALTH_REASON_KEY,
                                    reason[0] ? reason : NULL);
    }
    if (req)
        protobuf_c_message_free_unpacked(&req->base, NULL);
    px_call_unref(call);
}

static void watch_pump_locked(px_health_watch *w);

static void on_watch_sent(px_call *call, bool ok) {
    px_health_watch *w = (px_health_watch *)call;
    pthread_mutex_lock(&call->mu);
    w->sending = false;
    if (ok)
        watch_pump_locked(w);
    pthread_mutex_unlock(&call->mu);
}

/* Sends the current status if it differs from the last one sent. */
static void watch_pump_locked(px_health_watch *w) {
    if (w->sending || w->base.finished)
        return;
    int status = w->known
                     ? current(w->base.srv)
                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (status == w->last_sent)
        return;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    if (px_call_send_locked(&w->base, &resp.base, on_watch_sent)) {
        w->sending = true;
        w->last_sent = status;
    }
}

static void unlist(px_health_watch *w) {
    px_rpc_server *srv = w->base.srv;
    pthread_mutex_lock(&srv->mu);
    bool was_listed = w->listed;
    if (w->listed) {
        for (px_health_watch **p = &srv->watches; *p; p = &(*p)->next) {
            if (*p == w) {
                *p = w->next;
                break;
            }
        }
        w->listed = false;
    }
    pthread_mutex_unlock(&srv->mu);
    if (was_listed)
        px_call_unref(&w->base); /* the list's reference */
}

static void on_watch_close(px_call *call, bool cancelled) {
    (void)cancelled;
    unlist((px_health_watch *)call);
}

void px_handle_health_watch(px_rpc_server *srv, grpc_call *gcall, grpc_byte_buffer *payload) {
    static const px_call_ops ops = {.on_close = on_watch_close};
    px_health_watch *w = px_call_new(sizeof *w, srv, gcall, &payload, &ops);
    if (!w)
        return;
    w->last_sent = -1;
    px_error err = PX_ERROR_INIT;
    Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)
        px_call_decode(payload, &grpc__health__v1__health_check_request__descriptor, &err);
    if (!req) {
        px_call_finish_error(&w->base, &err);
        px_call_unref(&w->base);
        return;
    }
    w->known = known_service(req->service);
    protobuf_c_message_free_unpacked(&req->base, NULL);

    pthread_mutex_lock(&srv->mu);
    bool closing = srv->shutting_down;
    if (!closing) {
        px_call_ref(&w->base);
        w->listed = true;
        w->next = srv->watches;
        srv->watches = w;
    }
    pthread_mutex_unlock(&srv->mu);
    if (closing) {
        px_error_set(&err, PX_E_UNAVAILABLE, "server is shutting down");
        px_call_finish_error(&w->base, &err);
    } else {
        pthread_mutex_lock(&w->base.mu);
        watch_pump_locked(w);
        pthread_mutex_unlock(&w->base.mu);
    }
    px_call_unref(&w->base);
}

/* Runs `fn` on every listed watch, each pinned by a reference, with no
 * server lock held while `fn` runs. */
static void for_each_watch(px_rpc_server *srv, void (*fn)(px_health_watch *)) {
    pthread_mutex_lock(&srv->mu);
    size_t n = 0;
    for (px_health_watch *w = srv->watches; w; w = w->next)
        n++;
    px_health_watch **all = calloc(n ? n : 1, sizeof *all);
    size_t k = 0;
    for (px_health_watch *w = srv->watches; w && all; w = w->next) {
        px_call_ref(&w->base);
        all[k++] = w;
    }
    pthread_mutex_unlock(&srv->mu);
    for (size_t i = 0; i < k; i++) {
        fn(all[i]);
        px_call_unref(&all[i]->base);
    }
    free(all);
}

static void pump_one(px_health_watch *w) {
    pthread_mutex_lock(&w->base.mu);
    watch_pump_locked(w);
    pthread_mutex_unlock(&w->base.mu);
}

void px_health_set(px_rpc_server *srv, int serving, const char *reason) {
    bool is_serving = serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (is_serving || !reason)
        reason = "";
    pthread_mutex_lock(&srv->mu);
    bool changed = srv->serving != serving || !srv->logged_health;
    bool shutting_down = srv->shutting_down;
    srv->serving = serving;
    srv->logged_health = true;
    snprintf(srv->health_reason, sizeof srv->health_reason, "%s", reason);
    pthread_mutex_unlock(&srv->mu);
    if (!changed)
        return;
    if (is_serving)
        px_info("health: SERVING");
    else
        px_log(shutting_down ? PX_LOG_INFO : PX_LOG_WARN, "health: NOT_SERVING: %s",
               reason[0] ? reason : "(no reason given)");
    for_each_watch(srv, pump_one);
}

static void close_one(px_health_watch *w) {
    unlist(w);
    /* Let an outstanding NOT_SERVING message go first if one is in flight;
     * grpc_server_cancel_all_calls ends the call otherwise. */
    pthread_mutex_lock(&w->base.mu);
    bool sending = w->sending;
    pthread_mutex_unlock(&w->base.mu);
    if (!sending)
        px_call_finish(&w->base, NULL, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
}

void px_health_close_all(px_rpc_server *srv) {
    for_each_watch(srv, close_one);
}
