/*
 * Job specs to bytes and back (see jobpack.h for the format).
 */
#include "server/store/redis/jobpack.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/cleanup.h"

/* PXJ2: PXJ1 and the tenant. */
#define MAGIC "PXJ2"

/* ---- packing ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} wbuf;

static void put(wbuf *b, const void *data, size_t n) {
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(wbuf *b, uint64_t v) {
    if (v > UINT32_MAX) {
        b->failed = true;
        return;
    }
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_bytes(wbuf *b, const void *data, size_t n) {
    put_u32(b, n);
    put(b, data, n);
}

static void put_str(wbuf *b, const char *s) {
    put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

static void put_strv(wbuf *b, char *const *v, size_t n) {
    put_u32(b, n);
    for (size_t i = 0; i < n; i++)
        put_str(b, v[i]);
}

int px_jobpack_pack(const px_job_spec *s, uint8_t **out, size_t *out_len, px_error *err) {
    wbuf b = {0};
    put(&b, MAGIC, 4);
    put_str(&b, s->image);
    put_str(&b, s->entrypoint);
    put_bytes(&b, s->tar, s->tar_len);
    put_bytes(&b, s->stdin_data, s->stdin_len);
    put_strv(&b, s->env, s->n_env);
    put_strv(&b, s->args, s->n_args);
    put_strv(&b, s->pre_commands, s->n_pre_commands);
    put_str(&b, s->requirements_txt);
    put_u32(&b, (uint32_t)s->timeout_s);
    put(&b, &(uint8_t){s->network ? 1 : 0}, 1);
    put_u32(&b, (uint32_t)s->memory_mb);
    put_u32(&b, (uint32_t)s->disk_mb);
    put_u32(&b, (uint32_t)s->cpu_shares);
    put(&b, &(uint8_t){s->eval ? 1 : 0}, 1);
    put_str(&b, s->tenant);
    if (b.failed) {
        free(b.p);
        return px_error_set(err, PX_E_INTERNAL, "pack the job: out of memory or field too long");
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* ---- unpacking ---- */

typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool failed;
} rbuf;

static const uint8_t *take(rbuf *b, size_t n) {
    if (b->failed || n > b->len - b->off) {
        b->failed = true;
        return NULL;
    }
    const uint8_t *p = b->p + b->off;
    b->off += n;
    return p;
}

static uint32_t get_u32(rbuf *b) {
    const uint8_t *x = take(b, 4);
    if (!x)
        return 0;
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

/* A malloc'd copy of the next byte string (+ NUL); *n its length. */
static uint8_t *get_bytes(rbuf *b, size_t *n) {
    uint32_t len = get_u32(b);
    const uint8_t *p = take(b, len);
    if (!p)
        return NULL;
    uint8_t *copy = malloc((size_t)len + 1);
    if (!copy) {
        b->failed = true;
        return NULL;
    }
    memcpy(copy, p, len);
    copy[len] = '\0';
    if (n)
        *n = len;
    return copy;
}

static char *get_str(rbuf *b) {
    size_t n;
    char *s = (char *)get_bytes(b, &n);
    if (s && strlen(s) != n) {
        free(s);
        b->failed = true;
        return NULL;
    }
    return s;
}

static char **get_strv(rbuf *b, size_t *n) {
    uint32_t count = get_u32(b);
    *n = 0;
    if (b->failed || count > PX_JOBPACK_MAX_LIST) {
        b->failed = true;
        return NULL;
    }
    char **v = calloc(count ? count : 1, sizeof *v);
    if (!v) {
        b->failed = true;
        return NULL;
    }
    for (; *n < count; (*n)++) {
        v[*n] = get_str(b);
        if (!v[*n])
            break;
    }
    return v;
}

px_job_spec *px_jobpack_unpack(const uint8_t *data, size_t len, const char *id, px_error *err) {
    px_job_spec *s = calloc(1, sizeof *s);
    if (!s) {
        px_error_set(err, PX_E_INTERNAL, "unpack the job: out of memory");
        return NULL;
    }
    rbuf b = {.p = data, .len = len};
    const uint8_t *magic = take(&b, 4);
    if (!magic || memcmp(magic, MAGIC, 4) != 0)
        b.failed = true;
    snprintf(s->execution_id, sizeof s->execution_id, "%s", id);
    if (!b.failed)
        s->image = get_str(&b);
    if (!b.failed)
        s->entrypoint = get_str(&b);
    if (!b.failed)
        s->tar = get_bytes(&b, &s->tar_len);
    if (!b.failed)
        s->stdin_data = get_bytes(&b, &s->stdin_len);
    if (!b.failed)
        s->env = get_strv(&b, &s->n_env);
    if (!b.failed)
        s->args = get_strv(&b, &s->n_args);
    if (!b.failed)
        s->pre_commands = get_strv(&b, &s->n_pre_commands);
    if (!b.failed)
        s->requirements_txt = get_str(&b);
    s->timeout_s = (int)get_u32(&b);
    const uint8_t *net = take(&b, 1);
    s->network = net && *net;
    s->memory_mb = (int)get_u32(&b);
    s->disk_mb = (int)get_u32(&b);
    s->cpu_shares = (int)get_u32(&b);
    const uint8_t *ev = take(&b, 1);
    s->eval = ev && *ev;
    if (!b.failed) {
        char *tenant = get_str(&b);
        if (tenant && strlen(tenant) < sizeof s->tenant)
            memcpy(s->tenant, tenant, strlen(tenant) + 1);
        else
            b.failed = true;
        free(tenant);
    }
    if (b.failed || b.off != b.len) {
        px_job_spec_free(s);
        px_error_set(err, PX_E_INTERNAL, "execution '%s': the queued job is not a packed job spec",
                     id);
        return NULL;
    }
    return s;
}
