"""Hardening: hostile programs, hostile clients and faults, against a real
pyexecd and the real Docker engine (docs/security.md lists what each test
stands for).

Every test states the answer it expects, and after every test the servers
it used must still be healthy and none of their containers may be left
(the `healthy_and_clean` fixture checks both). Containers run with the
network disabled (the default): nothing here sends traffic on Docker's
bridge; the only network peer is 127.0.0.1.

Both isolation modes: `own` runs in the session server's mode (conftest.py's
`isolation`), so the module runs once per mode.

Most tests run on `own`, a server started for this module with a marker
variable in its environment (to show a program cannot read it), the
contract's default 16 MiB output cap and a 4 MiB receive limit. Fault
tests (kill -9, engine unreachable) start servers of their own.
"""

import concurrent.futures
import errno
import json
import os
import resource
import signal
import socket
import threading
import time
import uuid

import grpc
import pytest

import pyexecd
from conftest import IMAGE, RUNTIME, Runner, runtime_differs

OUTPUT_LIMIT = 16 * 1024 * 1024
RECEIVE_LIMIT = 4 * 1024 * 1024
# Peak RSS growth allowed while three 16 MiB floods run one after another
# and stay retained: 3 logs of 16 MiB, plus a 16 MiB reply being encoded and
# sent, plus transport buffers, is well under this.
FLOOD_RSS_BOUND = 200 * 1024 * 1024
MARKER_NAME = "PYEXEC_HARDENING_MARKER"

COMPLETED = "EXECUTION_STATUS_COMPLETED"
FAILED = "EXECUTION_STATUS_FAILED"
KILLED = "EXECUTION_STATUS_KILLED"
READY = "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"


def status(res):
    return pyexecd.status_name(res)


def reason(res):
    return pyexecd.reason_name(res)


