"""Execute: inputs, entrypoint rules, validation, limits, sync/async,
request_id and how executions end (docs/contract.md, "Semantics")."""

import re
import uuid

import grpc
import pytest

import pyexecd
from conftest import IMAGE, runtime_differs

ID_RE = re.compile(r"^exe_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COMPLETED = "EXECUTION_STATUS_COMPLETED"
KILLED = "EXECUTION_STATUS_KILLED"


def status(res):
    return pyexecd.status_name(res)


def reason(res):
    return pyexecd.reason_name(res)


def invalid(ex, req):
    """Runs `req` and returns the INVALID_ARGUMENT error's details."""
    with pytest.raises(grpc.RpcError) as e:
        ex.execute(req, timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    return e.value.details() or ""


# ---- running code --------------------------------------------------------

def test_hello_world_sync(ex):
    res = ex.run("print('hello, world')\n")
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED"
    assert res.exit_code == 0
    assert res.stdout == b"hello, world\n"
    assert res.stderr == b""
    assert ID_RE.match(res.execution_id), res.execution_id
    assert res.started_at.seconds > 0 and res.finished_at.seconds > 0
    assert res.finished_at.ToNanoseconds() >= res.started_at.ToNanoseconds()
    assert res.duration_ms >= 0
    assert not res.output_truncated


def test_result_is_readable_with_get_execution(ex):
    res = ex.run("print('kept')\n")
    again = ex.get(res.execution_id)
    assert status(again) == COMPLETED
    assert again.stdout == b"kept\n"
    assert again.exit_code == 0
    assert again.finished_at == res.finished_at


def test_tar_input_with_packages(ex):
    tar = pyexecd.make_tar({
        "./main.py": "from pkg.util import greet\nprint(greet('tar'))\n",
        "pkg/__init__.py": "",
        "pkg/util.py": "def greet(who):\n    return f'hello from {who}'\n",
    })
    res = ex.run(tar=tar)
    assert status(res) == COMPLETED, res.error
    assert res.stdout == b"hello from tar\n"


def test_files_input_with_packages_and_data(ex):
    res = ex.run(files={
        "main.py": "from pkg.util import greet\nprint(greet(open('data/name.txt').read()))\n",
        "pkg/__init__.py": "",
        "pkg/util.py": "def greet(who):\n    return f'hello from {who}'\n",
        "data/name.txt": "files",
    })
    assert res.stdout == b"hello from files\n"


def test_file_modes_are_kept(ex):
    res = ex.run(files={
        "main.py": "import os\nprint(oct(os.stat('tool.sh').st_mode & 0o777))\n",
        "tool.sh": ("#!/bin/sh\necho hi\n", 0o755),
    })
    assert res.stdout == b"0o755\n"


def test_nonzero_exit_code_is_a_completed_execution(ex):
    res = ex.run("import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)\n")
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_EXITED"
    assert res.exit_code == 3
    assert res.stderr == b"bye\n"


def test_exception_exit_code_and_traceback(ex):
    res = ex.run("raise ValueError('boom')\n")
    assert res.exit_code == 1
    assert b"ValueError: boom" in res.stderr


def test_killed_by_signal_reports_128_plus_n(ex):
    res = ex.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert status(res) == COMPLETED
    assert res.exit_code == 128 + 9


# The program's signals to itself, its abort() and its orphans behave alike
# under every runtime: under gVisor, where the program runs in a PID
# namespace of its own, it is PID 2 there, not PID 1, which a signal with a
# default action does not end and whose orphans it would have to reap
# (docs/sandbox.md, "The bootstrap is the supervisor").
@pytest.mark.parametrize("how, code", [
    ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", 128 + 15),
    ("import os\nos.abort()\n", 128 + 6),
], ids=["sigterm", "abort"])
def test_a_program_that_signals_itself_dies_of_it(ex, how, code):
    res = ex.run(how + "print('survived')\n")
    assert status(res) == COMPLETED, res.stderr
    assert res.exit_code == code, (res.stdout, res.stderr)
    assert b"survived" not in res.stdout


def test_a_program_cannot_end_its_pid_1_with_a_signal(ex):
    # PID 1 is the bootstrap (runc) or the program's namespace init (gVisor):
    # either ignores the signals it can.
    code = ("import os, signal\n"
            "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTSTP):\n"
            "    os.kill(1, s)\n"
            "print('alive')\n")
    res = ex.run(code)
    assert status(res) == COMPLETED, res.stderr
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"alive\n"


ORPHANS = """
import os, time
r, w = os.pipe()
for _ in range(50):
    if os.fork() == 0:  # a child that leaves an orphan, which exits at once
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.wait()
os.close(w)
os.read(r, 1)  # EOF: every orphan has exited (exit closes its pipe end)
me = os.readlink("/proc/self")
def zombies():
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit() or p == me:
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    n += 1
        except OSError:
            pass
    return n
deadline = time.monotonic() + 30  # the reaper acts on SIGCHLD: wait for it
while zombies() and time.monotonic() < deadline:
    time.sleep(0.01)
print("zombies", zombies())
"""


def test_orphans_that_exit_are_reaped(ex):
    res = ex.run(ORPHANS, config={"timeout_seconds": 60})
    assert status(res) == COMPLETED, res.stderr
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"zombies 0\n", res.stderr


# A process that forks a successor and exits, over and over, has a new pid
# while the bootstrap kills every process before its last words: it is
# killed again until none is left, and the run ends with the program.
FORK_LOOP = """
import os
for _ in range(4):
    if os.fork() == 0:
        os.setsid()
        while True:
            try:
                if os.fork():
                    os._exit(0)
            except OSError:
                pass
print("left", flush=True)
"""


def test_a_fork_loop_left_behind_ends_with_the_run(ex):
    res = ex.run(FORK_LOOP, config={"timeout_seconds": 60})
    assert status(res) == COMPLETED, res.stderr
    assert reason(res) == "TERMINATION_REASON_EXITED", res.stderr
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"left\n"


def test_stdin_args_and_env(ex):
    code = ("import os, sys\n"
            "print(repr(sys.stdin.buffer.read()))\n"
            "print(sys.argv[1:])\n"
            "print(os.environ['GREETING'], os.environ['EMPTY'] == '')\n")
    res = ex.run(code, stdin=b"line one\n\x00\xffbinary",
                 script_args=["a b", "--flag", ""],
                 env_vars=["GREETING=hi there", "EMPTY="])
    assert res.stdout.decode().splitlines() == [
        repr(b"line one\n\x00\xffbinary"),
        "['a b', '--flag', '']",
        "hi there True",
    ]


def test_stdin_is_closed_when_not_given(ex):
    res = ex.run("import sys\nprint(repr(sys.stdin.read()))\n", timeout=60)
    assert res.stdout == b"''\n"


def test_output_is_bytes_not_text(ex):
    res = ex.run("import sys\nsys.stdout.buffer.write(bytes(range(256)))\n")
    assert res.stdout == bytes(range(256))


def test_working_directory_is_work(ex):
    res = ex.run("import os\nprint(os.getcwd())\n")
    assert res.stdout == b"/work\n"


def test_pre_commands_run_first(ex):
    res = ex.run("print(open('made.txt').read().strip())\n",
                 pre_commands=["echo from-pre > made.txt"])
    assert status(res) == COMPLETED, res.error
    assert res.stdout.endswith(b"from-pre\n")


def test_image_is_selectable(ex):
    res = ex.run("print('ok')\n", docker_image=IMAGE)
    assert res.stdout == b"ok\n"


# An image the server is not configured with is refused before the engine
# is asked anything (tests/e2e/test_images.py has the rest). The name points
# at a registry on loopback port 1 all the same: nothing leaves the machine.
OTHER_IMAGE = "127.0.0.1:1/pyexec/no-such-image:never"


def test_an_image_the_server_does_not_run_is_refused(ex):
    with pytest.raises(grpc.RpcError) as e:
        ex.run("print('ok')\n", docker_image=OTHER_IMAGE)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "no-such-image" in e.value.details()
    assert IMAGE in e.value.details(), "the message names the allowed images"


# ---- entrypoint rules ----------------------------------------------------

def test_entrypoint_prefers_main_py(ex):
    res = ex.run(files={"a.py": "print('a')", "main.py": "print('main')",
                        "__main__.py": "print('dunder')"})
    assert res.stdout == b"main\n"


def test_entrypoint_then_dunder_main(ex):
    res = ex.run(files={"a.py": "print('a')", "__main__.py": "print('dunder')"})
    assert res.stdout == b"dunder\n"


def test_entrypoint_then_first_py_in_archive_order(ex):
    tar = pyexecd.make_tar({"README": "x", "zeta.py": "print('zeta')",
                            "alpha.py": "print('alpha')"})
    res = ex.run(tar=tar)
    assert res.stdout == b"zeta\n"


def test_named_entrypoint_in_subdirectory(ex):
    res = ex.run(files={"main.py": "print('main')", "tools/run.py": "print('tools')"},
                 entrypoint="tools/run.py")
    assert res.stdout == b"tools\n"


def test_named_entrypoint_missing_is_invalid(ex):
    invalid(ex, ex.request(files={"main.py": "print(1)"}, entrypoint="other.py"))


def test_no_python_file_is_invalid(ex):
    invalid(ex, ex.request(files={"README.md": "# nothing to run"}))


# ---- input validation ------------------------------------------------------

def test_no_code_is_invalid(ex):
    invalid(ex, ex.request())


def test_both_tar_and_files_is_invalid(ex):
    invalid(ex, ex.request(files={"main.py": "print(1)"},
                           tar=pyexecd.make_tar({"main.py": "print(1)"})))


@pytest.mark.parametrize("path", [
    "../escape.py", "/abs.py", "a/../../b.py", "a/../../../etc/passwd", "..", "",
])
def test_bad_file_paths_are_invalid(ex, path):
    invalid(ex, ex.request(files={"main.py": "print(1)", path: "x"}))


def test_tar_with_parent_path_is_invalid(ex):
    invalid(ex, ex.request(tar=pyexecd.make_tar({"main.py": "print(1)",
                                                 "../evil.py": "x"})))


def test_tar_with_absolute_path_is_invalid(ex):
    invalid(ex, ex.request(tar=pyexecd.make_tar({"main.py": "print(1)",
                                                 "/etc/evil.py": "x"})))


def _tar_with(member_setup):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"print(1)\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        member_setup(tf)
    return buf.getvalue()


@pytest.mark.parametrize("kind,target", [
    ("sym", "/etc/passwd"),
    ("sym", "../../etc/passwd"),
    ("hard", "/etc/passwd"),
    ("fifo", None),
    ("chr", None),
])
def test_tar_with_bad_links_or_devices_is_invalid(ex, kind, target):
    import tarfile

    def add(tf):
        info = tarfile.TarInfo("bad")
        if kind == "sym":
            info.type, info.linkname = tarfile.SYMTYPE, target
        elif kind == "hard":
            info.type, info.linkname = tarfile.LNKTYPE, target
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        else:
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tf.addfile(info)

    invalid(ex, ex.request(tar=_tar_with(add)))


def test_tar_with_relative_symlink_inside_work_runs(ex):
    import io
    import tarfile

    def add(tf):
        data = b"through the link"
        info = tarfile.TarInfo("data/real.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("data/alias.txt")
        info.type, info.linkname = tarfile.SYMTYPE, "real.txt"
        tf.addfile(info)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        code = b"print(open('data/alias.txt').read())\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(code)
        tf.addfile(info, io.BytesIO(code))
        add(tf)
    res = ex.run(tar=buf.getvalue())
    assert status(res) == COMPLETED, res.error
    assert res.stdout == b"through the link\n"


def test_garbage_tar_is_invalid(ex):
    invalid(ex, ex.request(tar=b"this is not a tar archive" * 40))


@pytest.mark.parametrize("field,value", [
    ("timeout_seconds", 10 ** 6),
    ("memory_mb", 10 ** 7),
    ("disk_mb", 10 ** 7),
    ("cpu_shares", 10 ** 7),
])
def test_limits_above_maximum_are_invalid_and_named(ex, field, value):
    details = invalid(ex, ex.request("print(1)", config={field: value}))
    assert field in details


@pytest.mark.parametrize("field", ["timeout_seconds", "memory_mb", "disk_mb", "cpu_shares"])
def test_negative_limits_are_invalid(ex, field):
    details = invalid(ex, ex.request("print(1)", config={field: -1}))
    assert field in details


def test_malformed_env_var_is_invalid(ex):
    invalid(ex, ex.request("print(1)", env_vars=["NO_EQUALS_SIGN"]))


# ---- sync, async, request_id ---------------------------------------------

def test_async_returns_at_once_and_get_execution_follows(ex):
    first = ex.start("import sys\nprint(sys.stdin.read().upper())\n", stdin=b"async")
    assert ID_RE.match(first.execution_id)
    assert status(first) in ("EXECUTION_STATUS_PENDING", "EXECUTION_STATUS_RUNNING")
    res = ex.wait(first.execution_id)
    assert status(res) == COMPLETED
    assert res.stdout == b"ASYNC\n"


def test_request_id_returns_the_same_execution(ex):
    rid = f"e2e-{uuid.uuid4()}"
    code = "import uuid\nprint(uuid.uuid4())\n"
    first = ex.run(code, request_id=rid)
    second = ex.run(code, request_id=rid)
    assert second.execution_id == first.execution_id
    assert second.stdout == first.stdout
    third = ex.run(code, request_id=f"e2e-{uuid.uuid4()}")
    assert third.execution_id != first.execution_id
    assert third.stdout != first.stdout
    # Other content under the same key gets nothing of the first execution.
    with pytest.raises(grpc.RpcError) as e:
        ex.run("print('different code')\n", request_id=rid)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.execution_id not in e.value.details()


def test_request_id_of_a_running_execution_waits_for_it(ex):
    rid = f"e2e-{uuid.uuid4()}"
    code = "import sys\nprint(sys.stdin.read())\n"
    first = ex.start(code, stdin=b"once", request_id=rid)
    second = ex.run(code, stdin=b"once", request_id=rid)
    assert second.execution_id == first.execution_id
    assert status(second) == COMPLETED
    assert second.stdout == b"once\n"


def test_sync_call_deadline_kills_the_execution(ex, pb, our_containers):
    rid = f"e2e-{uuid.uuid4()}"
    code = "import time\nprint('started', flush=True)\ntime.sleep(3600)\n"
    req = ex.request(code, request_id=rid)
    with pytest.raises(grpc.RpcError) as e:
        ex.execute(req, timeout=3)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The same request finds the execution the cancelled call started.
    found = ex.start(code, request_id=rid)
    res = ex.wait(found.execution_id, timeout=60)
    assert status(res) == KILLED
    assert reason(res) == "TERMINATION_REASON_CLIENT_CANCELLED"
    uuid_part = res.execution_id[len("exe_"):]
    assert pyexecd.wait_until(lambda: not pyexecd.containers_mentioning(uuid_part), 15)


# ---- how executions end ---------------------------------------------------

def test_timeout(ex):
    res = ex.run("import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n",
                 config={"timeout_seconds": 2})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_TIMEOUT"
    assert res.stdout == b"sleeping\n"
    assert res.duration_ms >= 2000


def test_memory_limit(ex):
    code = ("blocks = []\n"
            "while True:\n"
            "    blocks.append(b'x' * (8 << 20))\n")
    res = ex.run(code, config={"memory_mb": 128})
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_MEMORY_LIMIT", (res.exit_code, res.stderr[-500:])
    assert res.exit_code == 137
    assert res.usage.peak_memory_bytes > 64 << 20


def test_output_limit(ex, server):
    code = ("import sys\n"
            "chunk = 'x' * 65535 + '\\n'\n"
            "while True:\n"
            "    sys.stdout.write(chunk)\n")
    res = ex.run(code)
    assert status(res) == COMPLETED
    assert reason(res) == "TERMINATION_REASON_OUTPUT_LIMIT"
    assert res.output_truncated
    kept = len(res.stdout) + len(res.stderr)
    assert 0 < kept <= server.output_limit
    assert set(res.stdout) <= set(b"x\n")


@runtime_differs("runsc", "the sandbox shows the program no cgroup files, so no usage is reported")
def test_usage_is_reported(ex):
    res = ex.run("x = sum(i * i for i in range(2_000_000))\nprint(x > 0)\n")
    assert res.stdout == b"True\n"
    assert res.usage.peak_memory_bytes > 0
    assert res.usage.cpu_time_ms >= 0
