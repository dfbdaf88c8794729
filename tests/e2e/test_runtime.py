"""The sandbox runtime (--runtime) and the early end of a run.

--runtime names an OCI runtime registered with the engine (scripts/setup
registers crun when it starts dockerd). A name the engine does not know
stops the server at start-up with a message naming the ones it has. crun
itself is tested only where the engine has it and it can start a container
on this host (on a cgroup v1 host whose cgroup v2 hierarchy holds
controllers it cannot; docs/operations.md).
"""

import uuid

import pytest

from conftest import IMAGE, Runner, server_args
import pyexecd

COMPLETED = "EXECUTION_STATUS_COMPLETED"


def engine_runtimes():
    status, info = pyexecd.docker_api("GET", "/info")
    assert status == 200, info
    return set(info.get("Runtimes") or {})


def crun_problem():
    """None if crun can run a container here, else why not (a limit of this
    host: skipped). An engine without crun is a missing install."""
    if "crun" not in engine_runtimes():
        pyexecd.missing("the engine has no runtime 'crun' (scripts/setup registers it when "
                        "it starts dockerd)")
    name = f"pyexec-runtime-probe-{uuid.uuid4().hex[:8]}"
    status, created = pyexecd.docker_api(
        "POST", f"/containers/create?name={name}",
        body={"Image": IMAGE, "Cmd": ["true"], "NetworkDisabled": True,
              "HostConfig": {"Runtime": "crun", "NetworkMode": "none"}})
    assert status == 201, created
    try:
        status, answer = pyexecd.docker_api("POST", f"/containers/{created['Id']}/start")
        if status != 204:
            return f"crun cannot start a container on this host: {answer}"
        return None
    finally:
        pyexecd.docker_api("DELETE", f"/containers/{created['Id']}?force=1")


def test_unknown_runtime_stops_the_server_with_the_known_ones(flags, instance):
    srv = pyexecd.Server(*server_args(flags, instance), "--runtime", "no-such-runtime",
                         "--warm-pool", "0", wait_ready=False).start()
    try:
        code = srv.wait(30)
        err = srv.stderr_text()
        assert code not in (0, None), err
        assert "no runtime 'no-such-runtime'" in err
        assert "runc" in err, "the message lists the runtimes the engine has"
    finally:
        srv.close()


def test_crun_runs_pooled_and_cold_executions(flags, instance, pb):
    problem = crun_problem()
    if problem:
        pytest.skip(problem)
    with pyexecd.Server(*server_args(flags, instance), "--runtime", "crun",
                        "--warm-pool", "1") as srv:
        ex = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        try:
            # The pool's container is made with the runtime too.
            assert pyexecd.wait_until(lambda: any(
                c.get("State") == "running" and
                (c.get("Labels") or {}).get("pyexec.instance") == instance
                for c in pyexecd.containers("pyexec.pool=1")), 30)
            pooled = [c for c in pyexecd.containers("pyexec.pool=1")
                      if (c.get("Labels") or {}).get("pyexec.instance") == instance]
            status, info = pyexecd.docker_api("GET", f"/containers/{pooled[0]['Id']}/json")
            assert status == 200, info
            assert info["HostConfig"]["Runtime"] == "crun"

            res = ex.run("print('hello from crun')\n")
            assert pyexecd.status_name(res) == COMPLETED, res.error
            assert res.stdout == b"hello from crun\n"
            # A memory limit off the pool's profile takes the cold path.
            res = ex.run("import sys\nprint('cold'); sys.exit(4)\n",
                         config={"memory_mb": 300})
            assert pyexecd.status_name(res) == COMPLETED, res.error
            assert (res.stdout, res.exit_code) == (b"cold\n", 4)
        finally:
            ex.close()


def test_output_written_right_before_exit_is_complete(ex):
    """The result is reported when the bootstrap's end marker and trailer
    arrive, before the container is gone: every byte the program wrote on
    either stream must be in it."""
    code = ("import os, sys\n"
            "sys.stdout.write('o' * 300000)\n"
            "sys.stderr.write('e' * 200000)\n"
            "sys.stdout.flush(); sys.stderr.flush()\n"
            "os.write(1, b'last-out')\n"
            "os.write(2, b'last-err')\n"
            "os._exit(5)\n")
    for _ in range(5):
        res = ex.run(code)
        assert pyexecd.status_name(res) == COMPLETED, res.error
        assert res.exit_code == 5
        assert res.stdout == b"o" * 300000 + b"last-out"
        assert res.stderr == b"e" * 200000 + b"last-err"


def test_program_that_makes_its_output_non_blocking_still_ends_normally(ex):
    """stdout and stderr are open files the program shares with the
    bootstrap, so O_NONBLOCK set on them is the bootstrap's too; it restores
    blocking mode before its last words. The program writes as fast as the
    pipes take it and exits at once; the run must still end normally with
    all of its output and the trailer's usage. (Whether the bootstrap's
    writes would have met EAGAIN depends on how fast the server drains the
    pipes; here it drains them too fast to force that case.)"""
    code = ("import os, select, sys\n"
            "for fd in (1, 2):\n"
            "    os.set_blocking(fd, False)\n"
            "chunk = b'x' * 65536\n"
            "for fd in (1, 2):\n"
            "    left = 1 << 18\n"
            "    while left > 0:\n"
            "        select.select([], [fd], [])\n"
            "        try:\n"
            "            left -= os.write(fd, chunk[:left])\n"
            "        except BlockingIOError:\n"
            "            pass\n"
            "os._exit(6)\n")
    for _ in range(3):
        res = ex.run(code)
        assert pyexecd.status_name(res) == COMPLETED, res.error
        assert res.exit_code == 6, res.stderr[-500:]
        assert (len(res.stdout), len(res.stderr)) == (1 << 18, 1 << 18), res.stderr[-500:]
        assert res.usage.peak_memory_bytes > 0, "the trailer arrived"
