"""--store redis+sentinel://... (fake back-end): the node asks Redis Sentinel
for the primary, and follows a failover the way it rides out a Redis
restart: calls UNAVAILABLE and health NOT_SERVING during the gap, then
SERVING on the promoted replica with every replicated record there.

Real processes: a redis-server primary and replica on loopback ports (AOF
on) and three `redis-server --sentinel` (tests/support/redis_sentinel.py)."""

import os
import pathlib
import signal
import subprocess
import sys
import tempfile

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_sentinel  # noqa: E402


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
    ("redis+sentinel://", "no Sentinel"),
    ("redis+sentinel:///mymaster", "no Sentinel"),
    ("redis+sentinel://127.0.0.1:26379", "no master name"),
    ("redis+sentinel://127.0.0.1:26379,/m", "empty Sentinel"),
    ("redis+sentinel://127.0.0.1:0/m", "port"),
    ("redis+sentinel://127.0.0.1/my*master", "[A-Za-z0-9_.-]"),
])
def test_a_bad_sentinel_url_exits_2_before_anything_starts(store, needle):
    p = start_fails("--store", store)
    assert p.returncode == 2, p.stderr
    assert "--store" in p.stderr and needle in p.stderr


def test_no_sentinel_answering_is_a_start_up_error_naming_them():
    ports = [redis_sentinel.free_port() for _ in range(2)]
    p = start_fails("--store", f"redis+sentinel://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/m")
    assert p.returncode == 1, p.stderr
    assert "no Sentinel named the primary of 'm' (2 asked" in p.stderr
    assert f"127.0.0.1:{ports[1]}: connect" in p.stderr


@pytest.fixture(scope="module")
def sentinels():
    with redis_sentinel.SentinelSet() as s:
        yield s


def test_a_master_name_the_sentinels_do_not_know_is_a_start_up_error(sentinels):
    url = sentinels.url.rsplit("/", 1)[0] + "/not-monitored"
    p = start_fails("--store", url)
    assert p.returncode == 1, p.stderr
    assert "no master named 'not-monitored'" in p.stderr


def test_a_sentinel_password_needs_a_sentinel_store():
    p = start_fails("--store", "redis://127.0.0.1:6379", "--store-sentinel-password-file",
                    "/dev/null")
    assert p.returncode == 2, p.stderr
    assert "--store-sentinel-password-file: needs a redis+sentinel://" in p.stderr


def test_the_sentinels_own_password_comes_from_a_file_or_the_environment():
    """Sentinels with requirepass: the node logs in to them with the password
    from --store-sentinel-password-file or PYEXEC_STORE_SENTINEL_PASSWORD,
    names a refusal and never shows the password."""
    with redis_sentinel.SentinelSet(sentinels=1, sentinel_password="s3nt pw") as s:
        p = start_fails("--store", s.url)
        assert p.returncode == 1 and "NOAUTH" in p.stderr, p.stderr
        p = start_fails("--store", s.url, env={"PYEXEC_STORE_SENTINEL_PASSWORD": "not-it"})
        assert p.returncode == 1 and "WRONGPASS" in p.stderr, p.stderr
        assert "not-it" not in p.stderr
        with tempfile.NamedTemporaryFile("w", suffix=".pw") as f:
            f.write("s3nt pw\n")
            f.flush()
            for args, env in [(["--store-sentinel-password-file", f.name], {}),
                              ([], {"PYEXEC_STORE_SENTINEL_PASSWORD": "s3nt pw"})]:
                server = pyexecd.Server("--store", s.url, "--store-namespace", "sentinelpw",
                                        *args, binary=fake_binary(), env=env)
                server.start()
                try:
                    assert run_one(server, "in").stdout == b"in"
                finally:
                    assert server.stop() == 0
                    server.close()


def run_one(server, text):
    stubs = pyexecd.stubs()
    pb = stubs.executor
    stub = stubs.executor_grpc.ExecutorServiceStub(server.channel())
    req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=[f"print:{text}", "exit:0"]),
                            files=[pb.File(path="main.py", content=b"")])
    return stub.Execute(req, timeout=30)


def test_the_node_follows_a_failover_to_the_promoted_replica():
    """The primary is killed (SIGKILL); while the replica is held stopped the
    Sentinels cannot promote it, so the gap is observable: health
    NOT_SERVING, calls UNAVAILABLE naming the master. Released, it is
    promoted; the node finds it through the Sentinels, turns SERVING, reads
    what was acknowledged before and runs new executions."""
    with redis_sentinel.SentinelSet() as s:
        server = pyexecd.Server("--store", s.url, "--store-namespace", "failover",
                                "--health-interval-ms", "50", binary=fake_binary())
        server.start()
        try:
            stubs = pyexecd.stubs()
            pb = stubs.executor
            ex = stubs.executor_grpc.ExecutorServiceStub(server.channel())
            hs = stubs.health_grpc.HealthStub(server.channel())
            watch = hs.Watch(stubs.health.HealthCheckRequest(), timeout=120)
            serving = stubs.health.HealthCheckResponse.SERVING
            assert next(watch).status == serving
            before = run_one(server, "before")
            assert before.stdout == b"before"
            s.await_replicated()

            old = s.primary_address()
            assert old == s.address("primary")
            os.kill(s.replica.proc.pid, signal.SIGSTOP)
            try:
                os.kill(s.primary.proc.pid, signal.SIGKILL)
                s.primary.proc.wait()
                assert next(watch).status != serving  # an event, no polling
                check = hs.Check.with_call(stubs.health.HealthCheckRequest(), timeout=10)
                reason = dict(check[1].trailing_metadata()).get("pyexec-health-reason", "")
                assert "store" in reason and "redis" in reason, reason
                with pytest.raises(grpc.RpcError) as e:
                    ex.GetExecution(pb.GetExecutionRequest(execution_id=before.execution_id),
                                    timeout=10)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                assert f"redis master '{redis_sentinel.MASTER}'" in e.value.details()
            finally:
                os.kill(s.replica.proc.pid, signal.SIGCONT)

            s.await_primary(s.address("replica"))
            assert next(watch).status == serving
            got = ex.GetExecution(pb.GetExecutionRequest(execution_id=before.execution_id),
                                  timeout=10)
            assert got.stdout == b"before" and got.status == pb.EXECUTION_STATUS_COMPLETED
            after = run_one(server, "after")
            assert after.stdout == b"after"
            got = ex.GetExecution(pb.GetExecutionRequest(execution_id=after.execution_id),
                                  timeout=10)
            assert got.stdout == b"after"
        finally:
            assert server.stop() == 0
            server.close()
