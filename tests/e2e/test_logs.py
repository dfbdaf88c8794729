"""The server's log against the real Docker back-end: --log-level debug shows
each step of a container's life with its timing."""

import re

import pyexecd
from conftest import server_args

STEP = r"DEBUG docker: execution {id}: {what}: \d+ ms \(at \d+ ms\)$"


def test_debug_log_shows_each_container_step_with_its_timing(flags, instance, pb):
    args = server_args(flags, instance) + ["--warm-pool", "0", "--log-level", "debug"]
    with pyexecd.Server(*args) as srv:
        stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
        res = stub.Execute(pb.ExecuteRequest(files=pyexecd.make_files({"main.py": "print(1)"})),
                           timeout=60)
        assert res.stdout == b"1\n"
        # The removal follows the reply; the server's stop waits for it.
        assert srv.stop() == 0
        lines = [line for line in srv.stderr_lines() if f"execution {res.execution_id}:" in line]
    steps = ["check image '[^']+'", "create container '[0-9a-f]{12}'",
             "attach to container '[0-9a-f]{12}'", "start container '[0-9a-f]{12}'",
             # Normally the bootstrap's last words end the run, and the
             # container then exits by itself before its removal.
             "run container '[0-9a-f]{12}' until (the bootstrap reported the end|its streams "
             "closed)", "remove container '[0-9a-f]{12}'"]
    at = 0
    for what in steps:
        pattern = re.compile(STEP.format(id=re.escape(res.execution_id), what=what))
        found = [i for i, line in enumerate(lines) if i >= at and pattern.search(line)]
        assert found, f"no step {what!r} after line {at} in:\n" + "\n".join(lines)
        at = found[0] + 1
