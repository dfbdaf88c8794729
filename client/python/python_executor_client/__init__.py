"""Python client of the pyexec service (gRPC).

Mirrors the original ``python_executor_client`` API on the gRPC service
defined by proto/pyexec/v1/executor.proto. The generated stubs are created
by ``client/python/gen_stubs.sh`` into ``python_executor_client/_gen/``.
"""

from .client import (
    ExecutionPage,
    PythonExecutorClient,
    PythonExecutorError,
    make_tar,
    server_target,
    server_uses_tls,
)
from .types import (
    ExecutionConfig,
    ExecutionResult,
    ExecutionStatus,
    Metadata,
    OutputChunk,
    ResourceUsage,
)

__version__ = "0.1.0"

__all__ = [
    "PythonExecutorClient",
    "PythonExecutorError",
    "ExecutionResult",
    "Metadata",
    "ExecutionConfig",
    "ExecutionStatus",
    "OutputChunk",
    "ResourceUsage",
    "ExecutionPage",
    "make_tar",
    "server_target",
    "server_uses_tls",
]
