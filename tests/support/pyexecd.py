"""Test support: run a real pyexecd and talk to it with Python gRPC stubs.

Import it by putting this directory on sys.path (the package name `tests`
may be shadowed by another suite's own `tests` directory):

    sys.path.insert(0, str(REPO / "tests" / "support"))
    import pyexecd

    with pyexecd.Server("--default-image", "pyexec/python:3.11") as srv:
        stubs = pyexecd.stubs()
        ex = stubs.executor_grpc.ExecutorServiceStub(srv.channel())
        ...

Runs with /usr/bin/python3 (the interpreter that has python3-grpcio).
Environment:
  PYEXECD_BIN         the server binary (default <repo>/bazel-bin/server/pyexecd)
  PYEXEC_CLI_BIN      the `pyexec` CLI (default <repo>/bazel-bin/client/pyexec)
  PYEXEC_TEST_STUBS   "client" or "own": which generated stubs stubs() returns;
                      default: the Python client's if present, else our own
  DOCKER_SOCKET       the Docker socket for containers() (default
                      /var/run/docker.sock)
"""

import atexit
import http.client
import importlib
import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import types
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABEL = "pyexec.service=pyexecd"
MAX_MESSAGE = 64 * 1024 * 1024


class ServerError(RuntimeError):
    """The server could not be started, or misbehaved while stopping."""


def server_binary():
    """Path of the pyexecd binary under test."""
    return os.environ.get("PYEXECD_BIN") or os.path.join(REPO, "bazel-bin", "server", "pyexecd")


def cli_binary():
    """Path of the `pyexec` CLI under test."""
    return os.environ.get("PYEXEC_CLI_BIN") or os.path.join(REPO, "bazel-bin", "client", "pyexec")


