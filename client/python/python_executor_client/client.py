"""Python client of the pyexec gRPC service.

Runs Python projects in fresh, locked-down containers on a pyexec server.
The API follows the original ``PythonExecutorClient`` (execute_sync,
execute_async, get_execution, kill, wait_for_completion, eval) and adds
``stream_output``, ``list_executions`` and ``health``; client/python/README.md
lists where it differs.

Example:
    >>> from python_executor_client import PythonExecutorClient
    >>> with PythonExecutorClient("127.0.0.1:50051") as client:
    ...     result = client.execute_sync(files={"main.py": "print('Hello, World!')"})
    ...     print(result.stdout, result.exit_code)
    Hello, World!
     0

Errors: every gRPC failure is raised as PythonExecutorError, whose ``code``
is the ``grpc.StatusCode`` (e.g. NOT_FOUND for an unknown execution id,
INVALID_ARGUMENT for a malformed one or a bad request) and ``details`` the
server's message. It is an ``OSError``, as the original client's
``requests`` errors are, and has their ``response.status_code`` (404 for
NOT_FOUND, ...). A program that fails is not an error: its result says so.

Threads: a client may be shared by threads (gRPC channels are thread-safe);
close it once, after the last call.
"""

import fnmatch
import importlib
import io
import os
import stat
import tarfile
import time
from pathlib import Path
from typing import Iterator, Optional, Union

import grpc
from google.protobuf import wrappers_pb2

from ._proto import executor_pb2, executor_pb2_grpc, health_pb2, health_pb2_grpc
from .types import (
    ExecutionConfig,
    ExecutionResult,
    ExecutionStatus,
    Metadata,
    OutputChunk,
    ResourceUsage,
)

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_PORT = 50051
# A synchronous result carries up to the server's output cap (16 MiB by
# default) in one message: accept well above that.
MAX_RECEIVE_BYTES = 128 * 1024 * 1024

FilesArg = Union[dict, Path, str, bytes, bytearray, None]

_STATUS = {
    executor_pb2.EXECUTION_STATUS_PENDING: ExecutionStatus.PENDING,
    executor_pb2.EXECUTION_STATUS_RUNNING: ExecutionStatus.RUNNING,
    executor_pb2.EXECUTION_STATUS_COMPLETED: ExecutionStatus.COMPLETED,
    executor_pb2.EXECUTION_STATUS_FAILED: ExecutionStatus.FAILED,
    executor_pb2.EXECUTION_STATUS_KILLED: ExecutionStatus.KILLED,
}

_STREAMS = {executor_pb2.STREAM_STDOUT: "stdout", executor_pb2.STREAM_STDERR: "stderr"}

_CONFIG_FIELDS = ("timeout_seconds", "network_disabled", "memory_mb", "disk_mb", "cpu_shares")
_METADATA_FIELDS = ("entrypoint", "docker_image", "requirements_txt", "pre_commands", "stdin",
                    "env_vars", "script_args", "python_version")

# The HTTP status the original service answers with for each gRPC code.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ErrorResponse:
    """What callers of the original client read from ``requests``'
    ``HTTPError.response``: ``status_code``, ``reason`` and ``text``."""

    def __init__(self, status_code: int, reason: str, text: str):
        self.status_code = status_code
        self.reason = reason
        self.text = text
        self.ok = False

    def json(self) -> dict:
        return {"error": self.text}


class PythonExecutorError(OSError):
    """A gRPC call to the pyexec server failed.

    An ``OSError``, as the ``requests`` exceptions the original client
    raised are (``except OSError`` / ``except IOError`` keep working), with
    their ``response.status_code``.

    Attributes:
        code: The ``grpc.StatusCode`` (NOT_FOUND, INVALID_ARGUMENT,
            RESOURCE_EXHAUSTED, UNAVAILABLE, FAILED_PRECONDITION,
            OUT_OF_RANGE, DEADLINE_EXCEEDED, ...).
        details: The server's status message.
        method: The RPC that failed, e.g. "GetExecution".
        response: An ErrorResponse: the HTTP status the original service
            gives for this failure (404 for NOT_FOUND, 400 for
            INVALID_ARGUMENT, 429, 503, ...; 500 otherwise) and the message.
    """

    def __init__(self, code: grpc.StatusCode, details: str, method: str = ""):
        self.code = code
        self.details = details or ""
        self.method = method
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        self.response = ErrorResponse(_HTTP_STATUS.get(code, 500), name, self.details)
        super().__init__(f"{method}: {name}: {self.details}" if method else
                         f"{name}: {self.details}")

    def __str__(self) -> str:  # OSError's own would prefix an errno
        return self.args[0] if self.args else ""

    def __reduce__(self):
        return (type(self), (self.code, self.details, self.method))


