/*
 * Parsing of the --store URL and loading of the Redis password.
 */
#include "server/store/redis/target.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/base/cleanup.h"

#define TCP_SCHEME "redis://"
#define UNIX_SCHEME "redis+unix://"
#define SENTINEL_SCHEME "redis+sentinel://"

static bool has_scheme(const char *url, const char *scheme) {
    return strncmp(url, scheme, strlen(scheme)) == 0;
}

bool px_redis_target_is_redis(const char *url) {
    return has_scheme(url, TCP_SCHEME) || has_scheme(url, UNIX_SCHEME) ||
           has_scheme(url, SENTINEL_SCHEME);
}

/* Parses the decimal [s, s+len) into *out within [min, max]. */
static int parse_int(const char *s, size_t len, int min, int max, int *out) {
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Refuses "user:password@" before `end` (the authority's end). */
static int refuse_userinfo(const char *p, const char *end, px_error *err) {
    if (memchr(p, '@', (size_t)(end - p)))
        return px_error_set(err, PX_E_INVALID,
                            "a user or password in the URL is not accepted (it would show in the "
                            "process list): use --store-password-file or PYEXEC_STORE_PASSWORD");
    return 0;
}

/* Parses HOST[:PORT] or [IPV6][:PORT] in [p, end) into `out`, PORT
 * defaulting to `default_port`. */
static int parse_endpoint(const char *p, const char *end, int default_port, px_redis_endpoint *out,
                          px_error *err) {
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return px_error_set(err, PX_E_INVALID, "unclosed '[' in the host");
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                return px_error_set(err, PX_E_INVALID, "expected ':' after ']'");
            port = host_end + 2;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0)
        return px_error_set(err, PX_E_INVALID, "no host");
    if (host_len > PX_REDIS_HOST_MAX)
        return px_error_set(err, PX_E_INVALID, "host longer than %d bytes", PX_REDIS_HOST_MAX);
    for (size_t i = 0; i < host_len; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == ':';
        if (!ok || (c == ':' && *p != '['))
            return px_error_set(err, PX_E_INVALID, "invalid character in the host");
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = default_port;
    if (port && parse_int(port, (size_t)(end - port), 1, 65535, &out->port) != 0)
        return px_error_set(err, PX_E_INVALID, "the port must be a number in 1..65535");
    return 0;
}

static int parse_tcp(const char *url, px_redis_target *t, px_error *err) {
    const char *p = url + strlen(TCP_SCHEME);
    const char *end = p + strcspn(p, "/?#");
    if (refuse_userinfo(p, end, err) != 0)
        return -1;
    px_redis_endpoint ep;
    if (parse_endpoint(p, end, 6379, &ep, err) != 0)
        return -1;
    memcpy(t->host, ep.host, sizeof t->host);
    t->port = ep.port;
    if (*end == '/' && end[1] != '\0') {
        const char *db = end + 1;
        if (parse_int(db, strlen(db), 0, PX_REDIS_DB_MAX, &t->db) != 0)
            return px_error_set(err, PX_E_INVALID, "the database must be a number in 0..%d",
                                PX_REDIS_DB_MAX);
    } else if (*end == '?' || *end == '#') {
        return px_error_set(err, PX_E_INVALID, "no query or fragment in a redis:// URL");
    }
    return 0;
}

/* redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB] */
static int parse_sentinel(const char *url, px_redis_target *t, px_error *err) {
    const char *p = url + strlen(SENTINEL_SCHEME);
    const char *end = p + strcspn(p, "/?#");
    if (refuse_userinfo(p, end, err) != 0)
        return -1;
    if (p == end)
        return px_error_set(err, PX_E_INVALID,
                            "no Sentinel: expected redis+sentinel://HOST[:PORT][,HOST[:PORT]...]"
                            "/MASTER[/DB]");
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ep_end = comma ? comma : end;
        if (t->sentinel_count == PX_REDIS_SENTINELS_MAX)
            return px_error_set(err, PX_E_INVALID, "more than %d Sentinels",
                                PX_REDIS_SENTINELS_MAX);
        px_redis_endpoint *ep = &t->sentinels[t->sentinel_count];
        if (parse_endpoint(p, ep_end, 26379, ep, err) != 0)
            return px_error_wrap(err, "Sentinel %zu", t->sentinel_count + 1);
        t->sentinel_count++;
        p = comma ? comma + 1 : end;
        if (comma && p == end)
            return px_error_set(err, PX_E_INVALID, "an empty Sentinel after ','");
    }
    if (*end == '?' || *end == '#')
        return px_error_set(err, PX_E_INVALID, "no query or fragment in a redis+sentinel:// URL");
    if (*end != '/' || end[1] == '\0' || end[1] == '/')
        return px_error_set(err, PX_E_INVALID,
                            "no master name: expected redis+sentinel://SENTINELS/MASTER[/DB]");
    const char *name = end + 1;
    size_t name_len = strcspn(name, "/?#");
    if (name_len > PX_REDIS_MASTER_NAME_MAX)
        return px_error_set(err, PX_E_INVALID, "master name longer than %d bytes",
                            PX_REDIS_MASTER_NAME_MAX);
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    if (strspn(name, ok) < name_len)
        return px_error_set(err, PX_E_INVALID, "the master name may hold only [A-Za-z0-9_.-]");
    memcpy(t->master_name, name, name_len);
    t->master_name[name_len] = '\0';
    const char *rest = name + name_len;
    if (*rest == '?' || *rest == '#')
        return px_error_set(err, PX_E_INVALID, "no query or fragment in a redis+sentinel:// URL");
    if (*rest == '/' && rest[1] != '\0' &&
        parse_int(rest + 1, strlen(rest + 1), 0, PX_REDIS_DB_MAX, &t->db) != 0)
        return px_error_set(err, PX_E_INVALID, "the database must be a number in 0..%d",
                            PX_REDIS_DB_MAX);
    t->is_sentinel = true;
    return 0;
}

static int parse_unix(const char *url, px_redis_target *t, px_error *err) {
    const char *p = url + strlen(UNIX_SCHEME);
    if (*p != '/')
        return px_error_set(err, PX_E_INVALID,
                            "expected redis+unix:///ABSOLUTE/PATH (no host part)");
    size_t path_len = strcspn(p, "?#");
    if (path_len > PX_REDIS_PATH_MAX)
        return px_error_set(err, PX_E_INVALID, "socket path longer than %d bytes",
                            PX_REDIS_PATH_MAX);
    if (path_len < 2)
        return px_error_set(err, PX_E_INVALID, "no socket path");
    memcpy(t->path, p, path_len);
    t->path[path_len] = '\0';
    t->is_unix = true;
    const char *q = p + path_len;
    if (*q == '#')
        return px_error_set(err, PX_E_INVALID, "no fragment in a redis+unix:// URL");
    if (*q == '?') {
        q++;
        if (strncmp(q, "db=", 3) != 0)
            return px_error_set(err, PX_E_INVALID, "the only query parameter is db=N");
        q += 3;
        if (parse_int(q, strlen(q), 0, PX_REDIS_DB_MAX, &t->db) != 0)
            return px_error_set(err, PX_E_INVALID, "db must be a number in 0..%d", PX_REDIS_DB_MAX);
    }
    return 0;
}

int px_redis_target_parse(const char *url, px_redis_target *out, px_error *err) {
    px_redis_target t = {0};
    int rc;
    if (has_scheme(url, TCP_SCHEME))
        rc = parse_tcp(url, &t, err);
    else if (has_scheme(url, UNIX_SCHEME))
        rc = parse_unix(url, &t, err);
    else if (has_scheme(url, SENTINEL_SCHEME))
        rc = parse_sentinel(url, &t, err);
    else
        rc = px_error_set(err, PX_E_INVALID,
                          "expected redis://HOST:PORT[/DB], redis+unix:///PATH[?db=N] or "
                          "redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]");
    if (rc != 0)
        return -1;
    *out = t;
    return 0;
}

/* Appends host:port (brackets around an IPv6 address) at buf + *len. */
static void append_endpoint(char *buf, size_t size, size_t *len, const char *host, int port) {
    if (*len >= size)
        return;
    int n = snprintf(buf + *len, size - *len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    *len += n > 0 ? (size_t)n : 0;
}

void px_redis_target_format(const px_redis_target *t, char *buf, size_t size) {
    if (size == 0)
        return;
    if (t->is_sentinel) {
        size_t len = 0;
        buf[0] = '\0';
        int n = snprintf(buf, size, "%s", SENTINEL_SCHEME);
        len = n > 0 ? (size_t)n : 0;
        for (size_t i = 0; i < t->sentinel_count; i++) {
            if (i > 0 && len < size)
                len += (size_t)snprintf(buf + len, size - len, ",");
            append_endpoint(buf, size, &len, t->sentinels[i].host, t->sentinels[i].port);
        }
        if (len < size)
            snprintf(buf + len, size - len, "/%s/%d", t->master_name, t->db);
    } else if (t->is_unix)
        snprintf(buf, size, "redis+unix://%s?db=%d", t->path, t->db);
    else if (strchr(t->host, ':'))
        snprintf(buf, size, "redis://[%s]:%d/%d", t->host, t->port, t->db);
    else
        snprintf(buf, size, "redis://%s:%d/%d", t->host, t->port, t->db);
}

static int check_password(const char *pw, size_t len, const char *from, px_error *err) {
    if (len == 0)
        return px_error_set(err, PX_E_INVALID, "%s: empty password", from);
    if (len > PX_REDIS_PASSWORD_MAX)
        return px_error_set(err, PX_E_INVALID, "%s: password longer than %d bytes", from,
                            PX_REDIS_PASSWORD_MAX);
    for (size_t i = 0; i < len; i++)
        if (pw[i] == '\0' || pw[i] == '\n' || pw[i] == '\r')
            return px_error_set(err, PX_E_INVALID, "%s: the password holds a NUL or a line break",
                                from);
    return 0;
}

static int load_password(const char *file, const char *env_name, const char *env_value, char **out,
                         px_error *err) {
    *out = NULL;
    if (file && *file) {
        _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return px_error_set_errno(err, PX_E_INVALID, errno, "password file '%s'", file);
        /* One byte more than the longest accepted line with its "\r\n". */
        char buf[PX_REDIS_PASSWORD_MAX + 3];
        size_t len = 0;
        for (;;) {
            ssize_t n = read(fd, buf + len, sizeof buf - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return px_error_set_errno(err, PX_E_INVALID, errno, "password file '%s'", file);
            if (n == 0)
                break;
            len += (size_t)n;
            if (len == sizeof buf)
                return px_error_set(err, PX_E_INVALID,
                                    "password file '%s': password longer than %d bytes", file,
                                    PX_REDIS_PASSWORD_MAX);
        }
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
        char from[64 + PX_REDIS_PATH_MAX];
        snprintf(from, sizeof from, "password file '%s'", file);
        if (check_password(buf, len, from, err) != 0) {
            explicit_bzero(buf, sizeof buf);
            return -1;
        }
        *out = strndup(buf, len);
        explicit_bzero(buf, sizeof buf);
    } else if (env_value) {
        if (check_password(env_value, strlen(env_value), env_name, err) != 0)
            return -1;
        *out = strdup(env_value);
    } else {
        return 0;
    }
    if (!*out)
        return px_error_set(err, PX_E_INTERNAL, "password: out of memory");
    return 0;
}

int px_redis_password_load(const char *file, const char *env_value, char **out, px_error *err) {
    return load_password(file, "PYEXEC_STORE_PASSWORD", env_value, out, err);
}

int px_redis_sentinel_password_load(const char *file, const char *env_value, char **out,
                                    px_error *err) {
    return load_password(file, "PYEXEC_STORE_SENTINEL_PASSWORD", env_value, out, err);
}
