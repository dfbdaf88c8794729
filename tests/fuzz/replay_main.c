/*
 * The main of a fuzz target built without libFuzzer (the default build):
 * runs LLVMFuzzerTestOneInput once on every file named on the command line,
 * and on every file of a directory named there (README.md files excepted),
 * as `TARGET_fuzz -runs=1 FILE...` does under libFuzzer. A failed check
 * aborts, so the exit status says whether every input passed; no input at
 * all (a missing or empty corpus) fails too, as nothing was checked. With
 * `--config=fuzz` the target links libFuzzer's main instead.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/base/cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bigger inputs are not replayed: every target's -max_len is far below. */
#define REPLAY_MAX_BYTES (1 << 24)

static void close_dir(DIR **d) {
    if (*d)
        closedir(*d);
}

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    _cleanup_free_ uint8_t *data = malloc(REPLAY_MAX_BYTES + 1);
    size_t n = data ? fread(data, 1, REPLAY_MAX_BYTES + 1, f) : 0;
    bool bad = !data || ferror(f) || n > REPLAY_MAX_BYTES;
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: unreadable or over %d bytes\n", path, REPLAY_MAX_BYTES);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, n);
    return 0;
}

/* Replays `path` (a file, or each file of a directory); counts into *n. */
static int replay(const char *path, int *n) {
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*n)++;
        return replay_file(path);
    }
    __attribute__((cleanup(close_dir))) DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        char child[4096];
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child)
            return -1;
        if (replay(child, n) < 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int n = 0;
    for (int i = 1; i < argc; i++)
        if (replay(argv[i], &n) < 0)
            return 1;
    if (n == 0) {
        fprintf(stderr, "replay: no input replayed (is the corpus missing or empty?)\n");
        return 1;
    }
    printf("replay: %d input(s) passed\n", n);
    return 0;
}
