"""Several pyexecd nodes on one Redis, with the real Docker engine: every
call works on any node, and the failure table's rows for a dead or paused
worker (docs/scaling.md).

Each test starts a private redis-server (unix socket, AOF on) and its own
nodes, each with its own --instance (the reaper's scope) and --node-name.
Environment: PYEXECD_BIN, PYEXEC_TEST_IMAGE (as tests/e2e).
"""

import os
import pathlib
import signal
import socket
import sys
import threading
import uuid

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402
import redis_server  # noqa: E402

IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"
LEASE_MS = 1000


class Cluster:
    def __init__(self, redis):
        self.redis = redis
        self.tag = uuid.uuid4().hex[:8]
        self.nodes = {}
        stubs = pyexecd.stubs()
        self.pb = stubs.executor
        self.grpc = stubs.executor_grpc

    def start(self, name, *extra):
        server = pyexecd.Server(
            "--store", self.redis.url, "--store-namespace", "c" + self.tag,
            "--node-name", name, "--instance", f"scale-{self.tag}-{name}",
            "--node-lease-ms", str(LEASE_MS), "--default-image", IMAGE,
            "--warm-pool", "0", "--shutdown-grace-s", "0", *extra)
        server.start()
        self.nodes[name] = server
        return server

    def stub(self, name):
        return self.grpc.ExecutorServiceStub(self.nodes[name].channel())

    def request(self, code, async_=True):
        pb = self.pb
        return pb.ExecuteRequest(metadata=pb.Metadata(), files=[
            pb.File(path="main.py", content=code.encode())], **{"async": async_})

    def owner(self, execution_id):
        """The node whose --instance labels the execution's container."""
        found = pyexecd.containers_mentioning(execution_id.removeprefix("exe_"))
        for c in found:
            for value in (c.get("Labels") or {}).values():
                if value.startswith(f"scale-{self.tag}-"):
                    return value.removeprefix(f"scale-{self.tag}-")
        return None

    def containers(self):
        return [c for c in pyexecd.containers()
                if any(v.startswith(f"scale-{self.tag}-")
                       for v in (c.get("Labels") or {}).values())]

    def close(self):
        for server in self.nodes.values():
            if server.proc and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.close()
        # Whatever a killed node left behind goes too.
        for c in self.containers():
            pyexecd.docker_api("DELETE", f"/containers/{c['Id']}?force=1")


@pytest.fixture
def cluster():
    if not os.access(pyexecd.server_binary(), os.X_OK):
        pytest.fail(f"server binary {pyexecd.server_binary()} missing: build //server:pyexecd")
    with redis_server.RedisServer() as redis:
        c = Cluster(redis)
        try:
            yield c
        finally:
            c.close()


def first_output(stub, pb, execution_id):
    """Blocks until the execution's first output chunk (an event)."""
    for msg in stub.StreamOutput(pb.StreamOutputRequest(execution_id=execution_id),
                                 timeout=120):
        if msg.data:
            return msg
    raise AssertionError("the stream ended without output")


def final_message(stub, pb, execution_id, offset):
    """Follows the stream from `offset` to its final message (the end)."""
    last = None
    for msg in stub.StreamOutput(pb.StreamOutputRequest(execution_id=execution_id,
                                                        offset=offset), timeout=120):
        last = msg
    return last


LONG = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"


def test_any_node_answers_for_an_execution_run_anywhere(cluster):
    cluster.start("a")
    cluster.start("b")
    pb = cluster.pb
    a, b = cluster.stub("a"), cluster.stub("b")
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n"
    res = a.Execute(cluster.request(code, async_=False), timeout=120)
    assert res.status == pb.EXECUTION_STATUS_COMPLETED and res.exit_code == 3
    got = b.GetExecution(pb.GetExecutionRequest(execution_id=res.execution_id), timeout=10)
    assert (got.stdout, got.stderr, got.exit_code) == (b"out\n", b"err\n", 3)
    # Two readers on different nodes at different offsets see the same bytes.
    whole = b"".join(m.data for m in b.StreamOutput(
        pb.StreamOutputRequest(execution_id=res.execution_id), timeout=30))
    tail = b"".join(m.data for m in a.StreamOutput(
        pb.StreamOutputRequest(execution_id=res.execution_id, offset=2), timeout=30))
    assert whole[2:] == tail and sorted([whole[:4], whole[4:]]) == sorted([b"out\n", b"err\n"])


