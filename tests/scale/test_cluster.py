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
import sys
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
