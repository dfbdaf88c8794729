"""What only --isolation namespace has (docs/sandbox.md, "Namespace mode";
docs/security.md): executions that share a host container see nothing of
each other, the program cannot leave its namespaces nor reach the supervisor,
a host is retired after an abnormal end or --host-reuse executions, the
limits set at hand-over hold, and an idle host has the next execution's
sandbox started already.

One server of its own: namespace mode, no warm pool and one execution at a
time, so that consecutive executions run on the same host while it is not
retired. A program learns its host from its host name (the execution's UTS
namespace starts with the host container's name, its id).
"""

import os
import uuid

import pytest

import pyexecd
from conftest import IMAGE, Runner

COMPLETED = "EXECUTION_STATUS_COMPLETED"
REUSE = 4

HOST = "import socket\nprint(socket.gethostname(), flush=True)\n"


@pytest.fixture(scope="module")
def ns(pb, no_container_left_behind):
    instance = f"e2e-ns-{uuid.uuid4().hex[:8]}"
    args = ["--default-image", IMAGE, "--instance", instance, "--isolation", "namespace",
            "--warm-pool", "0", "--max-concurrent", "1", "--host-reuse", str(REUSE)]
    with pyexecd.Server(*args) as srv:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        yield runner
        runner.close()
        assert srv.proc.poll() is None, f"server died: {srv.stderr_text()[-2000:]}"
        assert srv.stop(timeout=60) == 0
    assert pyexecd.wait_until(
        lambda: not pyexecd.containers(f"pyexec.instance={instance}"), 15)


def ok(res):
    assert pyexecd.status_name(res) == COMPLETED, res
    assert res.exit_code == 0, res.stderr.decode(errors="replace")[-2000:]
    return res.stdout.decode()


def host_of(res):
    return res.stdout.decode().split("\n", 1)[0]


def fresh_host(ns):
    """Runs executions until the next one starts a new host (a host has run
    REUSE executions at most); returns that host's name."""
    first = host_of(ns.run(HOST))
    for _ in range(REUSE):
        h = host_of(ns.run(HOST))
        if h != first:
            return h
        first = h
    pytest.fail("no new host after --host-reuse executions")


LEAVE = r"""
import ctypes, os, socket, subprocess
print(socket.gethostname(), flush=True)
for d in ("/work", "/tmp", "/dev/shm"):
    open(d + "/marker", "w").write("x")
subprocess.Popen(["sleep", "3600"], start_new_session=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0pyexec-ns-marker")
s.listen(1)
os.set_inheritable(s.fileno(), True)
subprocess.Popen(["sleep", "3600"], pass_fds=[s.fileno()])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(0x5059, 4096, 0o1666) >= 0, ctypes.get_errno()
assert libc.msgget(0x5059, 0o1666) >= 0, ctypes.get_errno()
print("left")
"""

FIND = r"""
import ctypes, errno, os, socket
print(socket.gethostname(), flush=True)
for d in ("/work", "/tmp", "/dev/shm"):
    print(d, os.path.exists(d + "/marker"))
names = [open("/proc/%s/cmdline" % p, "rb").read() for p in os.listdir("/proc") if p.isdigit()]
print("sleep", any(n.startswith(b"sleep") for n in names))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0pyexec-ns-marker")
    print("socket found")
except ConnectionRefusedError:
    print("socket gone")
libc = ctypes.CDLL(None, use_errno=True)
print("shm", libc.shmget(0x5059, 0, 0), ctypes.get_errno() == errno.ENOENT)
print("msg", libc.msgget(0x5059, 0), ctypes.get_errno() == errno.ENOENT)
"""


def test_nothing_of_one_execution_is_visible_to_the_next_on_its_host(ns):
    host = fresh_host(ns)
    left = ok(ns.run(LEAVE))
    assert left.split("\n")[:2] == [host, "left"]
    found = ok(ns.run(FIND)).split("\n")
    assert found[0] == host  # the same host container
    assert found[1:-1] == ["/work False", "/tmp False", "/dev/shm False", "sleep False",
                           "socket gone", "shm -1 True", "msg -1 True"]