def server_help():
    """The server's --help text (stdout + stderr), '' if it cannot run."""
    try:
        p = subprocess.run([server_binary(), "--help"], capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (p.stdout + p.stderr).decode("utf-8", "replace")


def find_flag(*words):
    """The first `--flag` in the server's --help whose name contains every
    one of `words`, or None. Lets tests adapt to flag names that are not
    fixed by the contract (e.g. find_flag("output", "limit"))."""
    for flag in re.findall(r"--[a-z][a-z0-9-]*", server_help()):
        if all(w in flag for w in words):
            return flag
    return None


class Server:
    """A pyexecd process started for a test, as a context manager.

    Server(*args, listen="127.0.0.1:0", env=None, wait_ready=True,
           startup_timeout=30, binary=None)

    Starts `binary` (default server_binary()) with `--listen LISTEN` (unless
    listen is None) followed by `args`. With wait_ready, waits up to
    startup_timeout seconds for the first stdout line `listening on
    HOST:PORT` and sets .address; raises ServerError (with the stderr seen)
    if the process exits or stays silent. `env` entries are added to (or,
    with value None, removed from) this process's environment.

    .proc is the subprocess.Popen. Threads collect stdout and stderr lines;
    .stdout_lines() / .stderr_lines() return copies so far. Leaving the
    context (or .close()) always ends the process it started, by pid:
    SIGTERM, then SIGKILL after 20 s.
    """

    def __init__(self, *args, listen="127.0.0.1:0", env=None, wait_ready=True,
                 startup_timeout=30.0, binary=None):
        self.args = [str(a) for a in args]
        self.listen = listen
        self.binary = binary or server_binary()
        self.extra_env = dict(env or {})
        self.wait_ready = wait_ready
        self.startup_timeout = startup_timeout
        self.address = None
        self.proc = None
        self._stdout = []
        self._stderr = []
        self._lock = threading.Lock()
        self._line_added = threading.Condition(self._lock)
        self._first_line = queue.Queue()
        self._threads = []
        self._channels = []

    # -- lifecycle --

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise ServerError(f"server binary {self.binary!r} not found: build "
                              "//server:pyexecd or set PYEXECD_BIN")
        argv = [self.binary]
        if self.listen is not None:
            argv += ["--listen", self.listen]
        argv += self.args
        env = dict(os.environ)
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        for stream, sink, first in ((self.proc.stdout, self._stdout, True),
                                    (self.proc.stderr, self._stderr, False)):
            t = threading.Thread(target=self._pump, args=(stream, sink, first), daemon=True)
            t.start()
            self._threads.append(t)
        if self.wait_ready:
            try:
                line = self._first_line.get(timeout=self.startup_timeout)
            except queue.Empty:
                self.close()
                raise ServerError(f"no 'listening on' line within {self.startup_timeout} s; "
                                  f"stderr: {self.stderr_text()[-2000:]}")
            m = re.match(r"^listening on (\S+:\d+)\s*$", line or "")
            if not m:
                code = self.proc.poll()
                self.close()
                raise ServerError(f"server did not start (first stdout line {line!r}, exit "
                                  f"{code}); stderr: {self.stderr_text()[-2000:]}")
            self.address = m.group(1)
        return self

    def _pump(self, stream, sink, first):
        told = False
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                sink.append(line)
                self._line_added.notify_all()
            if first and not told:
                self._first_line.put(line)
                told = True
        if first and not told:
            self._first_line.put(None)  # EOF before any line
        with self._lock:
            self._line_added.notify_all()
        stream.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def wait(self, timeout):
        """Waits for the process to exit; returns its code, or None on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends `sig` and waits up to `timeout` s for the exit; returns the
        exit code (negative -N if a signal N ended it). If it does not exit
        in time it is SIGKILLed and ServerError is raised."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.wait(timeout)
        if code is None:
            self.proc.kill()
            self.proc.wait()
            raise ServerError(f"server did not exit within {timeout} s of signal {sig}")
        self._join()
        return code

    def close(self):
        for ch in self._channels:
            ch.close()
        self._channels.clear()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait(20) is None:
                self.proc.kill()
                self.proc.wait()
        self._join()

    def _join(self):
        for t in self._threads:
            t.join(timeout=5)

    # -- output --

    def stdout_lines(self):
        with self._lock:
            return list(self._stdout)

    def stderr_lines(self):
        with self._lock:
            return list(self._stderr)

    def wait_stdout(self, pattern, timeout=30.0):
        """Waits for a stdout line matching the regex `pattern`; returns
        its match object. Raises ServerError if stdout ends first or after
        `timeout` s."""
        return self._wait_line(self._stdout, "stdout", pattern, timeout)

    def wait_stderr(self, pattern, timeout=30.0):
        """Like wait_stdout, for a stderr (log) line; `pattern` is searched
        anywhere in the line."""
        return self._wait_line(self._stderr, "stderr", ".*?" + pattern, timeout)

    def _wait_line(self, lines, name, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for line in lines:
                    m = rx.match(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not any(
                        t.is_alive() for t in self._threads):
                    raise ServerError(f"no {name} line matching {pattern!r}; "
                                      f"{name}: {lines!r}")
                self._line_added.wait(left)

    def http_address(self):
        """HOST:PORT of the HTTP door (the server was started with
        --http-listen): the second stdout line, `http listening on ...`."""
        return self.wait_stdout(r"^http listening on (\S+:\d+)\s*$").group(1)

    def stderr_text(self):
        return "\n".join(self.stderr_lines())

    # -- clients --

    def channel(self, **options):
        """A new insecure channel to the server (closed with the server)
        that accepts messages up to 64 MiB."""
        ch = channel(self.address, **options)
        self._channels.append(ch)
        return ch


def channel(address, **options):
    """An insecure gRPC channel to `address` with a 64 MiB message limit."""
    import grpc

    opts = {"grpc.max_receive_message_length": MAX_MESSAGE,
            "grpc.max_send_message_length": MAX_MESSAGE}
    opts.update(options)
    return grpc.insecure_channel(address, options=list(opts.items()))


# ---------------------------------------------------------------------------
# Generated stubs

_stubs = None
_stubs_lock = threading.Lock()


def stubs():
    """The generated Python modules, as a namespace:
    .executor (executor_pb2), .executor_grpc (executor_pb2_grpc),
    .health (health_pb2), .health_grpc (health_pb2_grpc), .source.
    Prefers the Python client's stubs (client/python/gen_stubs.sh writes them
    to client/python/python_executor_client/_gen/), and otherwise generates
    its own from proto/ with protoc into a temporary directory."""
    global _stubs
    with _stubs_lock:
        if _stubs is None:
            mode = os.environ.get("PYEXEC_TEST_STUBS", "")
            ns = None
            if mode != "own":
                try:
                    ns = _client_stubs()
                except Exception as e:  # noqa: BLE001 - fall back to our own
                    if mode == "client":
                        raise
                    print(f"pyexecd: client stubs unusable ({e}); generating our own",
                          file=sys.stderr)
            _stubs = ns or _own_stubs()
        return _stubs


def _client_stubs():
    pkg_root = os.path.join(REPO, "client", "python")
    gen = os.path.join(pkg_root, "python_executor_client", "_gen")
    script = os.path.join(pkg_root, "gen_stubs.sh")
    stub = os.path.join(gen, "pyexec", "v1", "executor_pb2.py")
    proto = os.path.join(REPO, "proto", "pyexec", "v1", "executor.proto")
    # Regenerated when missing or older than the proto (a new field or RPC).
    if not os.path.exists(stub) or os.path.getmtime(stub) < os.path.getmtime(proto):
        if not os.path.exists(script):
            raise FileNotFoundError("client/python/gen_stubs.sh does not exist yet")
        subprocess.run(["bash", script], check=True, cwd=pkg_root, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=120)
    if pkg_root not in sys.path:
        sys.path.insert(0, pkg_root)
    # Everything is located before anything is imported: a half-imported set
    # would leave descriptors in the default pool that our own stubs'd clash with.
    health_py = None
    for dirpath, _, files in os.walk(gen):
        if "health_pb2_grpc.py" in files:
            health_py = os.path.relpath(dirpath, pkg_root).replace(os.sep, ".")
            break
    if health_py is None:
        raise FileNotFoundError("no health_pb2_grpc.py in the client's stubs")
    base = "python_executor_client._gen"
    ns = types.SimpleNamespace(source="client")
    ns.executor = importlib.import_module(base + ".pyexec.v1.executor_pb2")
    ns.executor_grpc = importlib.import_module(base + ".pyexec.v1.executor_pb2_grpc")
    ns.health = importlib.import_module(health_py + ".health_pb2")
    ns.health_grpc = importlib.import_module(health_py + ".health_pb2_grpc")
    return ns


def _own_stubs():
    out = tempfile.mkdtemp(prefix="pyexec-stubs-")
    atexit.register(shutil.rmtree, out, True)
    src = os.path.join(out, "src")
    # The health proto's path is moved to a package name of our own: its
    # generated module would otherwise be `grpc.health.v1`, inside grpcio's
    # own `grpc` package. The proto package (the wire name) is unchanged.
    os.makedirs(os.path.join(src, "pyexec_test_health", "v1"))
    shutil.copy(os.path.join(REPO, "proto", "grpc", "health", "v1", "health.proto"),
                os.path.join(src, "pyexec_test_health", "v1", "health.proto"))
    gen = os.path.join(out, "gen")
    os.makedirs(gen)
    cmd = ["protoc", "-I", os.path.join(REPO, "proto"), "-I", src, "-I", "/usr/include",
           f"--python_out={gen}", f"--grpc_python_out={gen}",
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
           "pyexec/v1/executor.proto", "pyexec_test_health/v1/health.proto"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    sys.path.insert(0, gen)
    ns = types.SimpleNamespace(source="own")
    ns.executor = importlib.import_module("pyexec.v1.executor_pb2")
    ns.executor_grpc = importlib.import_module("pyexec.v1.executor_pb2_grpc")
    ns.health = importlib.import_module("pyexec_test_health.v1.health_pb2")
    ns.health_grpc = importlib.import_module("pyexec_test_health.v1.health_pb2_grpc")
    return ns


# ---------------------------------------------------------------------------
# Requests

def make_tar(files):
    """An uncompressed tar archive of `files` ({path: str|bytes} or
    {path: (content, mode)}), in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, content in files.items():
            mode = 0o644
            if isinstance(content, tuple):
                content, mode = content
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_files(files):
    """[executor_pb2.File] for `files` (as for make_tar)."""
    pb = stubs().executor
    out = []
    for path, content in files.items():
        mode = 0
        if isinstance(content, tuple):
            content, mode = content
        data = content.encode() if isinstance(content, str) else content
        out.append(pb.File(path=path, content=data, mode=mode))
    return out


