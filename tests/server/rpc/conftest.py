"""Fixtures for the RPC-layer tests: the real gRPC server, executor and store
over the scripted fake back-end (fake_pyexecd), driven by Python grpcio.

Every test that uses `fake` or `fake_factory` runs twice: with the in-memory
store and with the Redis store (a private redis-server for the session, a
fresh key namespace per server). A test that needs what only the in-memory
store has is marked `@pytest.mark.memory_only("why")`.

Environment: FAKE_PYEXECD_BIN (default <repo>/bazel-bin/tests/server/rpc/
fake_pyexecd; scripts/test points it at an ASan build too).
"""

import os
import pathlib
import sys
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_server  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


class Fake:
    """A running fake server plus helpers to build requests."""

    def __init__(self, *args):
        self.server = pyexecd.Server(*args, "--log-level", "warn", binary=fake_binary())
        self.server.start()
        self.pb = pyexecd.stubs().executor
        self.grpc_mod = pyexecd.stubs().executor_grpc
        self.channel = self.server.channel()
        self.stub = self.grpc_mod.ExecutorServiceStub(self.channel)

    def request(self, *steps, async_=False, request_id="", stdin=b"", **config):
        pb = self.pb
        meta = pb.Metadata(script_args=list(steps), stdin=stdin,
                           config=pb.ExecutionConfig(**config))
        return pb.ExecuteRequest(metadata=meta, files=[pb.File(path="main.py", content=b"")],
                                 request_id=request_id, **{"async": async_})

    def run(self, *steps, **kw):
        return self.stub.Execute(self.request(*steps, **kw), timeout=30)

    def submit(self, *steps, **kw):
        return self.stub.Execute(self.request(*steps, async_=True, **kw), timeout=30)

    def get(self, execution_id):
        return self.stub.GetExecution(self.pb.GetExecutionRequest(execution_id=execution_id),
                                      timeout=10)

    def kill(self, execution_id):
        return self.stub.Kill(self.pb.KillRequest(execution_id=execution_id), timeout=10)

    def stream(self, execution_id, offset=0, timeout=30):
        return self.stub.StreamOutput(
            self.pb.StreamOutputRequest(execution_id=execution_id, offset=offset),
            timeout=timeout)

    def close(self):
        code = self.server.stop()
        self.server.close()
        return code


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "memory_only(reason): needs what only the in-memory store has")


@pytest.fixture(scope="session")
def redis_url():
    with redis_server.RedisServer() as redis:
        yield redis.url


@pytest.fixture(params=["memory", "redis"])
def store_args(request):
    if request.param == "memory":
        return []
    marker = request.node.get_closest_marker("memory_only")
    if marker:
        pytest.skip("in-memory store only: " + (marker.args[0] if marker.args else ""))
    url = request.getfixturevalue("redis_url")
    return ["--store", url, "--store-namespace", "t" + uuid.uuid4().hex[:12]]


@pytest.fixture
def fake_factory(store_args):
    started = []

    def make(*args):
        f = Fake(*store_args, *args)
        started.append(f)
        return f

    yield make
    for f in started:
        code = f.close()
        assert code == 0, f"server exit {code}; stderr: {f.server.stderr_text()[-3000:]}"


@pytest.fixture
def fake(fake_factory):
    return fake_factory()
