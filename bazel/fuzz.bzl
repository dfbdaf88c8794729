"""px_fuzz_target: one libFuzzer target of tests/fuzz/ and its replay test.

`px_fuzz_target(name = "tar", deps = [...])` makes, from tests/fuzz/tar_fuzz.c:

  :tar_fuzz          the fuzzer. With `--config=fuzz` (clang, libFuzzer and
                     the sanitizers; .bazelrc) it links libFuzzer's main and is
                     what scripts/fuzz runs. Otherwise it links
                     replay_main.c: it runs the inputs named on its command
                     line once each, so the default build compiles every
                     target and its sources come from these BUILD files.
  :tar_fuzz_replay   a test (default build): every seed of
                     tests/fuzz/corpus/tar/ and every kept crash of
                     tests/fuzz/regressions/tar/ passes the target's checks.
                     It fails when it replayed nothing (no corpus).
"""

load("//bazel:copts.bzl", "PX_COPTS")

def px_fuzz_target(name, deps):
    src = name + "_fuzz.c"
    native.cc_binary(
        name = name + "_fuzz",
        testonly = 1,
        srcs = [src] + select({
            "//tests/fuzz:fuzzing": [],
            "//conditions:default": ["replay_main.c"],
        }),
        copts = PX_COPTS,
        linkopts = select({
            "//tests/fuzz:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps + ["//server/base:cleanup"],
    )
    # The input directories that exist (a target may have no regressions).
    inputs = [d for d in ["corpus/" + name, "regressions/" + name] if native.glob([d + "/*"])]
    native.cc_test(
        name = name + "_fuzz_replay",
        size = "small",
        srcs = [src, "replay_main.c"],
        copts = PX_COPTS,
        args = ["tests/fuzz/" + d for d in inputs],
        data = native.glob([d + "/**" for d in inputs], exclude = ["**/*.md"]),
        deps = deps + ["//server/base:cleanup"],
    )