def _error(method: str, e: grpc.RpcError, server: str = "") -> PythonExecutorError:
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    if code == grpc.StatusCode.UNAVAILABLE and server:
        # Unreachable (or shutting down): say which server was tried.
        details = f"server {server}: {details}"
    return PythonExecutorError(code, details, method)


def server_uses_tls(address: Optional[str]) -> bool:
    """True for an "https://" or "grpcs://" address: the client then opens
    a TLS channel (verified against tls_ca, or the system's root
    certificates)."""
    return bool(address) and address.startswith(("https://", "grpcs://"))


def server_target(address: Optional[str]) -> str:
    """The gRPC target for a server address as people write it.

    "host:port" and "[v6]:port" are kept; "host", "[v6]" and a bare IPv6
    address get port 50051 (443 after "https://"); "http://", "grpc://",
    "https://" and "grpcs://" (and a trailing "/") are dropped (the last two
    make the channel TLS: server_uses_tls); gRPC's own "unix:",
    "unix-abstract:", "ipv4:", "ipv6:" and "dns:" targets pass through. None
    or "" is "127.0.0.1:50051".

    Raises:
        ValueError: an unknown scheme, a path, no host, or a port outside
            1..65535.
    """
    if not address:
        return DEFAULT_SERVER
    if address.startswith(("unix:", "unix-abstract:", "ipv4:", "ipv6:", "dns:")):
        return address
    default_port = 443 if address.startswith("https://") else DEFAULT_PORT
    h = address
    for prefix in ("http://", "grpc://", "https://", "grpcs://"):
        if h.startswith(prefix):
            h = h[len(prefix):]
    if "://" in h:
        raise ValueError(f"server address {address!r}: unknown scheme "
                         "(use host:port, http:// or grpc://)")
    h = h.rstrip("/")
    if "/" in h:
        raise ValueError(f"server address {address!r}: a path is not part of it")

    def port_ok(p):
        return p.isdigit() and 1 <= int(p) <= 65535

    if h.startswith("["):
        host, sep, rest = h.partition("]")
        if not sep or host == "[":
            raise ValueError(f"server address {address!r}: bad IPv6 address")
        if not rest:
            return f"{h}:{default_port}"
        if not rest.startswith(":"):
            raise ValueError(f"server address {address!r}: expected [v6]:port")
        if not port_ok(rest[1:]):
            raise ValueError(f"server address {address!r}: bad port {rest[1:]!r}")
        return h
    if h.count(":") > 1:
        return f"[{h}]:{default_port}"
    host, sep, port = h.partition(":")
    if not host:
        raise ValueError(f"server address {address!r}: no host")
    if not sep:
        return f"{h}:{default_port}"
    if not port_ok(port):
        raise ValueError(f"server address {address!r}: bad port {port!r}")
    return h


def _result_from_proto(msg) -> ExecutionResult:
    status = _STATUS.get(msg.status, ExecutionStatus.PENDING)
    terminal = status.is_terminal
    reason = None
    if msg.reason:
        reason = executor_pb2.TerminationReason.Name(msg.reason)
        reason = reason[len("TERMINATION_REASON_"):].lower()
    return ExecutionResult(
        execution_id=msg.execution_id,
        status=status,
        stdout=msg.stdout.decode("utf-8", errors="replace"),
        stderr=msg.stderr.decode("utf-8", errors="replace"),
        exit_code=msg.exit_code if terminal else None,
        error=msg.error or None,
        started_at=msg.started_at.ToDatetime() if msg.HasField("started_at") else None,
        finished_at=msg.finished_at.ToDatetime() if msg.HasField("finished_at") else None,
        duration_ms=msg.duration_ms if (terminal or msg.duration_ms) else None,
        reason=reason,
        output_truncated=msg.output_truncated,
        usage=(ResourceUsage(peak_memory_bytes=msg.usage.peak_memory_bytes,
                             cpu_time_ms=msg.usage.cpu_time_ms)
               if msg.HasField("usage") else None),
        stdout_bytes=bytes(msg.stdout),
        stderr_bytes=bytes(msg.stderr),
        result=msg.result.value if msg.HasField("result") else None,
        error_type=msg.error_type or None,
        error_line=msg.error_line or None,
        error_message=msg.error_message if msg.error_type else None,
    )


