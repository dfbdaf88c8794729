#include "server/base/id.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "server/base/quote.h"

static int fill_random(void *buf, size_t n, px_error *err) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return px_error_set_errno(err, PX_E_INTERNAL, errno, "getrandom");
        }
        got += (size_t)r;
    }
    return 0;
}

int px_random_hex(char *out, size_t n, px_error *err) {
    uint8_t buf[64];
    static const char hex[] = "0123456789abcdef";
    size_t done = 0;
    while (done < n) {
        size_t step = n - done < sizeof buf ? n - done : sizeof buf;
        if (fill_random(buf, step, err) < 0)
            return -1;
        for (size_t i = 0; i < step; i++) {
            out[2 * (done + i)] = hex[buf[i] >> 4];
            out[2 * (done + i) + 1] = hex[buf[i] & 15];
        }
        done += step;
    }
    out[2 * n] = '\0';
    return 0;
}

int px_id_new(char out[PX_ID_LEN + 1], px_error *err) {
    uint8_t u[16];
    if (fill_random(u, sizeof u, err) < 0)
        return -1;
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(out, PX_ID_LEN + 1,
             "exe_%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    return 0;
}

bool px_id_valid(const char *s, size_t len) {
    if (len != PX_ID_LEN || s[0] != 'e' || s[1] != 'x' || s[2] != 'e' || s[3] != '_')
        return false;
    for (size_t i = 4; i < len; i++) {
        size_t k = i - 4;
        if (k == 8 || k == 13 || k == 18 || k == 23) {
            if (s[i] != '-')
                return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

int px_id_check(const char *id, px_error *err) {
    size_t len = strlen(id);
    if (len == 0)
        return px_error_set(err, PX_E_INVALID, "execution_id: empty");
    if (!px_id_valid(id, len)) {
        if (len > 64)
            return px_error_set(err, PX_E_INVALID,
                                "execution_id: malformed (%zu bytes; expected exe_<uuid>)", len);
        px_quoted q;
        return px_error_set(err, PX_E_INVALID,
                            "execution_id: '%s' is malformed (expected exe_<uuid>)",
                            px_quote(&q, id, len));
    }
    return 0;
}
