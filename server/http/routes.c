/*
 * The door's routes (docs/api.md, "The HTTP door"). Each request is turned
 * into what the gRPC door works with: an upload into an ExecuteRequest,
 * validated by the RPC codec and admitted through the store, as Execute
 * does; an id is checked as GetExecution checks it; a list query goes
 * through ListExecutions' checks. Only the JSON in and out is the door's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/id.h"
#include "server/base/log.h"
#include "server/base/quote.h"
#include "server/http/door.h"
#include "server/http/transcode.h"
#include "server/rpc/codec.h"

static enum MHD_Result health(px_http_req *req) {
    char reason[512] = "";
    if (atomic_load(&req->srv->quiescing))
        snprintf(reason, sizeof reason, "shutting down");
    else if (px_rpc_server_serving(req->srv->rpc, reason, sizeof reason))
        return px_http_reply_json(req, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    return px_http_reply_json(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                              json_pack("{s:s, s:s}", "status", "unavailable", "error", reason));
}

/* The execution `req->id` (checked as the RPCs check it), or NULL after
 * replying 400/404. */
static px_record *find(px_http_req *req) {
    px_error err = PX_ERROR_INIT;
    px_record *record = NULL;
    if (px_id_check(req->id, &err) < 0 ||
        !(record = px_store_get_as(req->srv->store, req->tenant, req->id, &err)))
        px_http_reply_px_error(req, &err);
    return record;
}

static enum MHD_Result reply_view(px_http_req *req, px_record *record, unsigned status,
                                  bool with_output) {
    px_record_view view;
    px_error err = PX_ERROR_INIT;
    if (px_record_snapshot(record, with_output, &view, &err) < 0)
        return px_http_reply_px_error(req, &err);
    json_t *body = px_http_result_json(&view, with_output);
    px_record_view_release(&view);
    return px_http_reply_json(req, status, body);
}

/* Sync execution: wait for the end. A client that hangs up first has its
 * execution killed (CLIENT_CANCELLED), as a cancelled sync Execute. */
static enum MHD_Result wait_and_reply(px_http_req *req, px_record *record) {
    px_error err = PX_ERROR_INIT;
    /* The wait is the server's time, not the client's: no idle timeout
     * meanwhile; setting it again restarts its timer. */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    int end = px_http_wait_terminal(req, record, &err);
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)req->srv->cfg->http_read_timeout_s);
    if (end < 0)
        return px_http_reply_px_error(req, &err);
    if (end == PX_WAIT_HUNG_UP) {
        if (px_record_kill(record, PX_KILL_CANCEL))
            px_info("execution %s: killing; the HTTP client %s went away", px_record_id(record),
                    req->peer);
        return MHD_NO; /* nobody to answer: close */
    }
    if (end == PX_WAIT_STOPPING)
        return px_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server shutting down");
    return reply_view(req, record, MHD_HTTP_OK, true);
}

/* Admits `spec` (taken) through the store, as Execute and Eval do, and
 * answers: 202 with the id at once (async), or the result at the end. */
static enum MHD_Result admit(px_http_req *req, px_job_spec *spec, bool async) {
    px_error err = PX_ERROR_INIT;
    char origin[160 + PX_TENANT_MAX];
    px_quoted qt;
    snprintf(origin, sizeof origin, "HTTP POST %s from %s%s%s%s", req->route->pattern, req->peer,
             req->tenant[0] ? " (tenant '" : "", px_quote_str(&qt, req->tenant),
             req->tenant[0] ? "')" : "");
    bool existed = false;
    bool eval = spec->eval;
    snprintf(spec->tenant, sizeof spec->tenant, "%s", req->tenant);
    px_record *record = px_store_admit(req->srv->store, "", NULL, spec, origin, &existed, &err);
    if (!record) {
        px_error_wrap(&err, eval ? "eval" : "execute");
        return px_http_reply_px_error(req, &err);
    }
    enum MHD_Result ret;
    if (async)
        ret = px_http_reply_json(req, MHD_HTTP_ACCEPTED,
                                 json_pack("{s:s}", "execution_id", px_record_id(record)));
    else
        ret = wait_and_reply(req, record);
    px_record_unref(record);
    return ret;
}