class ExecutionPage(list):
    """A list of ExecutionResults (newest first, without stdout/stderr) with
    the token of the next page ("" when there is none)."""

    def __init__(self, items=(), next_page_token: str = ""):
        super().__init__(items)
        self.next_page_token = next_page_token


def _as_bytes(content) -> bytes:
    if isinstance(content, str):
        return content.encode("utf-8")
    return bytes(content)


# Left out of a directory by default (a .pyexecignore "!" line undoes one).
DEFAULT_IGNORE = (".git", ".hg", ".svn", "__pycache__/", "*.pyc", ".mypy_cache/",
                  ".pytest_cache/", ".ruff_cache/")
_MAX_DIR_DEPTH = 64
_COMPRESSED_TAR = {".tar.gz": "gzip", ".tgz": "gzip", ".tar.bz2": "bz2", ".tbz2": "bz2",
                   ".tar.xz": "lzma", ".txz": "lzma"}


def _segment_match(pattern, name):
    return fnmatch.fnmatchcase(name, pattern)


def _segments_match(pat, path):
    if not pat:
        return not path
    if pat[0] == "**":
        # A trailing "**" matches one or more segments: what is inside.
        first = 1 if len(pat) == 1 else 0
        return any(_segments_match(pat[1:], path[k:]) for k in range(first, len(path) + 1))
    return bool(path) and _segment_match(pat[0], path[0]) and _segments_match(pat[1:], path[1:])


class IgnoreRules:
    """Which files of a directory are not sent: DEFAULT_IGNORE, then the
    directory's .pyexecignore, in the subset of gitignore syntax the CLI
    reads (docs/cli.md): comments, "!" negation, "/" anchoring, a trailing
    "/" for directories only, "*", "?", "[...]" within a name and "**" for
    any number of directories. The last matching rule decides."""

    def __init__(self, lines=()):
        self.rules = []
        for line in list(DEFAULT_IGNORE) + list(lines):
            self._add(line)

    @classmethod
    def for_directory(cls, root: Path) -> "IgnoreRules":
        f = Path(root) / ".pyexecignore"
        lines = f.read_text().splitlines() if f.is_file() and not f.is_symlink() else []
        return cls(lines)

    def _add(self, line):
        line = line.rstrip(" \r")
        if not line or line.startswith("#"):
            return
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith(("\\#", "\\!")):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/") if dir_only else line
        anchored = line.startswith("/") or "/" in line.lstrip("/")
        line = line.lstrip("/")
        if line:
            self.rules.append((line.split("/") if anchored else line, negate, dir_only, anchored))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        segs = rel.split("/")
        out = False
        for pat, negate, dir_only, anchored in self.rules:
            if dir_only and not is_dir:
                continue
            hit = _segments_match(pat, segs) if anchored else _segment_match(pat, segs[-1])
            if hit:
                out = not negate
        return out


