/*
 * Scope-bound cleanup for locals (CONTRIBUTING.md, "Style, by example").
 *
 *   _cleanup_free_ char *buf = malloc(n);     freed when `buf` leaves scope
 *   _cleanup_secret_ char *password = NULL;    wiped, then freed
 *   return TAKE_PTR(buf);                      hands ownership to the caller
 *
 * PX_DEFINE_CLEANUP(type, fn) defines `fn##p` for a NULL-safe destructor
 * `void fn(type *)`, used as `__attribute__((cleanup(fn##p)))`.
 */
#ifndef PYEXEC_BASE_CLEANUP_H
#define PYEXEC_BASE_CLEANUP_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline void px_freep(void *p) {
    free(*(void **)p);
}

static inline void px_closep(int *fd) {
    if (*fd >= 0)
        close(*fd);
}

/* Wipes a secret (a password: a NUL-terminated string) and frees it, so it
 * does not linger in freed memory. NULL: nothing. */
static inline void px_secret_free(char *s) {
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static inline void px_secret_freep(char **p) {
    px_secret_free(*p);
}

#define _cleanup_free_ __attribute__((cleanup(px_freep)))
#define _cleanup_close_ __attribute__((cleanup(px_closep)))
#define _cleanup_secret_ __attribute__((cleanup(px_secret_freep)))

#define PX_DEFINE_CLEANUP(type, fn)                                                                \
    static inline void fn##p(type **p) {                                                           \
        if (*p)                                                                                    \
            fn(*p);                                                                                \
    }

/* Returns the pointer and sets the variable to NULL: ownership moves out. */
#define TAKE_PTR(p)                                                                                \
    __extension__({                                                                                \
        __typeof__(p) take_ptr_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        take_ptr_tmp_;                                                                             \
    })

/* Same for a file descriptor: returns it and sets the variable to -1. */
#define TAKE_FD(fd)                                                                                \
    __extension__({                                                                                \
        int take_fd_tmp_ = (fd);                                                                   \
        (fd) = -1;                                                                                 \
        take_fd_tmp_;                                                                              \
    })

#define PX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#ifdef __cplusplus
}
#endif

#endif
