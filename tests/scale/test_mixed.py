"""300 mixed executions over three nodes on one Redis at concurrency 8:
sync and async, streamed from another node, failing, and killed from
another node. Nothing is lost (every execution ends as its program says),
nothing runs twice (the engine created one container per execution, by its
events), nothing is stuck, and no container is left behind.

Environment: PYEXECD_BIN, PYEXEC_TEST_IMAGE (as tests/e2e).
"""

import concurrent.futures
import json
import os
import pathlib
import random
import socket
import sys
import threading
import urllib.parse
from collections import Counter


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "support"))
import pyexecd  # noqa: E402
from test_cluster import IMAGE, LONG, cluster, first_output, final_message  # noqa: E402,F401

N = 300
CONCURRENCY = 8
NODES = ("a", "b", "c")


class CreatedContainers:
    """Follows the engine's container creations (its event stream, read as
    it comes: the engine keeps only the last few hundred events for later
    queries) and counts them by container name."""

    def __init__(self):
        filters = urllib.parse.quote(json.dumps({"type": ["container"], "event": ["create"],
                                                 "label": [pyexecd.LABEL]}))
        self.conn = pyexecd._UnixHTTPConnection(
            os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"), timeout=None)
        self.conn.request("GET", f"/events?filters={filters}")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.names = Counter()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for line in self.resp:
                if line.strip():
                    name = json.loads(line)["Actor"]["Attributes"].get("name", "")
                    with self.lock:
                        self.names[name] += 1
        except (OSError, ValueError):
            pass

    def count(self, name):
        with self.lock:
            return self.names[name]

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # The reader ends on the shut-down socket; close the connection only
        # after it, or http.client would find its file gone mid-read.
        self.thread.join(10)
        self.conn.close()


def run_one(cluster, i, rng):
    """Runs job `i` (its shape from i % 5) and returns (execution id, what
    went wrong or None)."""
    pb = cluster.pb
    on = [cluster.stub(n) for n in rng.sample(NODES, 3)]
    kind = i % 5
    rid = f"mixed-{cluster.tag}-{i}"
    if kind == 0:  # sync, answered by the node it was sent to
        req = cluster.request(f"print('job {i}')\n", async_=False)
        req.request_id = rid
        res = on[0].Execute(req, timeout=300)
        ok = res.status == pb.EXECUTION_STATUS_COMPLETED and res.stdout == f"job {i}\n".encode()
        return res.execution_id, None if ok else f"sync: {res}"
    if kind == 1:  # async, its end read on another node
        req = cluster.request(f"print('job {i}')\n")
        req.request_id = rid
        eid = on[0].Execute(req, timeout=60).execution_id
        end = final_message(on[1], pb, eid, 0)
        got = on[2].GetExecution(pb.GetExecutionRequest(execution_id=eid), timeout=30)
        ok = (end.result.status == pb.EXECUTION_STATUS_COMPLETED
              and got.stdout == f"job {i}\n".encode())
        return eid, None if ok else f"async: {got}"
    if kind == 2:  # failing: a non-zero exit and a traceback
        req = cluster.request(f"raise SystemExit('job {i} fails')\n", async_=False)
        req.request_id = rid
        res = on[0].Execute(req, timeout=300)
        ok = (res.status == pb.EXECUTION_STATUS_COMPLETED and res.exit_code == 1
              and res.stderr == f"job {i} fails\n".encode())
        return res.execution_id, None if ok else f"failing: {res}"
    if kind == 3:  # streamed from another node, all of it in order
        code = f"for k in range(5):\n    print('job {i} line', k, flush=True)\n"
        req = cluster.request(code)
        req.request_id = rid
        eid = on[0].Execute(req, timeout=60).execution_id
        data = b"".join(m.data for m in on[1].StreamOutput(
            pb.StreamOutputRequest(execution_id=eid), timeout=300))
        want = "".join(f"job {i} line {k}\n" for k in range(5)).encode()
        return eid, None if data == want else f"stream: {data!r}"
    # killed from another node once it runs
    req = cluster.request(LONG)
    req.request_id = rid
    eid = on[0].Execute(req, timeout=60).execution_id
    first_output(on[1], pb, eid)
    res = on[2].Kill(pb.KillRequest(execution_id=eid), timeout=300)
    # The program's print reaches the engine as "started" and "\n"; a kill
    # between them still keeps both (the run reads the stream to its end).
    ok = res.status == pb.EXECUTION_STATUS_KILLED and res.stdout == b"started\n"
    return eid, None if ok else f"killed: {res}"


def test_300_mixed_executions_over_three_nodes(cluster):
    for name in NODES:
        cluster.start(name, "--max-concurrent", "3")
    created = CreatedContainers()
    rng = random.Random(11)
    seeds = [rng.random() for _ in range(N)]
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda i: run_one(cluster, i, random.Random(seeds[i])),
                                range(N)))
    ids = [eid for eid, _ in results]
    wrong = [(eid, why) for eid, why in results if why]
    assert not wrong, f"{len(wrong)} executions ended otherwise than their programs say: " \
                      f"{wrong[:3]}"
    assert len(set(ids)) == N  # one execution per request_id
    # None stuck: every one is terminal, on every node.
    pb = cluster.pb
    for n in NODES:
        stub = cluster.stub(n)
        for eid in ids:
            got = stub.GetExecution(pb.GetExecutionRequest(execution_id=eid), timeout=30)
            assert got.status in (pb.EXECUTION_STATUS_COMPLETED, pb.EXECUTION_STATUS_KILLED)
    # None leaked (containers go shortly after their execution ends).
    assert pyexecd.wait_until(lambda: cluster.containers() == [], 60)
    # None ran twice: the engine created exactly one container per
    # execution (the executor names it after the execution). Its creation
    # events arrive in order: a container made for the last one is seen
    # once the stream has caught up with a marker container made now.
    marker = f"pyexec-mixed-marker-{cluster.tag}"
    status, body = pyexecd.docker_api("POST", f"/containers/create?name={marker}", body={
        "Image": IMAGE, "Cmd": ["true"], "Labels": {pyexecd.LABEL.split("=")[0]:
                                             pyexecd.LABEL.split("=")[1]}})
    assert status == 201, body
    pyexecd.docker_api("DELETE", f"/containers/{marker}?force=1")
    assert pyexecd.wait_until(lambda: created.count(marker) == 1, 30)
    created.close()
    twice = [eid for eid in ids if created.count(f"pyexec-{eid}") != 1]
    assert not twice, [(eid, created.count(f"pyexec-{eid}")) for eid in twice[:3]]