def proc_status(pid, field):
    """A /proc/<pid>/status field in bytes (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def instance_containers(instance):
    """Every container of a server instance, warm-pool ones included."""
    return pyexecd.containers(f"pyexec.instance={instance}")


def execution_containers(instance):
    """The containers of a server instance that belong to an execution (a
    warm pool's idle containers do not, and stay until the server stops)."""
    return [c for c in instance_containers(instance)
            if "pyexec.execution" in (c.get("Labels") or {})]


def health_status(channel):
    h = pyexecd.stubs().health
    resp = pyexecd.stubs().health_grpc.HealthStub(channel).Check(
        h.HealthCheckRequest(service=""), timeout=10)
    return h.HealthCheckResponse.ServingStatus.Name(resp.status)


class Own:
    """A server of this module and a Runner on it."""

    def __init__(self, srv, instance, pb):
        self.srv = srv
        self.instance = instance
        self.pid = srv.proc.pid
        self.port = int(srv.address.rsplit(":", 1)[1])
        self.channel = srv.channel()
        self.stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(self.channel)
        self.runner = Runner(self.stub, pb)


@pytest.fixture(scope="module")
def marker():
    return f"marker-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def own(pb, marker, isolation, no_container_left_behind):
    instance = f"e2e-hard-{uuid.uuid4().hex[:8]}"
    args = ["--default-image", IMAGE, "--instance", instance, "--isolation", isolation,
            "--output-limit-bytes", str(OUTPUT_LIMIT),
            "--max-message-bytes", str(RECEIVE_LIMIT)]
    with pyexecd.Server(*args, env={MARKER_NAME: marker}) as srv:
        o = Own(srv, instance, pb)
        # Warm up (image check, first container) before any baseline is taken.
        res = o.runner.run("print('warm')\n")
        assert res.stdout == b"warm\n"
        o.baseline_rss = proc_status(o.pid, "VmRSS")
        yield o
        o.runner.close()
        assert srv.proc.poll() is None, f"server died: {srv.stderr_text()[-2000:]}"
        assert srv.stop(timeout=60) == 0
    assert pyexecd.wait_until(lambda: not instance_containers(instance), 15)


@pytest.fixture(autouse=True)
def healthy_and_clean(own, server, instance):
    """After each test: both servers alive and SERVING, and no execution's
    container of theirs left (removal may trail a call's end by a moment)."""
    yield
    for srv in (own.srv, server):
        assert srv.proc.poll() is None, f"server died: {srv.stderr_text()[-2000:]}"
        assert health_status(srv.channel()) == "SERVING"
    own.runner.close()
    for inst in (own.instance, instance):
        assert pyexecd.wait_until(lambda: not execution_containers(inst), 20), \
            [c.get("Names") for c in execution_containers(inst)]


# ---- hostile programs -------------------------------------------------------

FLOODS = {
    "lines": ("import sys\nchunk = b'x' * 1023 + b'\\n'\n"
              "while True:\n    sys.stdout.buffer.write(chunk)\n"),
    "no_newlines": ("import sys\nchunk = b'y' * 65536\n"
                    "while True:\n    sys.stdout.buffer.write(chunk)\n"),
    "binary": ("import os, sys\n"
               "while True:\n    sys.stdout.buffer.write(os.urandom(65536))\n"),
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_stdout_flood_hits_the_output_limit_with_bounded_server_memory(own, kind):
    res = own.runner.run(FLOODS[kind], config={"timeout_seconds": 60})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_OUTPUT_LIMIT"
    assert res.output_truncated
    # The exact prefix up to the cap is kept.
    assert len(res.stdout) + len(res.stderr) == OUTPUT_LIMIT, (len(res.stdout), res.stderr[-300:])
    if kind == "lines":
        assert res.stdout[:2048] == (b"x" * 1023 + b"\n") * 2
    elif kind == "no_newlines":
        assert set(res.stdout) == {ord("y")}
    peak = proc_status(own.pid, "VmHWM")
    # A sanitizer build's memory (shadow, quarantine) says nothing about the
    # server's own bound; scripts/test names the sanitizer it runs.
    if not os.environ.get("PYEXEC_TEST_SANITIZER"):
        assert peak - own.baseline_rss < FLOOD_RSS_BOUND, (peak, own.baseline_rss)


@runtime_differs("runsc", "the process limit counts the gVisor kernel's host threads, not the "
                 "program's processes: a fork bomb ends the whole sandbox instead of failing fork()")
def test_fork_bomb_is_contained_by_the_process_limit(ex):
    code = ("import os, time\n"
            "def bomb():\n"
            "    while True:\n"
            "        try:\n"
            "            os.fork()\n"
            "        except OSError:\n"
            "            time.sleep(0.05)\n"
            "try:\n"
            "    for _ in range(100000):\n"
            "        if os.fork() == 0:\n"
            "            bomb()\n"
            "    print('no limit', flush=True)\n"
            "except OSError as e:\n"
            "    print('fork failed', e.errno, flush=True)\n"
            "os._exit(0)\n")
    res = ex.run(code, config={"timeout_seconds": 60, "memory_mb": 512})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED", (res.exit_code, res.stderr[-500:])
    assert res.stdout == f"fork failed {errno.EAGAIN}\n".encode()
    assert res.exit_code == 0


def test_memory_bomb_in_many_processes_is_an_oom_kill(ex):
    code = ("import os\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        break\n"
            "blocks = []\n"
            "while True:\n"
            "    blocks.append(bytearray(4 << 20))\n")
    res = ex.run(code, config={"timeout_seconds": 60, "memory_mb": 96})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_MEMORY_LIMIT", (res.exit_code, res.stderr[-500:])


FILL = ("import errno, os, sys\n"
        "def fill(d):\n"
        "    try:\n"
        "        for i in range(100000):\n"
        "            with open(os.path.join(d, f'fill{i}'), 'wb') as f:\n"
        "                for _ in range(64):\n"
        "                    f.write(b'z' * 65536)\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "    return 'no limit'\n"
        "print(sys.argv[1], fill(sys.argv[1]), flush=True)\n"
        "print('still alive', flush=True)\n")


@pytest.mark.parametrize("where", ["/work", "/tmp"])
def test_filling_a_writable_directory_fails_with_enospc_or_efbig(ex, where):
    res = ex.run(FILL, script_args=[where],
                 config={"timeout_seconds": 60, "disk_mb": 32, "memory_mb": 256})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED", (res.exit_code, res.stderr[-500:])
    assert res.exit_code == 0
    where_, code = res.stdout.decode().splitlines()[0].split()
    assert where_ == where
    assert code in ("ENOSPC", "EFBIG")
    assert res.stdout.endswith(b"still alive\n")


@runtime_differs("runsc", "the sandbox shows the program no cgroup files, so no usage is reported")
def test_filling_work_until_memory_runs_out_reports_usage(ex):
    """/work is a tmpfs in the memory cgroup: with /work larger than the
    memory limit, filling it ends in an OOM kill that frees nothing. The
    usage is still reported (it was 0 / 0)."""
    code = ("import time\n"
            "t = time.process_time()\n"
            "while time.process_time() - t < 0.3:\n"
            "    pass\n"
            "with open('/work/fill', 'wb') as f:\n"
            "    while True:\n"
            "        f.write(b'z' * 65536)\n")
    res = ex.run(code, config={"timeout_seconds": 60, "disk_mb": 512, "memory_mb": 64})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_MEMORY_LIMIT", (res.exit_code, res.stderr[-500:])
    assert res.usage.peak_memory_bytes >= 48 << 20, res.usage
    assert res.usage.cpu_time_ms >= 300, res.usage


def test_sleep_forever_ends_at_the_timeout(ex):
    res = ex.run("import time\ntime.sleep(10**9)\n", config={"timeout_seconds": 1})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_TIMEOUT"


def test_detached_grandchild_does_not_outlive_the_execution(ex):
    """setsid + double fork: a grandchild in its own session keeps stdout
    open and sleeps; the execution still ends when the main program does,
    and the container (with the grandchild) is removed."""
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        print('grandchild', os.getpid(), flush=True)\n"
            "        time.sleep(3600)\n"
            "    os._exit(0)\n"
            "os.wait()\n"
            "time.sleep(0.5)\n"
            "print('main exits', flush=True)\n")
    res = ex.run(code, config={"timeout_seconds": 60})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED"
    assert res.exit_code == 0
    assert res.stdout.endswith(b"main exits\n")
    assert b"grandchild" in res.stdout
    # The result comes as soon as the program has ended; the container (and
    # the grandchild with it) is removed right after.
    assert pyexecd.wait_until(
        lambda: not pyexecd.containers_mentioning(res.execution_id[len("exe_"):]), 15)


def test_program_that_closes_its_stdout_keeps_running_and_ends_normally(ex):
    code = ("import os, sys, time\n"
            "print('before', flush=True)\n"
            "os.close(1)\n"
            "time.sleep(1)\n"
            "print('stderr still works', file=sys.stderr, flush=True)\n"
            "sys.exit(3)\n")
    res = ex.run(code, config={"timeout_seconds": 60})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED"
    assert res.exit_code == 3
    assert res.stdout == b"before\n"
    assert b"stderr still works\n" in res.stderr


def test_program_that_closes_stdout_and_stderr_then_sleeps_times_out(ex):
    code = ("import os, time\n"
            "os.close(1)\n"
            "os.close(2)\n"
            "time.sleep(3600)\n")
    res = ex.run(code, config={"timeout_seconds": 2})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_TIMEOUT"


def test_program_ignoring_sigterm_is_still_killed(ex):
    code = ("import signal, time\n"
            "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    time.sleep(1)\n")
    eid = ex.start(code).execution_id
    assert pyexecd.read_until(ex.stream(eid), b"ready\n") == b"ready\n"
    res = ex.kill(eid)
    assert status(res) == KILLED
    assert reason(res) == "TERMINATION_REASON_KILLED"
    assert res.exit_code == 128 + signal.SIGKILL
    assert not pyexecd.containers_mentioning(eid[len("exe_"):])


# The program probes the host from inside the sandbox and reports as JSON.
PROBE = r"""
import ctypes, errno, json, os, socket, sys

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def write_root():
    with open("/pyexec-probe", "w") as f:
        f.write("x")

def read_environ():
    with open("/proc/1/environ", "rb") as f:
        return f.read()

def mount():
    libc = ctypes.CDLL(None, use_errno=True)
    os.makedirs("/tmp/mnt", exist_ok=True)
    if libc.mount(b"none", b"/tmp/mnt", b"tmpfs", 0, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def connect():
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
    finally:
        s.close()

report = {
    "uid": os.getuid(),
    "write_root": attempt(write_root),
    "setuid": attempt(lambda: os.setuid(0)),
    "mount": attempt(mount),
    "connect": attempt(connect),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),  # no /sys needed
    "cap_eff": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0],
    # prctl(PR_GET_NO_NEW_PRIVS): gVisor's /proc/self/status has no such line.
    "no_new_privs": str(ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0)),
}
try:
    env = read_environ()
    report["environ"] = "readable"
    report["environ_text"] = env.decode("utf-8", "replace")
except OSError as e:
    report["environ"] = errno.errorcode.get(e.errno, str(e.errno))
    report["environ_text"] = ""
report["own_environ"] = "\n".join(f"{k}={v}" for k, v in os.environ.items())
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def probe(own):
    res = own.runner.run(PROBE, script_args=[str(own.port)], config={"timeout_seconds": 60})
    assert status(res) == COMPLETED, res.stderr[-1000:]
    assert res.exit_code == 0, res.stderr[-1000:]
    return json.loads(res.stdout)


def test_program_runs_as_an_unprivileged_user(probe):
    assert probe["uid"] == 65534
    assert int(probe["cap_eff"], 16) == 0
    assert probe["no_new_privs"] == "1"


def test_program_cannot_write_the_root_filesystem(probe):
    # gVisor refuses the write with EACCES (its gofer mounts the root read-only).
    assert probe["write_root"] in (("EROFS", "EACCES") if RUNTIME == "runsc" else ("EROFS",))


def test_program_cannot_setuid_root(probe, isolation):
    # In the namespace mode, and under gVisor (where the bootstrap runs in a
    # user namespace of its own: docs/sandbox.md), uid 0 is not even mapped
    # in the program's user namespace: the kernel answers EINVAL.
    unmapped = isolation == "namespace" or RUNTIME == "runsc"
    assert probe["setuid"] == ("EINVAL" if unmapped else "EPERM")


def test_program_cannot_mount(probe):
    assert probe["mount"] in ("EPERM", "EACCES")


def test_program_cannot_read_the_servers_environment(probe, marker):
    # /proc/1 is the sandbox's own init: denied, or readable but never the
    # server's environment.
    assert probe["environ"] in ("readable", "EACCES", "EPERM")
    assert marker not in probe["environ_text"]
    assert MARKER_NAME not in probe["environ_text"]
    assert marker not in probe["own_environ"]


def test_program_cannot_reach_the_server_port(probe):
    # The sandbox has only its own loopback: the server's port is not there.
    assert probe["interfaces"] == ["lo"]
    assert probe["connect"] in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT")


# ---- hostile clients ----------------------------------------------------------

def test_200_concurrent_readers_of_one_execution_get_identical_output(own, pb):
    code = ("import time\n"
            "print('ready', flush=True)\n"
            "time.sleep(2)\n"
            "for i in range(2000):\n"
            "    print(f'line {i:05d}')\n")
    eid = own.runner.start(code, config={"timeout_seconds": 60}).execution_id

    def read(_):
        data, final = b"", None
        for chunk in own.stub.StreamOutput(pb.StreamOutputRequest(execution_id=eid),
                                           timeout=120):
            if chunk.HasField("result"):
                final = chunk.result
            else:
                data += chunk.data
        return data, final

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        results = list(pool.map(read, range(200)))
    expected = b"ready\n" + b"".join(f"line {i:05d}\n".encode() for i in range(2000))
    assert all(data == expected for data, _ in results)
    assert all(final is not None and status(final) == COMPLETED for _, final in results)


def test_a_reader_that_never_reads_does_not_hold_up_the_execution(own, pb):
    code = ("import sys, time\n"
            "print('ready', flush=True)\n"
            "time.sleep(1)\n"
            "chunk = b'r' * 65535 + b'\\n'\n"
            "for _ in range(64):\n"
            "    sys.stdout.buffer.write(chunk)\n")
    eid = own.runner.start(code, config={"timeout_seconds": 60}).execution_id
    # A separate connection whose stream is opened but never read: after the
    # transport's flow-control window the server cannot send it anything.
    idle_channel = pyexecd.channel(own.srv.address)
    idle = pyexecd.stubs().executor_grpc.ExecutorServiceStub(idle_channel).StreamOutput(
        pb.StreamOutputRequest(execution_id=eid), timeout=120)
    try:
        res = own.runner.wait(eid, timeout=60)
        assert status(res) == COMPLETED
        assert reason(res) == "TERMINATION_REASON_EXITED"
        assert len(res.stdout) == len(b"ready\n") + 64 * 65536
    finally:
        idle.cancel()
        idle_channel.close()


def test_1000_idle_connections_do_not_stop_service(own):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", own.port), timeout=10)
            socks.append(s)
        res = own.runner.run("print('still serving')\n", timeout=60)
        assert status(res) == COMPLETED
        assert res.stdout == b"still serving\n"
        assert health_status(pyexecd.channel(own.srv.address)) == "SERVING"
    finally:
        for s in socks:
            s.close()
    # The server lets go of the connections' descriptors once they close.
    base = fd_count(own.pid)
    assert pyexecd.wait_until(lambda: fd_count(own.pid) < 500, 30), (base, fd_count(own.pid))


def test_streams_opened_and_cancelled_in_a_tight_loop(own, pb):
    eid = own.runner.start(READY, config={"timeout_seconds": 60}).execution_id
    assert pyexecd.read_until(own.runner.stream(eid), b"ready\n") == b"ready\n"
    channel = pyexecd.channel(own.srv.address)
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(channel)
    deadline = time.monotonic() + 3
    n = 0
    try:
        while time.monotonic() < deadline and n < 20000:
            call = stub.StreamOutput(pb.StreamOutputRequest(execution_id=eid), timeout=30)
            call.cancel()
            fut = stub.GetExecution.future(pb.GetExecutionRequest(execution_id=eid), timeout=30)
            fut.cancel()
            n += 1
    finally:
        channel.close()
    assert n > 0
    res = own.runner.run("print('after the storm')\n", timeout=60)
    assert res.stdout == b"after the storm\n"
    killed = own.runner.kill(eid)
    assert status(killed) == KILLED


def test_oversized_metadata_is_rejected_and_other_connections_work(own, pb):
    # Each channel gets a connection of its own (grpc shares connections
    # between channels with equal options otherwise).
    bad_channel = pyexecd.channel(own.srv.address, **{"grpc.use_local_subchannel_pool": 1})
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(bad_channel)
    try:
        with pytest.raises(grpc.RpcError) as e:
            stub.GetExecution(pb.GetExecutionRequest(execution_id=f"exe_{uuid.uuid4()}"),
                              metadata=[("x-big", "a" * 65536)], timeout=10)
        # Refused, not hung.
        assert e.value.code() not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED,
                                      grpc.StatusCode.NOT_FOUND)
    finally:
        bad_channel.close()
    other = pyexecd.channel(own.srv.address, **{"grpc.use_local_subchannel_pool": 1})
    try:
        assert health_status(other) == "SERVING"
        res = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(other), pb).run(
            "print('fine')\n")
        assert res.stdout == b"fine\n"
    finally:
        other.close()


def test_request_larger_than_the_receive_limit_is_resource_exhausted(own):
    req = own.runner.request(files={"main.py": "print(1)\n",
                                    "blob.bin": b"\0" * (RECEIVE_LIMIT + 1024)})
    with pytest.raises(grpc.RpcError) as e:
        own.stub.Execute(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert health_status(own.channel) == "SERVING"


# ---- faults -------------------------------------------------------------------

def test_kill_9_then_a_new_server_with_the_same_instance_reaps_orphans(pb):
    instance = f"e2e-reap-{uuid.uuid4().hex[:8]}"
    args = ["--default-image", IMAGE, "--instance", instance]
    with pyexecd.Server(*args) as first:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(first.channel()), pb)
        ids = [runner.start(READY, config={"timeout_seconds": 120}).execution_id
               for _ in range(2)]
        for eid in ids:
            assert pyexecd.read_until(runner.stream(eid), b"ready\n") == b"ready\n"
        assert len(execution_containers(instance)) == 2
        first.proc.kill()
        first.proc.wait()
    # The orphans (the executions' containers and any warm-pool ones)
    # outlive the server ...
    orphans = {c["Id"] for c in instance_containers(instance)}
    assert len(orphans) >= 2

    def left():
        return orphans & {c["Id"] for c in instance_containers(instance)}

    # ... until a server with the same instance name starts and reaps them.
    with pyexecd.Server(*args) as second:
        assert pyexecd.wait_until(lambda: not left(), 30), left()
        assert health_status(second.channel()) == "SERVING"
        assert second.stop(timeout=60) == 0
    assert pyexecd.wait_until(lambda: not instance_containers(instance), 15)


def test_container_removed_behind_the_servers_back_fails_the_execution(own):
    # The program's host name is its container's short id, in both modes (a
    # namespace-mode host keeps its own name while it runs an execution).
    code = "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(3600)\n"
    eid = own.runner.start(code, config={"timeout_seconds": 60}).execution_id
    host = pyexecd.read_until(own.runner.stream(eid), b"x" * 13).decode().strip()
    found = [c for c in pyexecd.containers(f"pyexec.instance={own.instance}")
             if c["Id"].startswith(host)]
    assert len(found) == 1, host
    code, body = pyexecd.docker_api("DELETE", f"/containers/{found[0]['Id']}?force=1")
    assert code == 204, body
    res = own.runner.wait(eid, timeout=60)
    assert status(res) == FAILED, (reason(res), res.error)
    assert reason(res) in ("TERMINATION_REASON_LOST", "TERMINATION_REASON_SANDBOX_ERROR")
    assert res.error


def test_engine_unreachable_at_start(pb):
    instance = f"e2e-nodocker-{uuid.uuid4().hex[:8]}"
    args = ["--default-image", IMAGE, "--instance", instance,
            "--docker-socket", "/nonexistent/docker.sock"]
    with pyexecd.Server(*args) as srv:
        ch = srv.channel()
        assert health_status(ch) == "NOT_SERVING"
        stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(ch)
        req = pb.ExecuteRequest(files=pyexecd.make_files({"main.py": "print(1)\n"}))
        with pytest.raises(grpc.RpcError) as e:
            stub.Execute(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        setattr(req, "async", True)
        try:
            first = stub.Execute(req, timeout=30)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE
        else:
            res = pyexecd.wait_terminal(stub, first.execution_id, timeout=60)
            assert status(res) == FAILED
            assert reason(res) == "TERMINATION_REASON_SANDBOX_ERROR"
            assert res.error
        assert srv.stop(timeout=60) == 0
