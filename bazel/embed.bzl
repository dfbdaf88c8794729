"""Data built into the binary at compile time.

embed_bytes_c_library: a cc_library whose header declares
`extern const unsigned char SYMBOL[]` and `extern const size_t SYMBOL_len`
holding the bytes of one file (made by bazel/embed_bytes.sh with od + sed).
The header is included as "<package>/<name>.h".

descriptor_set_c_library: the same for the FileDescriptorSet that protoc
writes for `srcs` plus everything they import (--include_imports), without
source info. Import paths are relative to the package directory, as for
protoc_c_library, and /usr/include supplies the well-known protos.
"""

load("//bazel:copts.bzl", "PX_COPTS")

def embed_bytes_c_library(name, src, symbol, visibility = None):
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = [name + ".c", name + ".h"],
        tools = ["//bazel:embed_bytes.sh"],
        cmd = "$(location //bazel:embed_bytes.sh) %s $(location %s) $(location %s.c) $(location %s.h)" % (
            symbol,
            src,
            name,
            name,
        ),
        message = "embed " + symbol,
    )
    native.cc_library(
        name = name,
        srcs = [name + ".c"],
        hdrs = [name + ".h"],
        copts = PX_COPTS,
        visibility = visibility,
    )

def descriptor_set_c_library(name, srcs, symbol, visibility = None):
    pkg = native.package_name()
    native.genrule(
        name = name + "_set",
        srcs = srcs,
        outs = [name + ".binpb"],
        cmd = " ".join([
            "protoc",
            "-I" + (pkg if pkg else "."),
            "-I/usr/include",
            "--include_imports",
            "--descriptor_set_out=$@",
        ] + ["$(location %s)" % s for s in srcs]),
        message = "protoc descriptor set " + name,
    )
    embed_bytes_c_library(
        name = name,
        src = name + ".binpb",
        symbol = symbol,
        visibility = visibility,
    )
