"""--store-min-replicas (fake back-end): with N > 0 the node acknowledges an
execution, and starts a claimed job, only once N Redis replicas have the
write (WAIT); with the replica held stopped, Execute fails UNAVAILABLE
naming the replica wait and nothing runs; released, the client's retry with
the same request_id finds the one execution and it runs once.

Real processes: a redis-server primary and its replica on loopback ports
(AOF on), the node pointed at the primary."""

import os
import pathlib
import signal
import subprocess
import sys

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_sentinel  # noqa: E402
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


@pytest.mark.parametrize("args,env,needle", [
    (["--store-min-replicas", "9"], {}, "--store-min-replicas"),
    (["--store-min-replicas", "-1"], {}, "--store-min-replicas"),
    ([], {"PYEXEC_STORE_MIN_REPLICAS": "9"}, "STORE_MIN_REPLICAS"),
    (["--store-replica-timeout-ms", "0"], {}, "--store-replica-timeout-ms"),
    (["--store-min-replicas", "1"], {}, "needs a Redis --store"),
])
def test_bad_replica_settings_exit_2_naming_the_flag(args, env, needle):
    p = start_fails(*args, env=env)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr, p.stderr


class PrimaryAndReplica:
    """A primary on a loopback port and a replica of it, each with AOF on."""

    def __enter__(self):
        self.servers = []
        try:
            self.primary = redis_sentinel.start_on_free_port(lambda port: self._start(port))
            port = self.primary.port
            self.replica = redis_sentinel.start_on_free_port(lambda p: self._start(
                p, "--replicaof", "127.0.0.1", str(port)))
            self.address = ("127.0.0.1", port)
            self.url = f"redis://127.0.0.1:{port}"
            # WAIT after a write returns once the replica has synced it: an
            # event, no polling.
            assert redis_sentinel.command(self.address, "SET", "pyexec-test:fence", "1") == "OK"
            assert redis_sentinel.command(self.address, "WAIT", "1", "20000") == 1
            return self
        except BaseException:
            self.__exit__()
            raise

    def replica_address(self):
        return ("127.0.0.1", self.replica.port)

    def _start(self, port, *extra):
        s = redis_server.RedisServer("--port", str(port), "--bind", "127.0.0.1", *extra)
        try:
            s.start()
        except BaseException:
            s.close()
            raise
        s.port = port
        self.servers.append(s)
        return s

    def __exit__(self, *exc):
        for s in self.servers:
            if s.proc:
                os.kill(s.proc.pid, signal.SIGCONT)
            s.close()


def execute(stub, pb, text, request_id, timeout=30):
    req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=[f"print:{text}", "exit:0"]),
                            files=[pb.File(path="main.py", content=b"")],
                            request_id=request_id)
    return stub.Execute(req, timeout=timeout)


def records(address, ns):
    """Every execution record of namespace `ns`: {id: {field: value}}."""
    out = {}
    for key in redis_sentinel.command(address, "KEYS", f"px:{ns}:exe:*"):
        flat = redis_sentinel.command(address, "HGETALL", key)
        out[key.decode().rsplit(":", 1)[1]] = {
            flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    return out


def test_executions_wait_for_the_replica_and_fail_unavailable_without_it():
    ns = "replicawait"
    with PrimaryAndReplica() as redis:
        server = pyexecd.Server("--store", redis.url, "--store-namespace", ns,
                                "--store-min-replicas", "1", "--store-replica-timeout-ms", "300",
                                binary=fake_binary())
        server.start()
        try:
            stubs = pyexecd.stubs()
            pb = stubs.executor
            ex = stubs.executor_grpc.ExecutorServiceStub(server.channel())
            # Replica up: executions work (and are on the replica).
            done = execute(ex, pb, "up", "rid-up")
            assert done.stdout == b"up" and done.status == pb.EXECUTION_STATUS_COMPLETED
            key = f"px:{ns}:exe:{done.execution_id}"
            assert redis_sentinel.command(redis.replica_address(), "EXISTS", key) == 1

            os.kill(redis.replica.proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises(grpc.RpcError) as e:
                    execute(ex, pb, "down", "rid-down")
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "replica wait" in e.value.details(), e.value.details()
                assert "same request_id" in e.value.details(), e.value.details()
                # The record exists on the primary; the worker claims it but
                # does not start it while the claim is not replicated.
                server.wait_stderr(r"claim: claim '[^']+': .*replica wait")
                recs = {i: r for i, r in records(redis.address, ns).items()
                        if i != done.execution_id}
                assert len(recs) == 1, recs
                (down_id, rec), = recs.items()
                assert rec["st"] == str(pb.EXECUTION_STATUS_PENDING), rec
                assert "sa" not in rec, rec
            finally:
                os.kill(redis.replica.proc.pid, signal.SIGCONT)

            # Released: the retry with the same request_id finds that one
            # execution, which runs once.
            again = execute(ex, pb, "down", "rid-down")
            assert again.execution_id == down_id
            assert again.stdout == b"down" and again.status == pb.EXECUTION_STATUS_COMPLETED
            assert len(records(redis.address, ns)) == 2
        finally:
            assert server.stop() == 0
            server.close()
