# Shared by the scripts in scripts/ and bench/run; sourced, not run.
#
# BAZEL_STARTUP_OPTS (e.g. "--output_base=/root/.cache/bazel-mine") and
# BAZEL_OPTS (e.g. "--symlink_prefix=/") are passed to every Bazel call, so
# several people can build the same tree without blocking each other.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# bz COMMAND [ARGS...]: bazel with the shared options.
bz() {
    local cmd=$1
    shift
    # shellcheck disable=SC2086
    bazel ${BAZEL_STARTUP_OPTS:-} "$cmd" ${BAZEL_OPTS:-} "$@"
}

# bzq ARGS...: bazel query (BAZEL_OPTS holds build options, which query rejects).
bzq() {
    # shellcheck disable=SC2086
    bazel ${BAZEL_STARTUP_OPTS:-} query "$@"
}

# bazel_bin [OPTIONS...]: prints the bazel-bin directory of the build with the
# shared options plus OPTIONS (independent of workspace symlinks).
bazel_bin() {
    bz info "$@" bazel-bin 2>/dev/null
}

# bazel_binary [--if-built] LABEL [OPTIONS...]: builds the binary LABEL
# (//pkg:name) with the shared options plus OPTIONS (build output to stderr)
# and prints its path. This is the one way scripts find a built binary: the
# path comes from `bazel info`, so it is right for any output base,
# configuration or --symlink_prefix, and never depends on which build the
# workspace's bazel-bin link follows. With --if-built, a normal build already
# behind the workspace's bazel-bin link is used as it is, without calling
# Bazel (for scripts/pyexec, where start-up time matters); a sanitizer build
# there is not used. Returns non-zero if the build fails.
bazel_binary() {
    local if_built=0
    if [ "${1:-}" = --if-built ]; then
        if_built=1
        shift
    fi
    local label=$1
    shift
    local rel=${label#//}
    rel="${rel%%:*}/${rel#*:}"
    if [ "$if_built" = 1 ] && [ -x "$repo/bazel-bin/$rel" ] &&
        [ -z "$(sanitizer_of "$repo/bazel-bin/$rel")" ]; then
        printf '%s\n' "$repo/bazel-bin/$rel"
        return 0
    fi
    (cd "$repo" && bz build --noshow_progress "$@" "$label" >&2) || return 1
    local bin
    bin=$(cd "$repo" && bazel_bin "$@") && [ -n "$bin" ] || return 1
    printf '%s\n' "$bin/$rel"
}

# sanitizer_of FILE: prints "asan", "ubsan", "tsan" or "msan" when FILE is a
# binary built with that sanitizer (its runtime's entry points are among its
# symbols), nothing otherwise. Uses nm (binutils, which gcc depends on).
sanitizer_of() {
    local syms
    syms=$( { nm -D "$1"; nm "$1"; } 2>/dev/null) || true
    case "$syms" in
    *__asan_init*) echo asan ;;
    *__ubsan_handle_*) echo ubsan ;;
    *__tsan_init*) echo tsan ;;
    *__msan_init*) echo msan ;;
    esac
}
