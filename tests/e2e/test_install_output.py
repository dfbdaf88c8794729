"""Install output is not program output: what pip prints while installing
`requirements_txt` never lands in the program's stdout (nor, through it, in
the CLI's `-q` output or `--json`'s "stdout").

The project ships a tiny wheel and the requirements name it, so pip installs
it offline (`--no-index --find-links /work`), as it would print progress for
any install.
"""

import io
import json
import os
import subprocess
import zipfile

import pytest

import pyexecd

PROGRAM = "import demo\nprint('ok', demo.X)\n"


def wheel():
    """demo-1.0-py3-none-any.whl: one module, demo.X = 42."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("demo.py", "X = 42\n")
        z.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        z.writestr("demo-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("demo-1.0.dist-info/RECORD",
                   "demo.py,,\ndemo-1.0.dist-info/METADATA,,\ndemo-1.0.dist-info/WHEEL,,\n"
                   "demo-1.0.dist-info/RECORD,,\n")
    return buf.getvalue()


def test_pip_output_is_not_program_stdout(ex):
    res = ex.run(files={"main.py": PROGRAM, "demo-1.0-py3-none-any.whl": wheel()},
                 requirements_txt="demo\n")
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED", res.stderr
    assert res.exit_code == 0, res.stderr
    assert res.stdout == b"ok 42\n"


def test_pip_failure_is_shown_on_stderr(ex):
    res = ex.run(files={"main.py": PROGRAM}, requirements_txt="no-such-package-here\n")
    assert res.exit_code != 0
    assert res.stdout == b""
    assert b"no-such-package-here" in res.stderr
    assert b"pip install failed" in res.stderr


@pytest.fixture
def cli(server, tmp_path):
    path = pyexecd.cli_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"CLI {path} missing: run `bazel build //client:pyexec` or set PYEXEC_CLI_BIN")
    (tmp_path / "main.py").write_text(PROGRAM)
    (tmp_path / "demo-1.0-py3-none-any.whl").write_bytes(wheel())
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
