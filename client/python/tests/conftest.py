"""Fixtures for the Python client's tests.

The package is imported from client/python (its stubs are generated first
if missing); `server` is a real pyexecd (tests/support/pyexecd.py, binary
from PYEXECD_BIN or <repo>/bazel-bin/server/pyexecd) on a free loopback
port, talking to the real Docker engine.
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO = PKG_ROOT.parents[1]
IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"

if not (PKG_ROOT / "python_executor_client" / "_gen" / "pyexec" / "v1" / "executor_pb2.py").exists():
    subprocess.run(["bash", str(PKG_ROOT / "gen_stubs.sh")], check=True, stdin=subprocess.DEVNULL)
sys.path.insert(0, str(PKG_ROOT))
sys.path.insert(0, str(REPO / "tests" / "support"))

import pyexecd  # noqa: E402
from python_executor_client import PythonExecutorClient  # noqa: E402


@pytest.fixture(scope="session")
def server():
    # Its own instance name: a server reaps the containers of its instance
    # that it does not own, including those of other test servers.
    with pyexecd.Server("--default-image", IMAGE, "--instance",
                        f"client-python-{os.getpid()}") as srv:
        yield srv


@pytest.fixture
def client(server):
    """A client on the session server; kills whatever a test left running."""
    with PythonExecutorClient(server.address, timeout=120) as c:
        started = []
        real = c.execute_async

        def tracking(*args, **kwargs):
            exec_id = real(*args, **kwargs)
            started.append(exec_id)
            return exec_id

        c.execute_async = tracking
        yield c
        for exec_id in started:
            try:
                c.kill(exec_id)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