static enum MHD_Result exec(px_http_req *req, bool async) {
    px_error err = PX_ERROR_INIT;
    if (!req->has_tar)
        return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "tar: missing (send the code as the multipart file field "
                                   "'tar')");
    json_t *meta_json = NULL;
    if (req->has_metadata) {
        json_error_t jerr;
        meta_json = json_loadb(req->metadata.data ? req->metadata.data : "", req->metadata.len,
                               JSON_REJECT_DUPLICATES, &jerr);
        if (!meta_json)
            return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "metadata: invalid JSON at line %d, column %d: %s",
                                       jerr.line, jerr.column, jerr.text);
    }
    px_http_metadata md;
    if (px_http_metadata_parse(&md, meta_json, "metadata", &err) < 0) {
        json_decref(meta_json);
        return px_http_reply_px_error(req, &err);
    }
    Pyexec__V1__ExecuteRequest exreq = PYEXEC__V1__EXECUTE_REQUEST__INIT;
    exreq.metadata = &md.meta;
    exreq.tar.data = (uint8_t *)req->tar.data;
    exreq.tar.len = req->tar.len;
    exreq.async = async;
    px_job_spec *spec = px_codec_job_spec(&exreq, req->srv->cfg, &err);
    px_http_metadata_release(&md);
    json_decref(meta_json);
    if (!spec)
        return px_http_reply_px_error(req, &err);
    return admit(req, spec, async);
}

/* POST /api/v1/eval: the JSON body as an EvalRequest, checked by the RPC
 * codec's Eval rules. With eval_last_expr false (the default) the code
 * runs as a plain program (no `result`). */
static enum MHD_Result eval(px_http_req *req) {
    px_error err = PX_ERROR_INIT;
    json_error_t jerr;
    json_t *body = json_loadb(req->json.data ? req->json.data : "", req->json.len,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!body)
        return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "body: invalid JSON at line %d, column %d: %s", jerr.line,
                                   jerr.column, jerr.text);
    px_http_eval ev;
    if (px_http_eval_parse(&ev, body, &err) < 0) {
        json_decref(body);
        return px_http_reply_px_error(req, &err);
    }
    px_job_spec *spec = px_codec_eval_spec(&ev.req, req->srv->cfg, &err);
    bool async = ev.async;
    bool last_expr = ev.eval_last_expr;
    px_http_eval_release(&ev);
    json_decref(body);
    if (!spec)
        return px_http_reply_px_error(req, &err);
    spec->eval = last_expr;
    return admit(req, spec, async);
}

static enum MHD_Result exec_sync(px_http_req *req) {
    return exec(req, false);
}
static enum MHD_Result exec_async(px_http_req *req) {
    return exec(req, true);
}

static enum MHD_Result get_execution(px_http_req *req) {
    px_record *record = find(req);
    if (!record)
        return MHD_YES;
    enum MHD_Result ret = reply_view(req, record, MHD_HTTP_OK, true);
    px_record_unref(record);
    return ret;
}

/* Kill, then answer once the execution is over (its container gone), with
 * the status it ended in: "killed", or what it had already ended as. */
static enum MHD_Result kill_execution(px_http_req *req) {
    px_record *record = find(req);
    if (!record)
        return MHD_YES;
    if (px_record_kill(record, PX_KILL_RPC))
        px_info("execution %s: killing; HTTP DELETE from %s", px_record_id(record), req->peer);
    px_error err = PX_ERROR_INIT;
    enum MHD_Result ret;
    int end = px_http_wait_terminal(req, record, &err);
    px_record_view view;
    if (end < 0)
        ret = px_http_reply_px_error(req, &err);
    else if (end == PX_WAIT_HUNG_UP)
        ret = MHD_NO;
    else if (end == PX_WAIT_STOPPING)
        ret = px_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server shutting down");
    else if (px_record_snapshot(record, false, &view, &err) < 0)
        ret = px_http_reply_px_error(req, &err);
    else {
        ret = px_http_reply_json(req, MHD_HTTP_OK,
                                 json_pack("{s:s}", "status", px_http_status_name(view.status)));
        px_record_view_release(&view);
    }
    px_record_unref(record);
    return ret;
}

