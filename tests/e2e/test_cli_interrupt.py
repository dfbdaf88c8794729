"""Ctrl-C during `pyexec run` kills the execution it started.

The real CLI (bazel-bin/client/pyexec, or PYEXEC_CLI_BIN) against the
session's server: SIGINT once the program has printed, then the CLI must
print the end, exit 137, and the execution must be KILLED with its container
gone.
"""

import os
import signal
import subprocess

import pytest

import pyexecd

BLOCKING = ("import time\n"
            "print('ready', flush=True)\n"
            "time.sleep(3600)\n")


@pytest.fixture
def cli(tmp_path, server):
    path = pyexecd.cli_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"CLI {path} missing: run `bazel build //client:pyexec` or set PYEXEC_CLI_BIN")
    prog = tmp_path / "block.py"
    prog.write_text(BLOCKING)
    env = dict(os.environ, PYEXEC_SERVER=server.address)
    return path, str(prog), env


def start_run(cli):
    path, prog, env = cli
    p = subprocess.Popen([path, "run", "-v", prog], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    submitted = p.stderr.readline().decode()
    assert submitted.startswith("Submitted: exe_"), submitted
    assert p.stdout.readline() == b"ready\n"
    return p, submitted.split()[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_kills_the_execution_and_shows_its_end(cli, ex, sig):
    p, eid = start_run(cli)
    ex.ids.append(eid)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 137, err
    assert out == b""
    assert f"killing {eid}".encode() in err
    assert f"execution {eid} was killed".encode() in err
    res = ex.get(eid)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_KILLED"
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_KILLED"
    assert not pyexecd.containers_mentioning(eid[len("exe_"):])


def test_follow_does_not_kill_on_ctrl_c(cli, ex):
    path, prog, env = cli
    eid = ex.start(BLOCKING).execution_id
    p = subprocess.Popen([path, "follow", eid], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT
    assert pyexecd.status_name(ex.get(eid)) == "EXECUTION_STATUS_RUNNING"
