"""The store flags of pyexecd (fake back-end): --store, the Redis password
from a file or the environment (never a flag or the URL), the namespace and
the node name."""

import os
import pathlib
import subprocess
import sys
import tempfile
import uuid

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_server  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def start_fails(*args, env=None):
    p = subprocess.run([fake_binary(), "--listen", "127.0.0.1:0", *args], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **(env or {})))
    assert p.returncode != 0, p.stderr
    return p


@pytest.mark.parametrize("store,needle", [
    ("mem", "is not memory, redis://"),
    ("redis://user:secret@127.0.0.1:6379", "--store-password-file"),
    ("redis://127.0.0.1:99999", "port"),
    ("redis+unix://relative.sock", "ABSOLUTE"),
])
def test_a_bad_store_url_exits_2_before_anything_starts(store, needle):
    p = start_fails("--store", store)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "secret" not in p.stderr


def test_an_unreachable_redis_is_a_start_up_error_naming_it():
    path = "/tmp/pyexec-no-redis-" + uuid.uuid4().hex[:8] + ".sock"
    p = start_fails("--store", "redis+unix://" + path)
    assert p.returncode == 1, p.stderr
    assert "start: store:" in p.stderr and path in p.stderr


def test_the_redis_store_needs_a_queue():
    p = start_fails("--store", "redis://127.0.0.1:6379", "--max-queue", "0")
    assert p.returncode == 2 and "--max-queue" in p.stderr


@pytest.fixture(scope="module")
def redis_with_password():
    with redis_server.RedisServer("--requirepass", "s3cret pw") as redis:
        yield redis


def run_one(server):
    stubs = pyexecd.stubs()
    pb = stubs.executor
    stub = stubs.executor_grpc.ExecutorServiceStub(server.channel())
    req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["print:ok", "exit:0"]),
                            files=[pb.File(path="main.py", content=b"")])
    return stub.Execute(req, timeout=30)


def test_the_password_comes_from_a_file(redis_with_password):
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as f:
        f.write("s3cret pw\n")
        f.flush()
        server = pyexecd.Server("--store", redis_with_password.url, "--store-password-file",
                                f.name, "--store-namespace", "pwfile", binary=fake_binary())
        server.start()
        try:
            assert run_one(server).stdout == b"ok"
        finally:
            assert server.stop() == 0
            server.close()


def test_the_password_comes_from_the_environment(redis_with_password, monkeypatch):
    monkeypatch.setenv("PYEXEC_STORE_PASSWORD", "s3cret pw")
    server = pyexecd.Server("--store", redis_with_password.url, "--store-namespace", "pwenv",
                            binary=fake_binary())
    server.start()
    try:
        assert run_one(server).stdout == b"ok"
    finally:
        assert server.stop() == 0
        server.close()


def test_a_wrong_password_is_refused_without_showing_it(redis_with_password):
    p = start_fails("--store", redis_with_password.url,
                    env={"PYEXEC_STORE_PASSWORD": "not-the-password"})
    assert p.returncode == 1
    assert "WRONGPASS" in p.stderr
    assert "not-the-password" not in p.stderr


def test_two_nodes_share_executions_and_node_names_are_exclusive():
    """Execute on one node, GetExecution and StreamOutput on the other; a
    second node with a name in use does not start."""
    with redis_server.RedisServer() as redis:
        common = ["--store", redis.url, "--store-namespace", "pair"]
        a = pyexecd.Server(*common, "--node-name", "node-a", binary=fake_binary())
        b = pyexecd.Server(*common, "--node-name", "node-b", binary=fake_binary())
        a.start()
        b.start()
        try:
            stubs = pyexecd.stubs()
            pb = stubs.executor
            sa = stubs.executor_grpc.ExecutorServiceStub(a.channel())
            sb = stubs.executor_grpc.ExecutorServiceStub(b.channel())
            req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["print:hi", "exit:4"]),
                                    files=[pb.File(path="main.py", content=b"")])
            res = sa.Execute(req, timeout=30)
            got = sb.GetExecution(pb.GetExecutionRequest(execution_id=res.execution_id),
                                  timeout=10)
            assert got.stdout == b"hi" and got.exit_code == 4
            msgs = list(sb.StreamOutput(pb.StreamOutputRequest(execution_id=res.execution_id),
                                        timeout=10))
            assert b"".join(m.data for m in msgs) == b"hi"
            p = start_fails(*common, "--node-name", "node-a")
            assert p.returncode == 1 and "node 'node-a'" in p.stderr
        finally:
            assert a.stop() == 0
            assert b.stop() == 0
            a.close()
            b.close()


