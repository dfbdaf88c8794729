"""Type definitions of the pyexec Python client.

These mirror the original ``python_executor_client.types`` field for field,
so code written against that client keeps working:

- ExecutionStatus: the lifecycle of an execution (a ``str`` enum)
- ExecutionConfig: resource limits and settings
- Metadata: what to run and how
- ExecutionResult: the state and output of an execution

Additions for the gRPC service: ``ExecutionResult.reason``,
``ExecutionResult.output_truncated``, ``ExecutionResult.usage``
(a ResourceUsage), the raw output bytes ``ExecutionResult.stdout_bytes`` /
``stderr_bytes``, the Eval fields ``result``, ``error_type``,
``error_line``, ``error_message``, ``Metadata.python_version``, and
OutputChunk for ``PythonExecutorClient.stream_output``.
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional, Union


class ExecutionStatus(str, Enum):
    """Status of an execution.

    Attributes:
        PENDING: Accepted and queued; no container runs the program yet.
        RUNNING: The sandbox has started.
        COMPLETED: The program ran and ended, whatever its exit code (see
            ``ExecutionResult.reason`` for timeouts and limits).
        FAILED: The service could not run it (``ExecutionResult.error`` says why).
        KILLED: Ended by ``kill()`` or by cancelling a synchronous call.

    Example:
        >>> result = client.get_execution(exec_id)
        >>> if result.status == ExecutionStatus.COMPLETED:
        ...     print(result.stdout)
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED, FAILED and KILLED."""
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.KILLED)


@dataclass
class ExecutionConfig:
    """Resource limits and execution settings.

    The defaults equal the server's defaults. A value above the server's
    configured maximum is rejected (``PythonExecutorError`` with
    ``grpc.StatusCode.INVALID_ARGUMENT``), never silently clamped.

    Attributes:
        timeout_seconds: Wall-clock limit of the whole run in seconds. Default 300.
        network_disabled: If True (default) the sandbox has only loopback.
        memory_mb: Memory limit in MB, swap excluded. Default 1024.
        disk_mb: Size of the writable /work in MB. Default 2048.
        cpu_shares: Relative CPU weight. Default 1024.

    Example:
        >>> config = ExecutionConfig(timeout_seconds=60, memory_mb=512)
        >>> metadata = Metadata(entrypoint="main.py", config=config)
    """

    timeout_seconds: int = 300
    network_disabled: bool = True
    memory_mb: int = 1024
    disk_mb: int = 2048
    cpu_shares: int = 1024

    def to_dict(self) -> dict:
        """Convert to a dictionary for JSON serialization."""
        return {
            "timeout_seconds": self.timeout_seconds,
            "network_disabled": self.network_disabled,
            "memory_mb": self.memory_mb,
            "disk_mb": self.disk_mb,
            "cpu_shares": self.cpu_shares,
        }


@dataclass
class Metadata:
    """Execution metadata specifying how to run the code.

    Attributes:
        entrypoint: The Python file to execute (e.g. "main.py"). Empty: the
            server picks main.py, then __main__.py, then the first .py file.
        docker_image: Image to run in. None: the server's default image.
        requirements_txt: Contents of a requirements.txt installed with pip
            before the program. With the network disabled (the default) only
            packages shipped in the project can be installed.
        pre_commands: Shell commands run in /work before the program.
        stdin: Data fed to the script's standard input (str is UTF-8 encoded).
        config: Resource limits. None: the server's defaults. See ExecutionConfig.
        env_vars: Environment variables as "KEY=value" strings.
        script_args: Arguments passed to the script (sys.argv[1:]).
        python_version: Python version, e.g. "3.13": the server's image for
            it. None: the server's default image. Not with docker_image.

    Example:
        >>> metadata = Metadata(
        ...     entrypoint="main.py",
        ...     env_vars=["MODE=fast"],
        ...     script_args=["--verbose", "input.txt"],
        ...     config=ExecutionConfig(timeout_seconds=30),
        ... )
    """

    entrypoint: str = ""
    docker_image: Optional[str] = None
    requirements_txt: Optional[str] = None
    pre_commands: Optional[list[str]] = None
    stdin: Optional[Union[str, bytes]] = None
    config: Optional[ExecutionConfig] = None
    env_vars: Optional[list[str]] = None
    script_args: Optional[list[str]] = None
    python_version: Optional[str] = None

    def to_dict(self) -> dict:
        """Convert to a dictionary for JSON serialization (unset fields omitted)."""
        data: dict[str, Any] = {"entrypoint": self.entrypoint}
        if self.docker_image:
            data["docker_image"] = self.docker_image
        if self.requirements_txt:
            data["requirements_txt"] = self.requirements_txt
        if self.pre_commands:
            data["pre_commands"] = self.pre_commands
        if self.stdin:
            data["stdin"] = self.stdin
        if self.config:
            data["config"] = self.config.to_dict()
        if self.env_vars:
            data["env_vars"] = self.env_vars
        if self.script_args:
            data["script_args"] = self.script_args
        if self.python_version:
            data["python_version"] = self.python_version
        return data


@dataclass
class ResourceUsage:
    """Resources the sandbox used, measured from its cgroup.

    Attributes:
        peak_memory_bytes: Peak memory of the sandbox in bytes.
        cpu_time_ms: User + system CPU time in milliseconds.
    """

    peak_memory_bytes: int = 0
    cpu_time_ms: int = 0

    def to_dict(self) -> dict:
        """Convert to a dictionary for JSON serialization."""
        return {"peak_memory_bytes": self.peak_memory_bytes, "cpu_time_ms": self.cpu_time_ms}


def _parse_time(value: Any) -> Optional[datetime]:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _format_time(value: Optional[datetime]) -> Optional[str]:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _text_and_bytes(value: Any) -> tuple[Optional[str], Optional[bytes]]:
    if value is None:
        return None, None
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        return raw.decode("utf-8", errors="replace"), raw
    return str(value), str(value).encode("utf-8")


@dataclass
class ExecutionResult:
    """Result of an execution: its state and output.

    ``stdout`` and ``stderr`` are ``str``, decoded from the program's bytes as
    UTF-8 with ``errors="replace"`` (as the original client returned text).
    The exact bytes are in ``stdout_bytes`` and ``stderr_bytes``.

    Attributes:
        execution_id: "exe_" followed by a UUID.
        status: Where the execution is in its lifecycle.
        stdout: Standard output so far (the kept prefix if truncated).
        stderr: Standard error so far.
        exit_code: Process exit code, 128+N when killed by signal N; None
            until the execution is terminal.
        error: For FAILED: why the service could not run the program.
        started_at: When the sandbox started the program (UTC, naive).
        finished_at: When the execution became terminal (UTC, naive).
        duration_ms: finished_at - started_at in milliseconds.
        reason: Why it ended ("exited", "timeout", "memory_limit",
            "output_limit", "killed", "client_cancelled", "lost",
            "sandbox_error"); None until terminal.
        output_truncated: True if the output passed the server's cap.
        usage: Resource usage of the sandbox, if reported.
        stdout_bytes: The raw bytes of stdout.
        stderr_bytes: The raw bytes of stderr.
        result: Eval only: repr() of the value of the code's last top-level
            expression; None when it has none, the value is None, or the
            code raised.
        error_type: The uncaught exception's type (e.g. "NameError") when
            an Eval's code raised; None otherwise.
        error_line: Its line in the entrypoint file; None if unknown.
        error_message: str() of that exception.

    Example:
        >>> result = client.execute_sync(files={"main.py": "print('hello')"})
        >>> result.status, result.exit_code, result.stdout
        (<ExecutionStatus.COMPLETED: 'completed'>, 0, 'hello\\n')
    """

    execution_id: str
    status: ExecutionStatus
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    exit_code: Optional[int] = None
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    duration_ms: Optional[int] = None
    reason: Optional[str] = None
    output_truncated: bool = False
    usage: Optional[ResourceUsage] = None
    stdout_bytes: Optional[bytes] = field(default=None, repr=False)
    stderr_bytes: Optional[bytes] = field(default=None, repr=False)
    result: Optional[str] = None
    error_type: Optional[str] = None
    error_line: Optional[int] = None
    error_message: Optional[str] = None

    @classmethod
    def from_dict(cls, data: dict) -> "ExecutionResult":
        """Create an ExecutionResult from a dictionary, e.g. a JSON response
        of the original service or the output of ``pyexec ... --json``.

        ``stdout``/``stderr`` may be ``str`` or ``bytes``; timestamps may be
        ISO 8601 strings (a trailing "Z" is accepted) or datetimes.

        Args:
            data: The dictionary; "execution_id" and "status" are required.

        Returns:
            ExecutionResult: The parsed result.
        """
        stdout, stdout_bytes = _text_and_bytes(data.get("stdout"))
        stderr, stderr_bytes = _text_and_bytes(data.get("stderr"))
        if data.get("stdout_bytes") is not None:
            stdout_bytes = bytes(data["stdout_bytes"])
        if data.get("stderr_bytes") is not None:
            stderr_bytes = bytes(data["stderr_bytes"])
        usage = data.get("usage")
        if isinstance(usage, dict):
            usage = ResourceUsage(
                peak_memory_bytes=int(usage.get("peak_memory_bytes") or 0),
                cpu_time_ms=int(usage.get("cpu_time_ms") or 0),
            )
        reason = data.get("reason")
        if reason in ("", "unspecified"):
            reason = None
        return cls(
            execution_id=data["execution_id"],
            status=ExecutionStatus(data["status"]),
            stdout=stdout,
            stderr=stderr,
            exit_code=data.get("exit_code"),
            error=data.get("error") or None,
            started_at=_parse_time(data.get("started_at")),
            finished_at=_parse_time(data.get("finished_at")),
            duration_ms=data.get("duration_ms"),
            reason=reason,
            output_truncated=bool(data.get("output_truncated", False)),
            usage=usage,
            stdout_bytes=stdout_bytes,
            stderr_bytes=stderr_bytes,
            result=data.get("result"),
            error_type=data.get("error_type") or None,
            error_line=data.get("error_line") or None,
            error_message=data.get("error_message") if data.get("error_type") else None,
        )

    def to_dict(self) -> dict:
        """Convert to a JSON-serializable dictionary (the shape from_dict
        reads and ``pyexec --json`` prints; raw bytes are left out)."""
        return {
            "execution_id": self.execution_id,
            "status": self.status.value,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "error": self.error,
            "started_at": _format_time(self.started_at),
            "finished_at": _format_time(self.finished_at),
            "duration_ms": self.duration_ms,
            "reason": self.reason,
            "output_truncated": self.output_truncated,
            "usage": self.usage.to_dict() if self.usage else None,
            "result": self.result,
            "error_type": self.error_type,
            "error_line": self.error_line or 0,
            "error_message": self.error_message,
        }


@dataclass
class OutputChunk:
    """One message of ``PythonExecutorClient.stream_output``.

    Attributes:
        stream: "stdout" or "stderr" for output; None in the final message.
        data: The output bytes (empty in the final message).
        offset: Absolute offset of data[0] in the combined stdout+stderr log;
            in the final message, the log's total length.
        result: Only in the final message: the terminal ExecutionResult
            (its stdout/stderr are empty; the chunks carried them).
    """

    stream: Optional[str]
    data: bytes
    offset: int
    result: Optional[ExecutionResult] = None

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8 with errors="replace"."""
        return self.data.decode("utf-8", errors="replace")
