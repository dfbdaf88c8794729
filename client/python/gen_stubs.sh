#!/usr/bin/env bash
# Generates the Python gRPC stubs of proto/ into
# python_executor_client/_gen/ (git-ignored): executor (pyexec/v1) and the
# standard health service (grpc/health/v1).
#
# protoc writes absolute imports ("from pyexec.v1 import executor_pb2");
# they are rewritten to the package's own path so that _gen never has to be
# on sys.path (where its "grpc" directory would shadow grpcio itself).
# Idempotent; needs protoc and /usr/bin/grpc_python_plugin.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
pkg=python_executor_client
gen="$here/$pkg/_gen"
tmp="$(mktemp -d "$here/$pkg/._gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

protoc -I "$repo/proto" -I /usr/include \
    --python_out="$tmp" --grpc_python_out="$tmp" \
    --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
    pyexec/v1/executor.proto grpc/health/v1/health.proto

# Package markers, then package-relative imports of the generated modules.
for d in "$tmp" "$tmp/pyexec" "$tmp/pyexec/v1" "$tmp/grpc" "$tmp/grpc/health" "$tmp/grpc/health/v1"; do
    : >"$d/__init__.py"
done
find "$tmp" -name '*_pb2*.py' -print0 | xargs -0 sed -i -E \
    -e "s/^from (pyexec\.v1|grpc\.health\.v1) import /from $pkg._gen.\1 import /"

rm -rf "$gen"
mv "$tmp" "$gen"
trap - EXIT
echo "gen_stubs: wrote $gen"
