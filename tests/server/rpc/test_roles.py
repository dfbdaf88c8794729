"""--role both|frontend|worker on one Redis: a frontend serves calls and
runs nothing (and needs no Docker engine), a worker runs the jobs and
serves only health."""

import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_server  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def start_fails(*args):
    p = subprocess.run([fake_binary(), "--listen", "127.0.0.1:0", *args], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0, p.stderr
    return p


@pytest.fixture(scope="module")
def redis():
    with redis_server.RedisServer() as r:
        yield r


def health(server):
    stubs = pyexecd.stubs()
    hs = stubs.health_grpc.HealthStub(server.channel())
    resp, call = hs.Check.with_call(stubs.health.HealthCheckRequest(), timeout=10)
    reason = dict(call.trailing_metadata()).get("pyexec-health-reason", "")
    return resp.status == stubs.health.HealthCheckResponse.SERVING, reason


def request(*script):
    pb = pyexecd.stubs().executor
    return pb.ExecuteRequest(metadata=pb.Metadata(script_args=list(script)),
                             files=[pb.File(path="main.py", content=b"")])


def test_a_bad_role_or_a_role_without_redis_exits_2():
    p = start_fails("--role", "leader")
    assert p.returncode == 2 and "--role: 'leader' is not both, frontend or worker" in p.stderr
    p = start_fails("--role", "frontend")
    assert p.returncode == 2 and "needs a Redis --store" in p.stderr


def test_a_frontend_runs_nothing_and_a_worker_runs_its_jobs(redis):
    """Jobs admitted on a frontend wait in the queue until a worker starts,
    and a worker refuses the ExecutorService's calls but answers health."""
    stubs = pyexecd.stubs()
    pb = stubs.executor
    common = ["--store", redis.url, "--store-namespace", "roles"]
    front = pyexecd.Server(*common, "--role", "frontend", "--node-name", "front",
                           binary=fake_binary())
    work = pyexecd.Server(*common, "--role", "worker", "--node-name", "work",
                          "--http-listen", "127.0.0.1:0", binary=fake_binary())
    front.start()
    try:
        fs = stubs.executor_grpc.ExecutorServiceStub(front.channel())
        # Async: the frontend admits the job and runs nothing.
        req = request("print:ran", "exit:0")
        setattr(req, "async", True)
        queued = fs.Execute(req, timeout=10)
        got = fs.GetExecution(pb.GetExecutionRequest(execution_id=queued.execution_id),
                              timeout=10)
        assert pyexecd.status_name(got).endswith("PENDING"), got
        work.start()
        ws = stubs.executor_grpc.ExecutorServiceStub(work.channel())
        with pytest.raises(grpc.RpcError) as e:
            ws.GetExecution(pb.GetExecutionRequest(execution_id=queued.execution_id), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--role worker" in e.value.details()
        assert health(work) == (True, "")
        url = f"http://{work.http_address()}/api/v1/executions/{queued.execution_id}"
        with pytest.raises(urllib.error.HTTPError) as h:
            urllib.request.urlopen(url, timeout=10)
        assert h.value.code == 421 and b"--role worker" in h.value.read()
        with urllib.request.urlopen(f"http://{work.http_address()}/metrics", timeout=10) as m:
            assert m.status == 200
        # The worker ran the queued job: the frontend's stream ends with it.
        msgs = list(fs.StreamOutput(pb.StreamOutputRequest(execution_id=queued.execution_id),
                                    timeout=30))
        assert b"".join(m.data for m in msgs) == b"ran"
        # A sync Execute on the frontend returns when the worker is done.
        res = fs.Execute(request("print:sync", "exit:3"), timeout=30)
        assert res.stdout == b"sync" and res.exit_code == 3
    finally:
        assert front.stop() == 0
        if work.proc:
            assert work.stop() == 0
        front.close()
        work.close()


def test_a_frontend_needs_no_docker_engine(redis, tmp_path):
    """The real pyexecd: with no engine at --docker-socket a frontend starts
    and is SERVING (it pings only Redis); a node that runs jobs is not."""
    missing = str(tmp_path / "no-docker.sock")
    common = ["--store", redis.url, "--store-namespace", "noengine", "--docker-socket", missing,
              "--instance", "roles-noengine"]
    front = pyexecd.Server(*common, "--role", "frontend", "--node-name", "nofront")
    both = pyexecd.Server(*common, "--node-name", "noboth")
    front.start()
    both.start()
    try:
        assert health(front) == (True, "")
        serving, reason = health(both)
        assert not serving and missing in reason
    finally:
        assert front.stop() == 0
        assert both.stop() == 0
        front.close()
        both.close()
