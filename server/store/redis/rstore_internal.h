/*
 * Private to the Redis store (rstore*.c): the handle's layout and the
 * helpers its files share. Not for other modules.
 */
#ifndef PYEXEC_STORE_REDIS_RSTORE_INTERNAL_H
#define PYEXEC_STORE_REDIS_RSTORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/store/redis/conn.h"
#include "server/store/redis/rstore.h"
#include "server/store/redis/scripts.h"

#define MAX_UNCERTAIN 16 /* claims whose reply was lost, to resume */

typedef struct uncertain_claim {
    char id[PX_ID_LEN + 1];
    char qid[64];
    int64_t token;
} uncertain_claim;

struct px_rstore {
    px_rstore_config cfg;
    char ns[PX_RSTORE_NAME_MAX + 1];
    char node[PX_RSTORE_NAME_MAX + 1];
    char prefix[PX_RSTORE_NAME_MAX + 8]; /* "px:<ns>:" */
    char queue_key[PX_RSTORE_NAME_MAX + 16];
    char *source[PX_RSCRIPT_COUNT];
    char sha[PX_RSCRIPT_COUNT][41];

    pthread_mutex_t mu;
    pthread_cond_t cond; /* a connection was returned */
    px_redis_conn **conns;
    bool *busy;
    unsigned n_conns;
    /* Claims that may have happened without us seeing the reply (under mu). */
    uncertain_claim uncertain[MAX_UNCERTAIN];
    unsigned n_uncertain;
    bool pel_dirty; /* an XREADGROUP reply was lost */
    px_redis_conn_config conn_cfg;

    /* The follower: ids it follows, with the stream id it has seen. */
    pthread_mutex_t fmu;
    pthread_cond_t fcond; /* the follow set is no longer empty, or stop */
    struct follow_entry *follow;
    size_t n_follow, cap_follow;
    bool follow_started, follow_stop;
    pthread_t follow_thread;
    px_redis_conn *follow_conn;
    px_rstore_follow_fn follow_fn;
    void *follow_ud;
    char wake_key[PX_RSTORE_NAME_MAX * 2 + 16];
    char wake_cursor[48];
    /* The follower's connection answered once: a fresh one after that is a
     * reconnect, after which every follower is told (follower thread). */
    bool follow_answered;

    /* The listener on this node's ctl channel. */
    bool listen_started;
    _Atomic bool listen_stop;
    pthread_t listen_thread;
    px_redis_conn *listen_conn;
    px_rstore_kill_fn listen_fn;
    void *listen_ud;
    char ctl_key[PX_RSTORE_NAME_MAX * 2 + 16];
};

typedef struct follow_entry {
    char id[PX_ID_LEN + 1];
    char cursor[48]; /* the last stream id seen */
    unsigned refs;
} follow_entry;

#define NUM(buf, v) snprintf(buf, sizeof buf, "%lld", (long long)(v))

void rstore_reply_freep(redisReply **r);
#define _cleanup_reply_ __attribute__((cleanup(rstore_reply_freep)))

/* ---- shared helpers (rstore.c), and stopping the readers (rstore_follow.c) ---- */

px_redis_conn *rstore_pool_take(px_rstore *rs, unsigned *slot, px_error *err);
void rstore_pool_give(px_rstore *rs, unsigned slot);

/* Runs script `s` with ARGV = prefix, argv... on connection `c`. */
redisReply *rstore_eval_on(px_rstore *rs, px_redis_conn *c, px_rscript s, int argc,
                           const char **argv, const size_t *len, bool retry, px_error *err);
redisReply *rstore_eval(px_rstore *rs, px_rscript s, int argc, const char **argv, const size_t *len,
                        bool retry, px_error *err);
int rstore_bad_reply(px_rscript s, px_error *err);
/* With cfg.min_replicas > 0: WAIT on `c` (right after its write) until that
 * many replicas acknowledged it, else PX_E_UNAVAILABLE naming the replica
 * wait. 0 at once without. */
int rstore_wait_replicas(px_rstore *rs, px_redis_conn *c, px_error *err);
/* The integer at r->element[i] (integer or numeric string), or `def`. */
long long rstore_elem_int(const redisReply *r, size_t i, long long def);
const redisReply *rstore_elem_str(const redisReply *r, size_t i);
/* Maps owned()'s codes (scripts.c) to the API's results. */
int rstore_owner_result(long long code, const char *id, px_error *err);
/* Stop and join the follower and the listener, if started (free). */
void rstore_follow_stop(px_rstore *rs);
void rstore_listen_stop(px_rstore *rs);

#endif