def _tar_from_dir(root: Path) -> bytes:
    """A plain tar of the directory `root`: regular files with their
    permission bits and symbolic links as links (never what they point to:
    the server refuses a link that leaves the project), walked in name
    order; what IgnoreRules leaves out, and other file types, are skipped."""
    rules = IgnoreRules.for_directory(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def walk(d: Path, rel: str, depth: int):
            if depth > _MAX_DIR_DEPTH:
                raise ValueError(f"{d}: nested deeper than {_MAX_DIR_DEPTH} directories")
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                r = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if rules.ignored(r, stat.S_ISDIR(st.st_mode)):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    walk(Path(entry.path), r, depth + 1)
                elif stat.S_ISLNK(st.st_mode):
                    info = tarfile.TarInfo(r)
                    info.type = tarfile.SYMTYPE
                    info.linkname = os.readlink(entry.path)
                    info.mode = 0o777
                    tf.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    data = Path(entry.path).read_bytes()
                    info = tarfile.TarInfo(r)
                    info.size = len(data)
                    info.mode = stat.S_IMODE(st.st_mode)
                    tf.addfile(info, io.BytesIO(data))
        walk(Path(root), "", 0)
        if not tf.getmembers():
            raise ValueError(f"directory {root} has no files to send")
    return buf.getvalue()


def _compressed_tar(path: Path) -> Optional[bytes]:
    """The plain tar inside a .tar.gz/.tgz/.tar.bz2/.tar.xz file, or None for
    another name."""
    for suffix, module in _COMPRESSED_TAR.items():
        if path.name.endswith(suffix):
            return importlib.import_module(module).decompress(path.read_bytes())
    return None


def _pem(value, what: str) -> Optional[bytes]:
    """PEM bytes from bytes, or from the file a str or PathLike names."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    try:
        with open(value, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{what} {os.fspath(value)!r}: {e.strerror}") from None


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds "authorization: Bearer TOKEN" to every call."""

    def __init__(self, token: str):
        self._md = ("authorization", f"Bearer {token}")

    def _add(self, details):
        md = list(details.metadata or []) + [self._md]
        return _CallDetails(details.method, details.timeout, md, details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._add(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._add(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class PythonExecutorClient:
    """Client of the pyexec service, over a plaintext or TLS gRPC channel.

    Usable as a context manager (the channel is closed on exit).

    Args:
        server: The server's address: "host:port", "host" (port 50051),
            "http://host:port" or "grpc://host:port" (plaintext), or
            "https://host[:port]" (TLS, port 443 by default; see
            server_target()). The original client's base URL, e.g.
            "http://pyexec.cluster:9999/", works as it is. Default
            "127.0.0.1:50051", or the PYEXEC_SERVER environment variable
            when set. A call that cannot reach it raises PythonExecutorError
            UNAVAILABLE naming the address tried.
        timeout: Deadline in seconds for calls that wait for the program
            (execute_sync, stream_output); None: no deadline. When the
            deadline of execute_sync passes the server kills the execution.
        call_timeout: Deadline in seconds for calls that return at once
            (execute_async, get_execution, kill, health). Default 30.
        max_receive_bytes: Largest message accepted from the server.
        tls_ca: The CAs the server's certificate must chain to: PEM bytes or
            a file name (default: PYEXEC_TLS_CA, else the system's roots).
            Setting it (or tls_cert) makes the channel TLS whatever the
            address's scheme.
        tls_cert, tls_key: The client's certificate and key (PEM bytes or
            file names), for a server that asks for one (mutual TLS);
            default PYEXEC_TLS_CERT and PYEXEC_TLS_KEY.
        token: Sent with every call as "authorization: Bearer TOKEN" (a
            server with tenants needs one); default PYEXEC_TOKEN.

    Example:
        >>> client = PythonExecutorClient("127.0.0.1:50051")
        >>> exec_id = client.execute_async(files={"main.py": "print('hi')"})
        >>> for chunk in client.stream_output(exec_id):
        ...     if chunk.result is None:
        ...         print(chunk.text, end="")
        hi
        >>> client.close()
    """

    def __init__(self, server: Optional[str] = None, timeout: Optional[float] = None,
                 call_timeout: Optional[float] = 30.0,
                 max_receive_bytes: int = MAX_RECEIVE_BYTES, tls_ca=None, tls_cert=None,
                 tls_key=None, token: Optional[str] = None):
        env = os.environ.get
        address = server or env("PYEXEC_SERVER")
        tls_ca = tls_ca if tls_ca is not None else env("PYEXEC_TLS_CA") or None
        tls_cert = tls_cert if tls_cert is not None else env("PYEXEC_TLS_CERT") or None
        tls_key = tls_key if tls_key is not None else env("PYEXEC_TLS_KEY") or None
        token = token if token is not None else env("PYEXEC_TOKEN") or None
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together (a client certificate needs both)")
        if token is not None and (not token or any(c <= " " or c > "~" for c in token)):
            raise ValueError("token: visible ASCII characters only, no spaces")
        self.server = server_target(address)
        self.tls = server_uses_tls(address) or tls_ca is not None or tls_cert is not None
        self.timeout = timeout
        self.call_timeout = call_timeout
        options = [
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", -1),
        ]
        if self.tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_pem(tls_ca, "tls_ca"),
                private_key=_pem(tls_key, "tls_key"),
                certificate_chain=_pem(tls_cert, "tls_cert"))
            self._channel = grpc.secure_channel(self.server, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(self.server, options=options)
        self._raw_channel = self._channel
        if token is not None:
            self._channel = grpc.intercept_channel(self._channel, _BearerToken(token))
        self._stub = executor_pb2_grpc.ExecutorServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # -- lifecycle --

    def close(self) -> None:
        """Closes the channel. Calls after this fail."""
        self._channel.close()

    def __enter__(self) -> "PythonExecutorClient":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def connect(self, timeout: float = 10.0) -> None:
        """Waits until the channel is connected.

        Raises:
            PythonExecutorError: UNAVAILABLE if not connected within `timeout` s.
        """
        try:
            grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise PythonExecutorError(grpc.StatusCode.UNAVAILABLE,
                                      f"not connected to {self.server} within {timeout} s",
                                      "connect") from None

    # -- requests --

    def _build_request(self, files: FilesArg, tar_data: Optional[bytes],
                       metadata: Optional[Metadata], async_: bool, kwargs: dict):
        request_id = kwargs.pop("request_id", None)
        unknown = set(kwargs) - set(_CONFIG_FIELDS) - set(_METADATA_FIELDS)
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")

        req = executor_pb2.ExecuteRequest(**{"async": async_})  # `async` is a keyword
        if request_id:
            req.request_id = request_id

        implied_entrypoint = ""
        if tar_data is not None:
            req.tar = bytes(tar_data)
        elif files is None:
            raise ValueError("Either files or tar_data must be provided")
        elif isinstance(files, dict):
            for path, content in files.items():
                mode = 0
                if isinstance(content, tuple):
                    content, mode = content
                req.files.append(executor_pb2.File(path=str(path), content=_as_bytes(content),
                                                   mode=mode))
        elif isinstance(files, (bytes, bytearray)):
            req.tar = bytes(files)
        else:
            path = Path(files)
            if path.is_dir():
                req.tar = _tar_from_dir(path)
            elif (inner := _compressed_tar(path)) is not None:
                req.tar = inner
            elif path.suffix == ".tar":
                req.tar = path.read_bytes()
            else:
                req.files.append(executor_pb2.File(
                    path=path.name, content=path.read_bytes(),
                    mode=stat.S_IMODE(path.stat().st_mode)))
                implied_entrypoint = path.name

        meta = req.metadata
        if metadata is not None:
            src = {name: getattr(metadata, name) for name in _METADATA_FIELDS}
            config = metadata.config
            explicit = _CONFIG_FIELDS if config is not None else ()
        else:
            src = {name: kwargs.get(name) for name in _METADATA_FIELDS}
            # Only the limits that were given are sent; the rest are the
            # server's defaults (which may be configured below ours).
            explicit = tuple(name for name in _CONFIG_FIELDS if name in kwargs)
            config = ExecutionConfig(**{name: kwargs[name] for name in explicit})

        meta.entrypoint = src["entrypoint"] or implied_entrypoint
        if src["docker_image"]:
            meta.docker_image = src["docker_image"]
        if src["requirements_txt"]:
            meta.requirements_txt = src["requirements_txt"]
        meta.pre_commands.extend(src["pre_commands"] or [])
        if src["stdin"]:
            meta.stdin = _as_bytes(src["stdin"])
        meta.env_vars.extend(src["env_vars"] or [])
        meta.script_args.extend(str(a) for a in (src["script_args"] or []))
        if src["python_version"]:
            meta.python_version = src["python_version"]
        for name in explicit:
            if name == "network_disabled":
                meta.config.network_disabled.CopyFrom(
                    wrappers_pb2.BoolValue(value=bool(config.network_disabled)))
            else:
                setattr(meta.config, name, int(getattr(config, name)))
        return req

    def _execute(self, req, timeout):
        try:
            return self._stub.Execute(req, timeout=timeout)
        except grpc.RpcError as e:
            raise _error("Execute", e, self.server) from None

    # -- the service --

    def execute_sync(self, files: FilesArg = None, tar_data: Optional[bytes] = None,
                     metadata: Optional[Metadata] = None, **kwargs) -> ExecutionResult:
        """Runs a project and waits for its terminal result.

        Args:
            files: The project. One of:
                - dict: {path: content}, content a str (UTF-8), bytes, or a
                  (content, mode) tuple;
                - bytes: an uncompressed tar archive;
                - Path or str: a directory (sent as a tar: relative paths
                  and permission bits kept, symbolic links as links, .git,
                  __pycache__ and what its .pyexecignore names left out; see
                  IgnoreRules), a ``.tar`` file (``.tar.gz``/``.tgz``,
                  ``.tar.bz2`` and ``.tar.xz`` are decompressed here), or a
                  single file (sent under its base name, which becomes the
                  entrypoint).
            tar_data: An uncompressed tar archive (takes precedence over files).
            metadata: A full Metadata; if given, the keyword arguments that
                describe metadata and limits are ignored.
            **kwargs: Shorthand for Metadata and ExecutionConfig fields
                (entrypoint, docker_image, requirements_txt, pre_commands,
                stdin, env_vars, script_args, python_version,
                timeout_seconds, network_disabled, memory_mb, disk_mb,
                cpu_shares) and request_id (idempotency key).

        Returns:
            ExecutionResult: The terminal result with stdout and stderr.

        Raises:
            ValueError: Neither files nor tar_data was given.
            PythonExecutorError: The call failed (e.g. INVALID_ARGUMENT for a
                bad path or an entrypoint that is not among the files).
        """
        req = self._build_request(files, tar_data, metadata, False, dict(kwargs))
        return _result_from_proto(self._execute(req, self.timeout))

    def execute_async(self, files: FilesArg = None, tar_data: Optional[bytes] = None,
                      metadata: Optional[Metadata] = None, **kwargs) -> str:
        """Submits a project and returns its execution id at once.

        Arguments as for execute_sync(). Follow the execution with
        stream_output(), get_execution() or wait_for_completion().

        Returns:
            str: The execution id ("exe_" + UUID).

        Raises:
            ValueError: Neither files nor tar_data was given.
            PythonExecutorError: The call failed.
        """
        req = self._build_request(files, tar_data, metadata, True, dict(kwargs))
        return self._execute(req, self.call_timeout).execution_id

    def get_execution(self, execution_id: str) -> ExecutionResult:
        """The current state of an execution, with its output so far.

        Raises:
            PythonExecutorError: NOT_FOUND for an unknown (or expired) id,
                INVALID_ARGUMENT for a malformed one.
        """
        try:
            msg = self._stub.GetExecution(
                executor_pb2.GetExecutionRequest(execution_id=execution_id),
                timeout=self.call_timeout)
        except grpc.RpcError as e:
            raise _error("GetExecution", e, self.server) from None
        return _result_from_proto(msg)

    def kill(self, execution_id: str) -> ExecutionResult:
        """Kills a pending or running execution and returns its terminal
        result (status KILLED). Idempotent: on a finished execution it
        returns that result unchanged.

        Raises:
            PythonExecutorError: NOT_FOUND / INVALID_ARGUMENT as get_execution.
        """
        try:
            msg = self._stub.Kill(executor_pb2.KillRequest(execution_id=execution_id),
                                  timeout=self.call_timeout)
        except grpc.RpcError as e:
            raise _error("Kill", e, self.server) from None
        return _result_from_proto(msg)

    def stream_output(self, execution_id: str, offset: int = 0,
                      timeout: Optional[float] = None) -> Iterator[OutputChunk]:
        """Streams the combined output of an execution from byte `offset`.

        Yields an OutputChunk per piece of output while the execution runs
        (already-written output is replayed first), then one last chunk whose
        ``result`` is the terminal ExecutionResult. Closing the iterator
        early cancels the call.

        Args:
            execution_id: The id returned by execute_async().
            offset: Absolute byte offset into the combined stdout+stderr log.
            timeout: Deadline in seconds (default: the client's `timeout`).

        Raises:
            PythonExecutorError: NOT_FOUND, INVALID_ARGUMENT (negative
                offset), OUT_OF_RANGE (offset past the end of a finished
                log), DEADLINE_EXCEEDED.
        """
        call = self._stub.StreamOutput(
            executor_pb2.StreamOutputRequest(execution_id=execution_id, offset=offset),
            timeout=self.timeout if timeout is None else timeout)
        try:
            for msg in call:
                result = _result_from_proto(msg.result) if msg.HasField("result") else None
                yield OutputChunk(stream=_STREAMS.get(msg.stream), data=bytes(msg.data),
                                  offset=msg.offset, result=result)
        except grpc.RpcError as e:
            raise _error("StreamOutput", e, self.server) from None
        finally:
            call.cancel()

    def wait_for_completion(self, execution_id: str, poll_interval: float = 1.0,
                            max_wait: Optional[float] = None, *,
                            timeout: Optional[float] = None) -> ExecutionResult:
        """Waits for an execution to finish and returns its terminal result
        (with the full output). The parameters are the original client's, in
        its order.

        The end is awaited on StreamOutput, so it is seen as soon as it
        happens; `poll_interval` is only used against a server without
        StreamOutput, which is then polled with get_execution().

        Args:
            execution_id: The id returned by execute_async().
            poll_interval: Seconds between polls in the fallback.
            max_wait: Seconds to wait at most; None: no limit.
            timeout: Keyword-only alias of max_wait.

        Raises:
            TimeoutError: The execution did not finish within `max_wait`.
            PythonExecutorError: The call failed.
        """
        if max_wait is None:
            max_wait = timeout
        deadline = None if max_wait is None else time.monotonic() + max_wait
        try:
            for chunk in self.stream_output(execution_id, 0, timeout=max_wait):
                if chunk.result is not None:
                    break
        except PythonExecutorError as e:
            if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError(f"Execution did not complete within {max_wait}s") from None
            if e.code != grpc.StatusCode.UNIMPLEMENTED:
                raise
            while True:
                result = self.get_execution(execution_id)
                if result.status.is_terminal:
                    return result
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"Execution did not complete within {max_wait}s") from None
                time.sleep(poll_interval)
        return self.get_execution(execution_id)

    def eval(self, code: Optional[str] = None, *, files=None, entrypoint: Optional[str] = None,
             stdin: Optional[Union[str, bytes]] = None, python_version: Optional[str] = None,
             timeout_seconds: Optional[int] = None, eval_last_expr: bool = True,
             **kwargs) -> ExecutionResult:
        """Runs Python code REPL-style and waits for the result.

        If the last top-level statement of the code is an expression, the
        repr() of its value is in ``result`` (None when there is none, the
        value is None, or the code raised). When the code raised,
        ``error_type``, ``error_line`` (the line in the entrypoint) and
        ``error_message`` say what; stderr has the traceback.

        Args:
            code: The code, run as main.py.
            files: Instead of `code`: the original client's list of
                {"name": ..., "content": ...} dicts, or a {path: content}
                dict.
            entrypoint: With `files`: the file to run (default main.py).
            stdin: Bytes (or UTF-8 text) fed to the program's stdin.
            python_version: e.g. "3.13"; None: the server's default image.
            timeout_seconds: Wall-clock limit (None: the server's default).
            eval_last_expr: False runs the code as a plain program (an
                Execute): no result, no error fields.
            **kwargs: env_vars, requirements_txt, network_disabled,
                memory_mb, disk_mb, cpu_shares, request_id.

        Returns:
            ExecutionResult: the terminal result.

        Raises:
            ValueError: Neither code nor files.
            PythonExecutorError: The call failed (e.g. INVALID_ARGUMENT for
                a Python version the server does not have).

        Example:
            >>> client.eval("x = 5\\ny = 10\\nx + y").result
            '15'
        """
        allowed = {"env_vars", "requirements_txt", "network_disabled", "memory_mb", "disk_mb",
                   "cpu_shares", "request_id"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        as_code = files is None and code is not None
        if files is not None:
            if isinstance(files, (list, tuple)):
                files = {f["name"]: f["content"] for f in files}
        elif code is not None:
            files = {"main.py": code}
        else:
            raise ValueError("Either code or files must be provided")
        limits = {k: kwargs.pop(k) for k in list(kwargs)
                  if k in ("network_disabled", "memory_mb", "disk_mb", "cpu_shares")}
        if timeout_seconds is not None:
            limits["timeout_seconds"] = timeout_seconds
        if not eval_last_expr:
            return self.execute_sync(files=files, entrypoint=entrypoint or "",
                                     stdin=stdin, python_version=python_version,
                                     **limits, **kwargs)
        req = executor_pb2.EvalRequest()
        if as_code:
            req.code = code
        else:
            for path, content in files.items():
                mode = 0
                if isinstance(content, tuple):
                    content, mode = content
                req.files.append(executor_pb2.File(path=str(path), content=_as_bytes(content),
                                                   mode=mode))
        if entrypoint:
            req.entrypoint = entrypoint
        if stdin:
            req.stdin = _as_bytes(stdin)
        if python_version:
            req.python_version = python_version
        if kwargs.get("requirements_txt"):
            req.requirements_txt = kwargs["requirements_txt"]
        req.env_vars.extend(kwargs.get("env_vars") or [])
        if kwargs.get("request_id"):
            req.request_id = kwargs["request_id"]
        for name, value in limits.items():
            if name == "network_disabled":
                req.config.network_disabled.CopyFrom(wrappers_pb2.BoolValue(value=bool(value)))
            else:
                setattr(req.config, name, int(value))
        try:
            msg = self._stub.Eval(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise _error("Eval", e, self.server) from None
        return _result_from_proto(msg)

    def list_executions(self, status: Optional[Union[ExecutionStatus, str]] = None,
                        page_size: Optional[int] = None,
                        page_token: Optional[str] = None) -> ExecutionPage:
        """The executions the server retains, newest first, without their
        output.

        Args:
            status: Only executions in this status (an ExecutionStatus or
                its name, e.g. "running").
            page_size: One page of at most this many (1..1000), starting at
                `page_token`; its ``next_page_token`` leads on. None: every
                page, read in turn.
            page_token: The ``next_page_token`` of an earlier page.

        Returns:
            ExecutionPage: a list of ExecutionResults with next_page_token.

        Raises:
            PythonExecutorError: INVALID_ARGUMENT for a bad page size or
                token.
        """
        req = executor_pb2.ListExecutionsRequest(page_size=page_size or 0,
                                                 page_token=page_token or "")
        if status is not None:
            name = ExecutionStatus(status).value.upper()
            req.status = executor_pb2.ExecutionStatus.Value("EXECUTION_STATUS_" + name)
        items = []
        while True:
            try:
                resp = self._stub.ListExecutions(req, timeout=self.call_timeout)
            except grpc.RpcError as e:
                raise _error("ListExecutions", e, self.server) from None
            items.extend(_result_from_proto(m) for m in resp.executions)
            if page_size is not None or not resp.next_page_token:
                return ExecutionPage(items, resp.next_page_token)
            req.page_token = resp.next_page_token

    def health(self, service: str = "") -> str:
        """The server's health as the standard gRPC health service reports it:
        "SERVING", "NOT_SERVING" (e.g. Docker unreachable), "UNKNOWN" or
        "SERVICE_UNKNOWN".

        Raises:
            PythonExecutorError: The call failed (NOT_FOUND for an unknown
                `service`, UNAVAILABLE if the server is down).
        """
        try:
            resp = self._health.Check(health_pb2.HealthCheckRequest(service=service),
                                      timeout=self.call_timeout)
        except grpc.RpcError as e:
            raise _error("Check", e, self.server) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def make_tar(files: dict) -> bytes:
    """An uncompressed tar archive of {path: str|bytes|(content, mode)}, in
    the given order, as execute_sync(tar_data=...) accepts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, content in files.items():
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            data = _as_bytes(content)
            info = tarfile.TarInfo(str(path))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