ESCAPES = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(rc):
    return "ok" if rc == 0 else os.strerror(ctypes.get_errno())
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
print("unshare", errno_of(libc.unshare(CLONE_NEWUSER)))
print("unshare_ns", errno_of(libc.unshare(CLONE_NEWNS)))
print("clone", errno_of(libc.syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)))
print("mount", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("ptrace", errno_of(libc.ptrace(16, 1, 0, 0)))  # PTRACE_ATTACH on the supervisor
fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # /proc/1/ns is the supervisor's: EACCES
print("setns", errno_of(libc.setns(fd, 0)))
"""


def test_namespace_creation_mount_ptrace_and_setns_fail_with_eperm(ns):
    out = ok(ns.run(ESCAPES)).split("\n")
    eperm = "Operation not permitted"
    assert out[:-1] == [f"unshare {eperm}", f"unshare_ns {eperm}", f"clone {eperm}",
                        f"mount {eperm}", f"ptrace {eperm}", f"setns {eperm}"]


def test_proc_lists_only_the_executions_own_processes(ns):
    code = ("import os, subprocess\n"
            "child = subprocess.Popen(['sleep', '30'])\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "print(pids == sorted([1, os.getpid(), child.pid]), pids, os.getpid(), child.pid)\n"
            "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0')[:2])\n"
            "child.kill()\n")
    out = ok(ns.run(code)).split("\n")
    # PID 1 is the execution's supervisor (the bootstrap); nothing of the
    # host, the server or another execution.
    assert out[0].startswith("True"), out
    assert "python3" in out[1], out


def test_the_program_cannot_signal_its_supervisor(ns):
    code = ("import os, signal\n"
            "for s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV):\n"
            "    os.kill(1, s)\n"
            "print('still here')\n")
    res = ns.run(code)
    assert ok(res) == "still here\n"


@pytest.mark.parametrize("end", ["timeout", "kill", "memory", "output"])
def test_a_host_is_retired_after_an_abnormal_end(ns, end):
    host = fresh_host(ns)
    if end == "timeout":
        res = ns.run(HOST + "import time\ntime.sleep(3600)\n", config={"timeout_seconds": 1})
        assert res.stdout.decode().startswith(host)
        assert pyexecd.reason_name(res) == "TERMINATION_REASON_TIMEOUT"
    elif end == "kill":
        started = ns.start(HOST + "import time\ntime.sleep(3600)\n")
        stream = ns.stream(started.execution_id)
        pyexecd.read_until(stream, host.encode())
        ns.kill(started.execution_id)
        assert pyexecd.status_name(ns.wait(started.execution_id)) == "EXECUTION_STATUS_KILLED"
    elif end == "memory":
        res = ns.run(HOST + "b = bytearray(512 << 20)\n", config={"memory_mb": 64})
        assert pyexecd.reason_name(res) == "TERMINATION_REASON_MEMORY_LIMIT"
    else:
        res = ns.run(HOST + "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
        assert pyexecd.reason_name(res) == "TERMINATION_REASON_OUTPUT_LIMIT"
    assert host_of(ns.run(HOST)) != host


def test_a_host_runs_host_reuse_executions_then_is_replaced(ns):
    host = fresh_host(ns)  # its first execution
    seen = [host_of(ns.run(HOST)) for _ in range(REUSE)]
    assert seen[:REUSE - 1] == [host] * (REUSE - 1)
    assert seen[REUSE - 1] != host


def test_limits_set_at_hand_over_are_enforced(ns):
    host = fresh_host(ns)  # made with the default memory limit, 1024 MiB
    res = ns.run(HOST + "b = bytearray(256 << 20)\nprint('allocated')\n",
                 config={"memory_mb": 96})
    assert host_of(res) == host  # the same host, its limit cut at hand-over
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_MEMORY_LIMIT", res
    res = ns.run(HOST + "b = bytearray(256 << 20)\nprint('allocated')\n",
                 config={"memory_mb": 512})
    assert ok(res).endswith("allocated\n")


def test_usage_is_the_executions_own_not_its_hosts(ns):
    host = fresh_host(ns)
    heavy = ns.run(HOST + "import time\nb = bytearray(200 << 20)\n"
                   "t = time.process_time()\nwhile time.process_time() - t < 1:\n    pass\n")
    assert host_of(heavy) == host and heavy.exit_code == 0, heavy
    assert heavy.usage.peak_memory_bytes >= 200 << 20, heavy.usage
    assert heavy.usage.cpu_time_ms >= 1000, heavy.usage
    light = ns.run(HOST)
    assert host_of(light) == host  # the same host, after the heavy one
    # The host's cgroup counters run over its life; the light execution's
    # usage does not include the heavy one's.
    assert 0 < light.usage.peak_memory_bytes < 200 << 20, light.usage
    assert light.usage.cpu_time_ms < heavy.usage.cpu_time_ms, light.usage


def test_a_killed_executions_cpu_is_its_own_not_its_hosts(ns):
    host = fresh_host(ns)
    heavy = ns.run(HOST + "import time\nt = time.process_time()\n"
                   "while time.process_time() - t < 1:\n    pass\n")
    assert host_of(heavy) == host and heavy.exit_code == 0, heavy
    assert heavy.usage.cpu_time_ms >= 1000, heavy.usage
    started = ns.start(HOST + "import time\ntime.sleep(3600)\n")
    stream = ns.stream(started.execution_id)
    assert pyexecd.read_until(stream, host.encode()).startswith(host.encode())  # same host
    ns.kill(started.execution_id)
    killed = ns.wait(started.execution_id)
    assert pyexecd.status_name(killed) == "EXECUTION_STATUS_KILLED", killed
    # The host's counter includes the heavy execution's second; the killed
    # one's usage is what it used itself.
    assert killed.usage.cpu_time_ms < heavy.usage.cpu_time_ms, killed.usage


PID_NS = HOST + "import os\nprint(os.readlink('/proc/self/ns/pid'))\n"


def children(pid):
    """The pids of the machine's processes whose parent is `pid`."""
    found = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # not a process, or gone
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(p))
    return found


