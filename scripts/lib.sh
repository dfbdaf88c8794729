# Shared by scripts/run, scripts/pyexec and scripts/test; sourced, not run.
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

# bazel_bin: prints the bazel-bin directory (independent of workspace symlinks).
bazel_bin() {
    bz info bazel-bin 2>/dev/null
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
