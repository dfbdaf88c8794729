"""Start-up failures of the server process (fake back-end): what a user
sees when the server cannot start."""

import os
import pathlib
import socket
import subprocess

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