TERMINAL = ("EXECUTION_STATUS_COMPLETED", "EXECUTION_STATUS_FAILED", "EXECUTION_STATUS_KILLED")


def status_name(result):
    return stubs().executor.ExecutionStatus.Name(result.status)


def reason_name(result):
    return stubs().executor.TerminationReason.Name(result.reason)


def is_terminal(result):
    return status_name(result) in TERMINAL


def wait_terminal(stub, execution_id, timeout=60.0):
    """Follows StreamOutput until its final message and returns the terminal
    ExecutionResult from GetExecution (with the output). Raises
    TimeoutError if it is not terminal within `timeout` s."""
    pb = stubs().executor
    for chunk in stub.StreamOutput(pb.StreamOutputRequest(execution_id=execution_id),
                                   timeout=timeout):
        if chunk.HasField("result"):
            break
    res = stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id), timeout=10)
    if not is_terminal(res):
        raise TimeoutError(f"{execution_id} still {status_name(res)} after its stream ended")
    return res


def read_until(stream, expected):
    """Reads output chunks from a StreamOutput call until their bytes add up
    to at least len(expected); returns those bytes (the program's writes may
    arrive split into several chunks, e.g. print's text and its newline).
    Stops early at the final message."""
    data = b""
    if not expected:
        return data
    for chunk in stream:
        if chunk.HasField("result"):
            break
        data += chunk.data
        if len(data) >= len(expected):
            break
    return data


