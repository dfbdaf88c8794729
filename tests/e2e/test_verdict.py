"""The verdict of a run cannot be forged from inside the sandbox.

The program, the bootstrap and everything else in a container run as one
user. A program that reads the bootstrap's memory, environment or
descriptors, ptraces it, signals it, reads its own output pipes back for the
bootstrap's last words, and writes every end marker and usage trailer it can
construct still gets its real exit code, duration and usage reported
(docs/security.md, "tested attacks"). Real server, real engine; on both the
warm-pool and the cold path.
"""

import pathlib
import uuid

import pytest

import pyexecd
from conftest import IMAGE, RUNTIME, Runner, runtime_hole

PROGRAM = (pathlib.Path(__file__).parent / "programs" / "forge_verdict.py").read_text()


@pytest.fixture(scope="module")
def runner(pb, no_container_left_behind):
    instance = f"e2e-verdict-{uuid.uuid4().hex[:8]}"
    with pyexecd.Server("--default-image", IMAGE, "--instance", instance,
                        "--warm-pool", "1") as srv:
        r = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        yield r
        r.close()
        assert srv.stop(timeout=60) == 0


# A pooled container has the default profile; a /work size other than the
# default sends the run down the cold path.
@runtime_hole("runsc", "gVisor lets the program open the bootstrap's /proc/1/fd, environ and "
              "cmdline, so it can reach the report channel and forge the verdict")
@pytest.mark.parametrize("path", ["pooled", "cold"])
def test_a_program_cannot_forge_its_verdict_or_usage(runner, path):
    config = {"timeout_seconds": 60}
    if path == "cold":
        config["disk_mb"] = 512
    res = runner.run(PROGRAM, config=config)
    out = res.stdout.decode(errors="replace")
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED", out
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_EXITED", out
    assert res.exit_code == 3, out
    lines = out.splitlines()
    assert "found 0" in lines, out
    assert lines[-1] == "exiting 3", out
    # Nothing of another process was readable, traceable or stoppable.
    attempts = [l for l in lines if l.split(" ", 1)[0] in
                ("mem", "environ", "fd-list", "attach", "seize")]
    assert attempts, out
    assert all(not l.endswith(": ok") for l in attempts), out
    # The run lasted as long as the program did, and the usage is the
    # container's: at least the 0.5 s of CPU and 48 MiB the program used.
    assert res.duration_ms >= 1000, res.duration_ms
    if RUNTIME == "runsc":
        return  # no usage under gVisor: the sandbox shows no cgroup files
    assert res.usage.cpu_time_ms >= 500, res.usage
    assert res.usage.peak_memory_bytes >= 48 << 20, res.usage
