"""Install output is not program output: what pip prints while installing
`requirements_txt` never lands in the program's stdout (nor, through it, in
the CLI's `-q` output or `--json`'s "stdout").

The server installs from a wheelhouse holding a tiny wheel, in a build
outside the sandbox whose output goes to the execution's stderr
(docs/sandbox.md, "Dependencies").
"""

import json
import os
import subprocess
import uuid

import pytest

from conftest import Runner, server_args
import pyexecd
import wheels

PROGRAM = "import demo\nprint('ok', demo.X)\n"


@pytest.fixture(scope="module")
def server(flags, instance, pb, tmp_path_factory):
    """A server of its own (own instance, so own cache volume) with a
    wheelhouse holding demo-1.0: demo.X = 42."""
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    wheels.make_wheel(wheelhouse, "demo", modules={"demo.py": "X = 42\n"})
    inst = f"{instance}-install-{uuid.uuid4().hex[:6]}"
    with pyexecd.Server(*server_args(flags, inst), "--wheelhouse", str(wheelhouse)) as srv:
        yield srv
    status, body = pyexecd.docker_api("DELETE", f"/volumes/pyexec-deps-{inst}")
    assert status in (204, 404), body


@pytest.fixture
def ex(server, pb):
    runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(server.channel()), pb)
    yield runner
    runner.close()


def test_pip_output_is_not_program_stdout(ex):
    res = ex.run(files={"main.py": PROGRAM}, requirements_txt="demo\n")
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED", res.stderr
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"ok 42\n"


def test_pip_failure_is_shown_on_stderr(ex):
    res = ex.run(files={"main.py": PROGRAM}, requirements_txt="no-such-package-here\n")
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_FAILED"
    assert "no-such-package-here" in res.error
    assert res.stdout == b""
    assert b"no-such-package-here" in res.stderr
    assert b"pyexec: install: failed: pip exited 1" in res.stderr


@pytest.fixture
def cli(server, tmp_path):
    path = pyexecd.cli_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"CLI {path} missing: run `bazel build //client:pyexec` or set PYEXEC_CLI_BIN")
    (tmp_path / "main.py").write_text(PROGRAM)
    (tmp_path / "requirements.txt").write_text("demo\n")

    def run(*args):
        return subprocess.run([path, "run", "--requirements", str(tmp_path / "requirements.txt"),
                               *args, str(tmp_path)], capture_output=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PYEXEC_SERVER=server.address), timeout=120)
    return run


def test_cli_quiet_and_json_show_only_the_program_output(cli):
    q = cli("-q")
    assert q.returncode == 0, q.stderr
    assert q.stdout == b"ok 42\n"
    j = cli("--json")
    assert j.returncode == 0, j.stderr
    assert json.loads(j.stdout)["stdout"] == "ok 42\n"