def test_kill_on_another_node_than_the_run(cluster):
    cluster.start("a")
    cluster.start("b")
    pb = cluster.pb
    a = cluster.stub("a")
    job = a.Execute(cluster.request(LONG), timeout=30)
    assert first_output(a, pb, job.execution_id).data == b"started\n"
    owner = cluster.owner(job.execution_id)
    assert owner in ("a", "b")
    other = "b" if owner == "a" else "a"
    res = cluster.stub(other).Kill(pb.KillRequest(execution_id=job.execution_id), timeout=60)
    assert res.status == pb.EXECUTION_STATUS_KILLED
    assert res.reason == pb.TERMINATION_REASON_KILLED
    assert res.stdout == b"started\n"  # all it wrote before it died
    assert pyexecd.wait_until(lambda: not cluster.owner(job.execution_id), 15)


def test_kill_while_queued_on_another_node(cluster):
    """Both nodes busy (one slot each): a third job waits in the cluster's
    queue; a Kill on either node ends it at once, and it never runs."""
    cluster.start("a", "--max-concurrent", "1")
    cluster.start("b", "--max-concurrent", "1")
    pb = cluster.pb
    a, b = cluster.stub("a"), cluster.stub("b")
    busy = [a.Execute(cluster.request(LONG), timeout=30) for _ in range(2)]
    for job in busy:
        first_output(a, pb, job.execution_id)
    assert {cluster.owner(job.execution_id) for job in busy} == {"a", "b"}
    queued = a.Execute(cluster.request("print('never')\n"), timeout=30)
    assert b.GetExecution(pb.GetExecutionRequest(execution_id=queued.execution_id),
                          timeout=10).status == pb.EXECUTION_STATUS_PENDING
    res = b.Kill(pb.KillRequest(execution_id=queued.execution_id), timeout=60)
    assert res.status == pb.EXECUTION_STATUS_KILLED
    assert res.reason == pb.TERMINATION_REASON_KILLED
    assert not res.HasField("started_at") and res.stdout == b""
    for job in busy:
        b.Kill(pb.KillRequest(execution_id=job.execution_id), timeout=60)


def test_a_worker_killed_mid_run_ends_its_run_lost(cluster):
    """kill -9 of the node running an execution: another node's sweep ends it
    FAILED/LOST within the lease and sweep interval; the container is reaped
    when the node comes back."""
    cluster.start("a")
    cluster.start("b")
    pb = cluster.pb
    job = cluster.stub("a").Execute(cluster.request(LONG), timeout=30)
    first = first_output(cluster.stub("a"), pb, job.execution_id)
    owner = cluster.owner(job.execution_id)
    survivor = "b" if owner == "a" else "a"
    cluster.nodes[owner].proc.send_signal(signal.SIGKILL)
    cluster.nodes[owner].proc.wait()
    end = final_message(cluster.stub(survivor), pb, job.execution_id, len(first.data))
    assert end.HasField("result")
    assert end.result.status == pb.EXECUTION_STATUS_FAILED
    assert end.result.reason == pb.TERMINATION_REASON_LOST
    assert f"node '{owner}'" in end.result.error
    # The node comes back under its name and instance: its reaper removes
    # the orphaned container, and it serves again.
    del cluster.nodes[owner]
    cluster.start(owner)
    assert pyexecd.wait_until(lambda: not cluster.owner(job.execution_id), 30)
    res = cluster.stub(owner).Execute(cluster.request("print('back')\n", async_=False),
                                      timeout=120)
    assert res.stdout == b"back\n"


def test_a_paused_worker_is_fenced_and_kills_its_container(cluster):
    """SIGSTOP past the lease: the run is declared lost; after SIGCONT the
    node's late writes are refused and it kills its orphaned container."""
    cluster.start("a")
    cluster.start("b")
    pb = cluster.pb
    job = cluster.stub("a").Execute(cluster.request(LONG), timeout=30)
    first = first_output(cluster.stub("a"), pb, job.execution_id)
    owner = cluster.owner(job.execution_id)
    survivor = "b" if owner == "a" else "a"
    cluster.nodes[owner].proc.send_signal(signal.SIGSTOP)
    end = final_message(cluster.stub(survivor), pb, job.execution_id, len(first.data))
    assert end.result.reason == pb.TERMINATION_REASON_LOST
    cluster.nodes[owner].proc.send_signal(signal.SIGCONT)
    assert pyexecd.wait_until(lambda: not cluster.owner(job.execution_id), 30)
    got = cluster.stub(owner).GetExecution(pb.GetExecutionRequest(
        execution_id=job.execution_id), timeout=10)
    assert got.status == pb.EXECUTION_STATUS_FAILED
    assert got.reason == pb.TERMINATION_REASON_LOST
    assert "node 'a" in got.error or "node 'b" in got.error
    assert "fenced" in "".join(cluster.nodes[owner].stderr_lines()) or \
        "lost its lease" in "".join(cluster.nodes[owner].stderr_lines())


