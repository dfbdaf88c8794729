/* Ctrl-C during `pyexec run`: kill the execution, then let the stream end.
 *
 * SIGINT, SIGTERM and SIGHUP are blocked in every thread (gRPC's included:
 * they inherit the mask, so cli_interrupt_block() must come before the
 * client exists) and taken with sigwait() on a thread of ours, where calling
 * into gRPC is safe. The first signal sends Kill; the stream that `run` is
 * following then ends with the KILLED result, which `run` prints and exits
 * with like any other end. A second signal exits at once (128+N). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli/cli.h"

struct cli_interrupt {
    pthread_mutex_t mu;
    pyexec_client *client; /* borrowed; NULL once cli_interrupt_stop() ran */
    char id[128];
    sigset_t set;
    pthread_t thread;
};

static void interrupt_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

void cli_interrupt_block(void) {
    sigset_t set;
    interrupt_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *interrupt_main(void *arg) {
    cli_interrupt *in = arg;
    int sig = 0;
    if (sigwait(&in->set, &sig) != 0)
        return NULL;
    pthread_mutex_lock(&in->mu);
    if (in->client) {
        fprintf(stderr, "pyexec: %s: killing %s (again to quit at once)\n", strsignal(sig), in->id);
        pyexec_result *r = NULL;
        pyexec_error err = PYEXEC_ERROR_INIT;
        if (pyexec_kill(in->client, in->id, &r, &err) < 0)
            fprintf(stderr, "pyexec: kill %s: %s\n", in->id, err.msg);
        pyexec_result_free(r);
    }
    pthread_mutex_unlock(&in->mu);
    if (sigwait(&in->set, &sig) == 0)
        _exit(128 + sig);
    return NULL;
}

cli_interrupt *cli_interrupt_start(pyexec_client *c, const char *id) {
    cli_interrupt *in = calloc(1, sizeof *in);
    if (!in || strlen(id) >= sizeof in->id) {
        free(in);
        return NULL;
    }
    pthread_mutex_init(&in->mu, NULL);
    in->client = c;
    memcpy(in->id, id, strlen(id) + 1);
    interrupt_set(&in->set);
    if (pthread_create(&in->thread, NULL, interrupt_main, in) != 0) {
        pthread_mutex_destroy(&in->mu);
        free(in);
        return NULL;
    }
    pthread_detach(in->thread);
    return in;
}

void cli_interrupt_stop(cli_interrupt *in) {
    if (!in)
        return;
    /* After this no Kill can start, and one in progress has finished: the
     * client may be freed. The thread stays in sigwait() until the process
     * exits, so `in` is not freed. */
    pthread_mutex_lock(&in->mu);
    in->client = NULL;
    pthread_mutex_unlock(&in->mu);
}