/* A query argument as a whole int32: -1 with a reply if it is not one. */
static int query_int(px_http_req *req, const char *name, int32_t *out) {
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    *out = 0;
    if (!v || !v[0])
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < INT32_MIN || n > INT32_MAX) {
        px_quoted q;
        px_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "%s: '%s' is not an integer", name,
                            px_quote_str(&q, v));
        return -1;
    }
    *out = (int32_t)n;
    return 0;
}

static enum MHD_Result list_executions(px_http_req *req) {
    px_error err = PX_ERROR_INIT;
    int32_t page_size;
    if (query_int(req, "page_size", &page_size) < 0)
        return MHD_YES;
    const char *status_arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                         "status");
    px_status want = PX_STATUS_UNSPECIFIED;
    px_quoted q;
    if (status_arg && status_arg[0] && px_http_status_parse(status_arg, &want) < 0)
        return px_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "status: '%s' is not one of pending, running, completed, "
                                   "failed, killed",
                                   px_quote_str(&q, status_arg));
    const char *token = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "page_token");
    size_t size;
    px_status status;
    px_store_page page = {0};
    if (px_codec_list_args(page_size, (int)want, &size, &status, &err) < 0 ||
        px_store_list(req->srv->store, req->tenant, status, size, token ? token : "", &page, &err) <
            0)
        return px_http_reply_px_error(req, &err);
    json_t *list = json_array();
    for (size_t i = 0; list && i < page.n; i++) {
        px_record_view view;
        if (px_record_snapshot(page.records[i], false, &view, &err) < 0) {
            px_store_page_release(&page);
            json_decref(list);
            return px_http_reply_px_error(req, &err);
        }
        if (json_array_append_new(list, px_http_result_json(&view, false)) < 0) {
            json_decref(list);
            list = NULL;
        }
        px_record_view_release(&view);
    }
    json_t *body = list ? json_pack("{s:o, s:s}", "executions", list, "next_page_token",
                                    page.next_token)
                        : NULL;
    px_store_page_release(&page);
    return px_http_reply_json(req, MHD_HTTP_OK, body);
}

/* GET /metrics: every metric of the process, and the store's size. */
static enum MHD_Result metrics(px_http_req *req) {
    px_error err = PX_ERROR_INIT;
    char *text = NULL;
    size_t len = 0;
    if (px_metrics_render(req->srv->metrics, &text, &len, &err) < 0)
        return px_http_reply_px_error(req, &err);
    char extra[256];
    int n = snprintf(extra, sizeof extra,
                     "# HELP pyexec_executions_retained Executions the store holds.\n"
                     "# TYPE pyexec_executions_retained gauge\n"
                     "pyexec_executions_retained %zu\n",
                     px_store_count(req->srv->store));
    char *all = realloc(text, len + (size_t)n + 1);
    if (!all) {
        free(text);
        return px_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    memcpy(all + len, extra, (size_t)n + 1);
    struct MHD_Response *r = MHD_create_response_from_buffer(len + (size_t)n, all,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(all);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    px_http_count(req, MHD_HTTP_OK);
    return ret;
}

const px_http_route px_http_routes[] = {
    /* method, path, body, handler, open (no authentication) */
    {"GET", "/health", PX_BODY_NONE, health, true},
    {"GET", "/metrics", PX_BODY_NONE, metrics, true},
    {"GET", "/docs", PX_BODY_NONE, px_http_docs_page, true},
    {"GET", "/docs/openapi.json", PX_BODY_NONE, px_http_docs_openapi, true},
    {"GET", "/docs/{name}", PX_BODY_NONE, px_http_docs_asset, true},
    {"POST", "/api/v1/exec/sync", PX_BODY_MULTIPART, exec_sync, false},
    {"POST", "/api/v1/exec/async", PX_BODY_MULTIPART, exec_async, false},
    {"POST", "/api/v1/eval", PX_BODY_JSON, eval, false},
    {"GET", "/api/v1/executions", PX_BODY_NONE, list_executions, false},
    {"GET", "/api/v1/executions/{id}", PX_BODY_NONE, get_execution, false},
    {"DELETE", "/api/v1/executions/{id}", PX_BODY_NONE, kill_execution, false},
    {"GET", "/api/v1/executions/{id}/output", PX_BODY_NONE, px_http_stream_output, false},
    {NULL, NULL, PX_BODY_NONE, NULL, false},
};
