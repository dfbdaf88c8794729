"""The generated gRPC modules (from client/python/gen_stubs.sh).

They live in ``python_executor_client/_gen/`` (not in git); if they are
missing, run ``client/python/gen_stubs.sh`` once.
"""

try:
    from ._gen.grpc.health.v1 import health_pb2, health_pb2_grpc
    from ._gen.pyexec.v1 import executor_pb2, executor_pb2_grpc
except ImportError as e:  # pragma: no cover - depends on the checkout
    raise ImportError(
        "python_executor_client: generated stubs not found; run client/python/gen_stubs.sh "
        f"({e})"
    ) from e

__all__ = ["executor_pb2", "executor_pb2_grpc", "health_pb2", "health_pb2_grpc"]