def waiting_sandbox(host):
    """The pid namespace of the sandbox that the idle host container `host`
    started for its next execution: its PID 1 (host.py) has a child,
    bubblewrap, whose child is the sandbox's bootstrap. Awaits it, and the
    end of the previous execution's bubblewrap: while that one is still
    exiting the host has two children, and either could be read."""
    status, info = pyexecd.docker_api("GET", f"/containers/{host}/json")
    assert status == 200, info
    root = info["State"]["Pid"]

    def sandbox():
        bwraps = children(root)
        if len(bwraps) != 1:
            return None
        for bootstrap in children(bwraps[0]):
            try:
                return os.readlink(f"/proc/{bootstrap}/ns/pid")
            except OSError:
                pass
        return None
    return pyexecd.wait_until(sandbox, 30)


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the host container's processes in /proc")
def test_an_idle_host_has_the_next_executions_sandbox_started(ns):
    host = fresh_host(ns)  # its first execution has ended
    waiting = waiting_sandbox(host)
    assert waiting, "no sandbox waits on the idle host"
    out = ok(ns.run(PID_NS)).split("\n")
    assert out[:2] == [host, waiting]  # the one that waited ran it
    again = waiting_sandbox(host)
    assert again and again != waiting  # a new one for the next: never reused
    out = ok(ns.run(PID_NS)).split("\n")
    assert out[:2] == [host, again]


@pytest.mark.skipif(os.geteuid() != 0, reason="reads the host container's processes in /proc")
def test_a_pooled_host_has_its_first_executions_sandbox_started(pb, no_container_left_behind):
    instance = f"e2e-ns-prime-{uuid.uuid4().hex[:8]}"
    args = ["--default-image", IMAGE, "--instance", instance, "--isolation", "namespace",
            "--warm-pool", "1", "--max-concurrent", "1"]
    with pyexecd.Server(*args) as srv:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        made = pyexecd.wait_until(
            lambda: [c for c in pyexecd.containers(f"pyexec.instance={instance}")
                     if c["State"] == "running"], 60)
        assert len(made) == 1, made
        host = made[0]["Id"][:12]
        waiting = waiting_sandbox(host)  # before the host has run anything
        assert waiting, "no sandbox waits on the new host"
        out = ok(runner.run(PID_NS)).split("\n")
        assert out[:2] == [host, waiting]
        runner.close()
        assert srv.stop(timeout=60) == 0
    assert pyexecd.wait_until(
        lambda: not pyexecd.containers(f"pyexec.instance={instance}"), 15)