# ---------------------------------------------------------------------------
# Docker

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def missing(reason):
    """Skips the calling test because something it needs is not installed
    or not running (the Docker engine, chromium, crun, ...), or fails it
    when PYEXEC_REQUIRE_ENGINE=1 (scripts/test sets it): there, a missing
    install is a broken machine, not a reason to pass quietly. A limit of
    the machine itself (a kernel or cgroup setup a runtime cannot use) is
    skipped with pytest.skip, never through here."""
    import pytest
    if os.environ.get("PYEXEC_REQUIRE_ENGINE") == "1":
        pytest.fail(f"{reason} (PYEXEC_REQUIRE_ENGINE=1: a missing install fails)",
                    pytrace=False)
    pytest.skip(reason)


def docker_api(method, path, socket_path=None, body=None):
    """One Engine API call over the unix socket (`body`: a value sent as
    JSON); returns (status, parsed JSON or raw bytes)."""
    conn = _UnixHTTPConnection(socket_path or os.environ.get("DOCKER_SOCKET",
                                                             "/var/run/docker.sock"))
    try:
        if body is None:
            conn.request(method, path)
        else:
            conn.request(method, path, body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body) if body else None
    except ValueError:
        return resp.status, body


def containers(label=LABEL):
    """All containers (running or not) carrying `label` ("key=value" or
    "key"), as the Engine API lists them (Id, Names, Labels, Created, State)."""
    filters = urllib.parse.quote(json.dumps({"label": [label]}))
    status, body = docker_api("GET", f"/containers/json?all=1&filters={filters}")
    if status != 200:
        raise RuntimeError(f"GET /containers/json: HTTP {status}: {body!r}")
    return body


def containers_mentioning(text, label=LABEL):
    """Containers with `label` whose name or any label value contains `text`
    (e.g. an execution id or its UUID part)."""
    found = []
    for c in containers(label):
        hay = " ".join(c.get("Names") or []) + " " + " ".join((c.get("Labels") or {}).values())
        if text in hay:
            found.append(c)
    return found


def wait_until(predicate, timeout, interval=0.1):
    """Polls `predicate` until it returns a truthy value (returned) or
    `timeout` s pass (returns the last value). For conditions that have no
    event to wait on, such as the engine's container list."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