def test_health_follows_redis_and_calls_in_the_gap_are_unavailable():
    """Redis restarted (AOF on): health NOT_SERVING naming the store, calls
    UNAVAILABLE with a clear message, then SERVING again and nothing lost."""
    with redis_server.RedisServer() as redis:
        server = pyexecd.Server("--store", redis.url, "--store-namespace", "gap",
                                "--health-interval-ms", "50", binary=fake_binary())
        server.start()
        try:
            stubs = pyexecd.stubs()
            hs = stubs.health_grpc.HealthStub(server.channel())
            watch = hs.Watch(stubs.health.HealthCheckRequest(), timeout=60)
            serving = stubs.health.HealthCheckResponse.SERVING
            assert next(watch).status == serving
            done = run_one(server)
            redis.stop()
            assert next(watch).status != serving  # an event, no polling
            check = hs.Check.with_call(stubs.health.HealthCheckRequest(), timeout=10)
            reason = dict(check[1].trailing_metadata()).get("pyexec-health-reason", "")
            assert "store" in reason and "redis" in reason, reason
            pb = stubs.executor
            ex = stubs.executor_grpc.ExecutorServiceStub(server.channel())
            with pytest.raises(grpc.RpcError) as e:
                ex.GetExecution(pb.GetExecutionRequest(execution_id=done.execution_id),
                                timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "redis" in e.value.details()
            redis.start()
            assert next(watch).status == serving
            got = ex.GetExecution(pb.GetExecutionRequest(execution_id=done.execution_id),
                                  timeout=10)
            assert got.stdout == b"ok"
        finally:
            assert server.stop() == 0
            server.close()


def test_redis_away_past_the_grace_kills_the_runs_and_their_end_is_written_later():
    """--store-grace-s: Redis stopped under a running execution; health
    turns NOT_SERVING, the node kills the run once the grace has passed
    (its lease, 60 s, still holds), and when Redis is back the end is
    there: FAILED/LOST naming the flag, with the output written before."""
    with redis_server.RedisServer() as redis:
        server = pyexecd.Server("--store", redis.url, "--store-namespace", "grace",
                                "--store-grace-s", "1", "--node-lease-ms", "60000",
                                "--health-interval-ms", "50", binary=fake_binary())
        server.start()
        try:
            stubs = pyexecd.stubs()
            pb = stubs.executor
            ex = stubs.executor_grpc.ExecutorServiceStub(server.channel())
            req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["print:before", "sleep"]),
                                    files=[pb.File(path="main.py", content=b"")])
            setattr(req, "async", True)
            eid = ex.Execute(req, timeout=10).execution_id
            stream = ex.StreamOutput(pb.StreamOutputRequest(execution_id=eid), timeout=60)
            assert next(stream).data == b"before"  # it runs
            hs = stubs.health_grpc.HealthStub(server.channel())
            watch = hs.Watch(stubs.health.HealthCheckRequest(), timeout=60)
            serving = stubs.health.HealthCheckResponse.SERVING
            assert next(watch).status == serving
            redis.stop()
            assert next(watch).status != serving
            server.wait_stderr(r"--store-grace-s\): killing its runs")
            server.wait_stderr(eid + r": terminal state kept until Redis answers")
            redis.start()
            assert next(watch).status == serving
            done = list(ex.StreamOutput(pb.StreamOutputRequest(execution_id=eid), timeout=30))
            assert b"".join(m.data for m in done) == b"before"
            got = ex.GetExecution(pb.GetExecutionRequest(execution_id=eid), timeout=10)
            assert pyexecd.status_name(got) == "EXECUTION_STATUS_FAILED", got
            assert pyexecd.reason_name(got).endswith("LOST"), got
            assert "--store-grace-s" in got.error, got.error
        finally:
            assert server.stop() == 0
            server.close()