class EngineProxy:
    """A unix socket that forwards to the Docker engine's, which the test can
    take away (every connection closed, nothing accepted) and bring back:
    a worker's engine going down and coming back."""

    def __init__(self, path, engine="/var/run/docker.sock"):
        self.path, self.engine = str(path), engine
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None

    def start(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.engine)
            with self.lock:
                self.conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)  # a half close passes on as one
        except OSError:
            pass

    def stop(self):
        self.listener.close()
        os.unlink(self.path)
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_a_worker_whose_engine_is_down_claims_nothing_until_it_answers(cluster, tmp_path):
    """The failure table's engine row: the worker turns NOT_SERVING and stops
    claiming (a job admitted meanwhile waits, it is not failed), its running
    execution ends FAILED, and it claims and runs the job once its engine
    answers again."""
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.start()
    try:
        cluster.start("front", "--role", "frontend")
        worker = cluster.start("w", "--role", "worker", "--docker-socket", proxy.path,
                               "--health-interval-ms", "100")
        pb = cluster.pb
        front = cluster.stub("front")
        stubs = pyexecd.stubs()
        watch = stubs.health_grpc.HealthStub(worker.channel()).Watch(
            stubs.health.HealthCheckRequest(), timeout=120)
        serving = stubs.health.HealthCheckResponse.SERVING
        assert next(watch).status == serving
        running = front.Execute(cluster.request(LONG), timeout=30)
        assert first_output(front, pb, running.execution_id).data.startswith(b"started")
        proxy.stop()
        assert next(watch).status != serving
        worker.wait_stderr(r"the back-end does not answer; claiming no jobs")
        end = final_message(front, pb, running.execution_id, 0)
        assert end.result.status == pb.EXECUTION_STATUS_FAILED, end
        waiting = front.Execute(cluster.request("print('after')\n"), timeout=30)
        assert front.GetExecution(pb.GetExecutionRequest(execution_id=waiting.execution_id),
                                  timeout=10).status == pb.EXECUTION_STATUS_PENDING
        proxy.start()
        assert next(watch).status == serving
        end = final_message(front, pb, waiting.execution_id, 0)
        assert end.result.status == pb.EXECUTION_STATUS_COMPLETED, end
        got = front.GetExecution(pb.GetExecutionRequest(execution_id=waiting.execution_id),
                                 timeout=10)
        assert got.stdout == b"after\n"
    finally:
        if proxy.listener and proxy.listener.fileno() >= 0:
            proxy.stop()


def test_a_client_retries_a_sync_execute_on_another_frontend_after_its_frontend_died(cluster):
    """The frontend serving a sync Execute is killed (SIGKILL) mid call; the
    execution goes on on its worker, and the client's retry with the same
    request_id on another frontend returns that execution, run once."""
    cluster.start("w", "--role", "worker")
    first = cluster.start("f1", "--role", "frontend")
    cluster.start("f2", "--role", "frontend")
    pb = cluster.pb
    code = ("import sys, time\nprint('once', flush=True)\n"
            "while not __import__('os').path.exists('/tmp/go'):\n    time.sleep(0.05)\n")
    # The program waits for a file nobody creates: it runs until killed, so
    # the call is in flight when its frontend dies. The retry's answer comes
    # when the Kill below ends it.
    req = cluster.request(code, async_=False)
    req.request_id = "retry-" + cluster.tag
    f1, f2 = cluster.stub("f1"), cluster.stub("f2")
    call = f1.Execute.future(req, timeout=120)
    # The execution exists and runs: found through the other frontend.
    retry_async = cluster.request(code, async_=True)
    retry_async.request_id = req.request_id
    found = f2.Execute(retry_async, timeout=30)
    assert first_output(f2, pb, found.execution_id).data.startswith(b"once")
    first.proc.kill()
    first.proc.wait()
    with pytest.raises(grpc.RpcError) as e:
        call.result()
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    retry = f2.Execute.future(req, timeout=120)
    f2.Kill(pb.KillRequest(execution_id=found.execution_id), timeout=60)
    res = retry.result()
    assert res.execution_id == found.execution_id
    assert res.status == pb.EXECUTION_STATUS_KILLED
    assert res.stdout == b"once\n"  # it ran once
