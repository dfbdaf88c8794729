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
