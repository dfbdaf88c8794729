"""protoc_c_library: C code for .proto files via protoc-c (protobuf-c).

Runs the system `protoc` with the `protoc-gen-c` plugin (Debian packages
protobuf-compiler and protobuf-c-compiler) and compiles the result into a
cc_library. Import paths are relative to `import_prefix` (the package
directory), so `proto/pyexec/v1/executor.proto` is imported as
`pyexec/v1/executor.proto` and its header is included as
`"pyexec/v1/executor.pb-c.h"`. `system_srcs` names well-known protos that
are taken from /usr/include (e.g. "google/protobuf/timestamp.proto").
"""

load("//bazel:copts.bzl", "PX_GENERATED_COPTS")

def _strip(path, suffix):
    return path[:-len(suffix)]

def protoc_c_library(name, srcs, system_srcs = [], deps = [], visibility = None):
    pkg = native.package_name()
    local = [s for s in srcs]
    outs_c = []
    outs_h = []
    for s in local + system_srcs:
        base = _strip(s, ".proto")
        outs_c.append(base + ".pb-c.c")
        outs_h.append(base + ".pb-c.h")

    native.genrule(
        name = name + "_gen",
        srcs = local,
        outs = outs_c + outs_h,
        cmd = " ".join([
            "protoc",
            "-I" + (pkg if pkg else "."),
            "-I/usr/include",
            "--c_out=$(RULEDIR)",
        ] + ["$(location %s)" % s for s in local] + system_srcs),
        message = "protoc-c " + name,
    )

    native.cc_library(
        name = name,
        srcs = outs_c,
        hdrs = outs_h,
        includes = ["."],
        copts = PX_GENERATED_COPTS,
        deps = deps + ["//bazel:protobuf_c"],
        visibility = visibility,
    )
