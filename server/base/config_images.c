/* The configuration's image queries: python versions and their images, and
 * which images a request may name (--allowed-images). See config.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "server/base/config.h"

const char *px_config_python_image(const px_config *cfg, const char *version) {
    for (int i = 0; i < cfg->n_python_images; i++) {
        if (strcmp(cfg->python_images[i].version, version) == 0)
            return cfg->python_images[i].image;
    }
    return NULL;
}

void px_config_python_versions(const px_config *cfg, char *out, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < cfg->n_python_images && k < n; i++) {
        int w = snprintf(out + k, n - k, "%s%s", i ? ", " : "", cfg->python_images[i].version);
        if (w < 0)
            break;
        k += (size_t)w;
    }
}

/* Whether `s` matches the `plen` bytes of `pattern`, where '*' matches any
 * run of characters (none included) and every other character itself. */
static bool glob_match(const char *pattern, size_t plen, const char *s) {
    size_t p = 0, star = SIZE_MAX;
    const char *resume = NULL;
    while (*s) {
        if (p < plen && pattern[p] == '*') {
            star = p++;
            resume = s;
        } else if (p < plen && pattern[p] == *s) {
            p++;
            s++;
        } else if (star != SIZE_MAX) {
            p = star + 1; /* the last star takes one more character */
            s = ++resume;
        } else {
            return false;
        }
    }
    while (p < plen && pattern[p] == '*')
        p++;
    return p == plen;
}

bool px_config_image_allowed(const px_config *cfg, const char *image) {
    if (!cfg->allowed_images[0]) {
        if (strcmp(image, cfg->default_image) == 0)
            return true;
        for (int i = 0; i < cfg->n_python_images; i++)
            if (strcmp(image, cfg->python_images[i].image) == 0)
                return true;
        return false;
    }
    for (const char *p = cfg->allowed_images;; p++) {
        size_t len = strcspn(p, ",");
        if (glob_match(p, len, image))
            return true;
        p += len;
        if (!*p)
            return false;
    }
}

void px_config_allowed_images(const px_config *cfg, char *out, size_t n) {
    if (n == 0)
        return;
    size_t k = 0;
    out[0] = '\0';
    if (cfg->allowed_images[0]) {
        for (const char *p = cfg->allowed_images;; p++) {
            size_t len = strcspn(p, ",");
            int w = snprintf(out + k, n - k, "%s%.*s", k ? ", " : "", (int)len, p);
            if (w < 0 || (size_t)w >= n - k)
                return;
            k += (size_t)w;
            p += len;
            if (!*p)
                return;
        }
    }
    int w = snprintf(out, n, "%s", cfg->default_image);
    for (int i = 0; i < cfg->n_python_images && w >= 0 && (size_t)w < n; i++) {
        if (strcmp(cfg->python_images[i].image, cfg->default_image) == 0)
            continue;
        k = (size_t)w;
        int more = snprintf(out + k, n - k, ", %s", cfg->python_images[i].image);
        w = more < 0 ? -1 : w + more;
    }
}
