/*
 * /docs: the door described in OpenAPI 3 (openapi.json, written by hand and
 * built into the binary: the one description) and a page to browse it.
 * With --http-docs-dir (a swagger-ui-dist directory, which scripts/setup
 * installs at the version third_party/swagger-ui pins) the page is Swagger
 * UI, its two files read once at start-up and served from memory; without
 * it, a plain HTML list of the routes made from the same description.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/door.h"
#include "server/http/openapi_json.h"

/* The files of swagger-ui-dist the page uses. */
static const struct {
    const char *name;
    const char *type;
} asset_files[PX_HTTP_DOCS_ASSETS] = {
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
    {"swagger-ui.css", "text/css; charset=utf-8"},
};

/* Larger is not a swagger-ui-dist file. */
#define ASSET_MAX (16 << 20)

int px_http_docs_load(px_http_server *srv, const char *dir, px_error *err) {
    if (!dir || !dir[0])
        return 0;
    for (size_t i = 0; i < PX_HTTP_DOCS_ASSETS; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, asset_files[i].name);
        FILE *f = fopen(path, "rb");
        if (!f)
            return px_error_set_errno(err, PX_E_INVALID, errno,
                                      "--http-docs-dir: '%s' (install it with scripts/setup)",
                                      path);
        px_http_buf *b = &srv->assets[i];
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (b->len + n > ASSET_MAX || px_http_buf_append(b, chunk, n) < 0) {
                fclose(f);
                return px_error_set(err, PX_E_INVALID, "--http-docs-dir: '%s': too large", path);
            }
        }
        bool bad = ferror(f);
        fclose(f);
        if (bad || b->len == 0)
            return px_error_set(err, PX_E_INVALID, "--http-docs-dir: '%s': cannot read it", path);
    }
    srv->has_assets = true;
    return 0;
}

void px_http_docs_release(px_http_server *srv) {
    for (size_t i = 0; i < PX_HTTP_DOCS_ASSETS; i++)
        px_http_buf_release(&srv->assets[i]);
}

static enum MHD_Result reply_bytes(px_http_req *req, const void *data, size_t len, const char *type,
                                   enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free((void *)data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    px_http_count(req, MHD_HTTP_OK);
    return ret;
}

enum MHD_Result px_http_docs_openapi(px_http_req *req) {
    return reply_bytes(req, px_http_openapi_json, px_http_openapi_json_len, "application/json",
                       MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result px_http_docs_asset(px_http_req *req) {
    for (size_t i = 0; req->srv->has_assets && i < PX_HTTP_DOCS_ASSETS; i++)
        if (strcmp(req->id, asset_files[i].name) == 0)
            return reply_bytes(req, req->srv->assets[i].data, req->srv->assets[i].len,
                               asset_files[i].type, MHD_RESPMEM_PERSISTENT);
    return px_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no document '%s' under /docs%s", req->id,
                               req->srv->has_assets ? "" : " (the server has no --http-docs-dir)");
}

static const char swagger_page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>pyexec HTTP API</title>\n"
    "<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n</head>\n<body>\n"
    "<div id=\"swagger-ui\"></div>\n<script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "<script>\nwindow.ui = SwaggerUIBundle({url: \"/docs/openapi.json\", "
    "dom_id: \"#swagger-ui\"});\n</script>\n</body>\n</html>\n";

/* Appends `s` with HTML's special characters escaped. */
static int append_html(px_http_buf *b, const char *s) {
    for (; *s; s++) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
        if (px_http_buf_append(b, e ? e : s, e ? strlen(e) : 1) < 0)
            return -1;
    }
    return 0;
}

/* Without Swagger UI: the routes of the description as a list. */
static char *plain_page(size_t *len) {
    json_t *doc = json_loadb((const char *)px_http_openapi_json, px_http_openapi_json_len, 0, NULL);
    px_http_buf b = {0};
    int bad = px_http_buf_append(&b,
                                 "<!doctype html>\n<html lang=\"en\">\n<head><meta "
                                 "charset=\"utf-8\"><title>pyexec HTTP API</title></head>\n"
                                 "<body>\n<h1>pyexec HTTP API</h1>\n<p>The description: <a "
                                 "href=\"/docs/openapi.json\">/docs/openapi.json</a> "
                                 "(OpenAPI 3).</p>\n<ul>\n",
                                 0);
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            char upper[16];
            size_t k = 0;
            for (; method[k] && k < sizeof upper - 1; k++)
                upper[k] = (char)(method[k] >= 'a' && method[k] <= 'z' ? method[k] - 32
                                                                       : method[k]);
            upper[k] = '\0';
            bad |= px_http_buf_append(&b, "<li><code>", 10);
            bad |= append_html(&b, upper);
            bad |= px_http_buf_append(&b, " ", 1);
            bad |= append_html(&b, path);
            bad |= px_http_buf_append(&b, "</code>: ", 9);
            const char *summary = json_string_value(json_object_get(op, "summary"));
            bad |= append_html(&b, summary ? summary : "");
            bad |= px_http_buf_append(&b, "</li>\n", 6);
        }
    }
    bad |= px_http_buf_append(&b, "</ul>\n</body>\n</html>\n", 22);
    json_decref(doc);
    if (bad) {
        px_http_buf_release(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

enum MHD_Result px_http_docs_page(px_http_req *req) {
    if (req->srv->has_assets)
        return reply_bytes(req, swagger_page, sizeof swagger_page - 1, "text/html; charset=utf-8",
                           MHD_RESPMEM_PERSISTENT);
    size_t len = 0;
    char *page = plain_page(&len);
    if (!page)
        return px_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return reply_bytes(req, page, len, "text/html; charset=utf-8", MHD_RESPMEM_MUST_FREE);
}
