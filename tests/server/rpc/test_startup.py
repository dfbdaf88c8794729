"""Start-up failures of the server process (fake back-end): what a user
sees when the server cannot start."""

import os
import pathlib
import socket
import subprocess
import sys
import uuid

REPO = pathlib.Path(__file__).resolve().parents[3]


def fake_binary():
    """As conftest.fake_binary (imported by path, a bare `import conftest`
    may find another directory's conftest when suites run together)."""
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def test_port_in_use_is_one_clean_line_naming_the_cause():
    """gRPC's core prints a long structured error when a bind fails; the
    server says it once, in words, with bind(2)'s reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([fake_binary(), "--listen", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert f"--listen: cannot bind '127.0.0.1:{port}': Address already in use" in lines[0]


def test_the_core_error_is_kept_at_debug_level():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([fake_binary(), "--listen", f"127.0.0.1:{port}",
                            "--log-level", "debug"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    grpc_lines = [line for line in p.stderr.splitlines() if " DEBUG grpc: " in line]
    assert grpc_lines, p.stderr
    assert "Address already in use" in p.stderr.splitlines()[-1]


def test_http_port_in_use_stops_what_started_in_order(store_args):
    """The gRPC server, the store (with Redis: its threads hand jobs to the
    executor) and the executor are up when the HTTP door fails to listen:
    they are stopped as at shutdown, the store before the executor, and
    the process exits 1 with the cause (an ASan build: with no error)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([fake_binary(), "--listen", "127.0.0.1:0",
                            "--http-listen", f"127.0.0.1:{port}", *store_args],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert p.stdout == "", "nothing announced as listening"
    assert f"start: HTTP door: cannot listen on '127.0.0.1:{port}'" in p.stderr
    assert "Sanitizer" not in p.stderr, p.stderr
    assert "shutdown: done" in p.stderr.splitlines()[-1], p.stderr


def test_http_port_in_use_while_the_store_hands_out_queued_jobs(redis_url):
    """With Redis, the store's threads hand queued jobs to the executor as
    soon as the store is open: when the HTTP door then fails, the store
    must stop before the executor is freed (under ASan, the reverse order
    was a use-after-free in px_executor_submit)."""
    sys.path.insert(0, str(REPO / "tests" / "support"))
    import pyexecd
    stubs = pyexecd.stubs()
    pb = stubs.executor
    common = ["--store", redis_url, "--store-namespace", "t" + uuid.uuid4().hex[:12]]
    front = pyexecd.Server(*common, "--role", "frontend", "--node-name", "front",
                           binary=fake_binary()).start()
    try:
        fs = stubs.executor_grpc.ExecutorServiceStub(front.channel())
        for _ in range(8):
            req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["print:x", "sleep"]),
                                    files=[pb.File(path="main.py", content=b"")])
            setattr(req, "async", True)
            fs.Execute(req, timeout=10)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            p = subprocess.run([fake_binary(), "--listen", "127.0.0.1:0", *common,
                                "--role", "worker", "--node-name", "work",
                                "--http-listen", f"127.0.0.1:{port}", "--shutdown-grace-s", "0"],
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
    finally:
        assert front.stop() == 0
        front.close()
    assert p.returncode == 1, p.stderr
    assert f"start: HTTP door: cannot listen on '127.0.0.1:{port}'" in p.stderr
    assert "Sanitizer" not in p.stderr, p.stderr
