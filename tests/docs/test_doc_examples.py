"""Every code example in the documentation runs, against a live server.

The fenced code blocks of README.md, docs/*.md and client/python/README.md
are extracted and, by language:

  sh        run by bash (-euo pipefail) in a fresh directory holding the
            files the examples name (FIXTURE below), with the CLI under test
            on PATH as `pyexec` (and as `scripts/pyexec`), PYEXEC_SERVER set
            to the test server, and `127.0.0.1:50051` in the text replaced by
            its address (`127.0.0.1:8080` by its HTTP door's); the block
            must exit 0.
  console   the same for each `$ ` line; the lines after it are its expected
            output. Output that is JSON is compared key by key, values that
            change from run to run (ids, times, usage) excepted.
  python    the blocks of one file run in order in one interpreter (later
            blocks use what earlier ones defined), /usr/bin/python3 with
            PYTHONPATH=client/python, in the same directory.
  text, json, mermaid
            not code (diagrams, output, file formats): not run.

Any other language, or none, fails test_every_block_says_what_it_is: a new
block must say whether it is code. A block that must not run (it starts a
server in the foreground, runs the test suites themselves, needs a tool
Debian does not ship) is preceded by `<!-- not-run: reason -->` on the line
before its fence; test_not_run_blocks_give_a_reason lists them.

Environment: as tests/e2e (PYEXECD_BIN, PYEXEC_CLI_BIN, PYEXEC_TEST_IMAGE).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402

IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"
DOC_ADDRESS = "127.0.0.1:50051"
DOC_HTTP_ADDRESS = "127.0.0.1:8080"  # the HTTP door, as scripts/run serves it
PYTHON = "/usr/bin/python3"  # the interpreter that has python3-grpcio

RUN = {"sh", "console", "python"}
NOT_CODE = {"text", "json", "mermaid"}
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")
# JSON keys whose values differ from run to run.
VOLATILE = {"execution_id", "started_at", "finished_at", "duration_ms", "peak_memory_bytes",
            "cpu_time_ms"}

# The files the examples name, created in each block's directory.
LONG_TASK = "for i in range(200):\n    print('line', i, 'of the long task')\n"
FIXTURE = {
    "script.py": "import sys\nprint('script', sys.argv[1:])\n",
    "main.py": "import os, sys\nprint('main', os.environ.get('MODE'), sys.stdin.read()[:20])\n",
    "ask.py": "print('hello', input())\n",
    "names.txt": "ann\n",
    "data.csv": "a,b\n1,2\n",
    "requirements.txt": "# nothing to install: the examples run offline\n",
    "app.py": "import sys\nsys.path.insert(0, 'lib')\nimport util\nprint(util.NAME)\n",
    "lib/util.py": "NAME = 'util'\n",
    "long_task.py": LONG_TASK,
    "myproject/main.py": "import sys\nprint('myproject', sys.argv[1:])\n",
    "myproject/helper.py": "",
}


def doc_files():
    files = [REPO / "README.md", REPO / "client" / "python" / "README.md"]
    files += sorted((REPO / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


class Block:
    def __init__(self, path, line, lang, text, not_run):
        self.path = path
        self.rel = str(path.relative_to(REPO))
        self.line = line  # of the opening fence, 1-based
        self.lang = lang
        self.text = text
        self.not_run = not_run  # the reason, or None

    def __repr__(self):
        return f"{self.rel}:{self.line}"


def blocks_of(path):
    out = []
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        nr = NOT_RUN.match(lines[prev].strip()) if prev >= 0 else None
        out.append(Block(path, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                         nr.group(1) if nr else None))
        i = j + 1
    return out


ALL = [b for f in doc_files() for b in blocks_of(f)]
SHELL = [b for b in ALL if b.lang in ("sh", "console") and b.not_run is None]
PYTHON_FILES = sorted({b.rel for b in ALL if b.lang == "python" and b.not_run is None})


# ---------------------------------------------------------------------------
# the blocks themselves

def test_every_block_says_what_it_is():
    bad = [f"{b!r} ({b.lang or 'no language'})" for b in ALL if b.lang not in RUN | NOT_CODE]
    assert not bad, ("fenced blocks must be one of " + ", ".join(sorted(RUN | NOT_CODE)) +
                     ": " + ", ".join(bad))


def test_not_run_blocks_give_a_reason():
    for b in ALL:
        if b.not_run is not None:
            assert b.not_run, f"{b!r}: not-run needs a reason"
            assert b.lang in RUN, f"{b!r}: not-run on a block that is not code"


def test_the_docs_have_examples_to_run():
    """The extraction found the examples (a broken parser would run none)."""
    assert {"README.md", "docs/cli.md"} <= {b.rel for b in SHELL}
    assert {"README.md", "docs/api.md", "client/python/README.md"} <= set(PYTHON_FILES)


# ---------------------------------------------------------------------------
# running them

@pytest.fixture(scope="module")
def server():
    with pyexecd.Server("--default-image", IMAGE, "--http-listen", "127.0.0.1:0", "--instance",
                        f"docs-{os.getpid()}-{uuid.uuid4().hex[:6]}") as srv:
        yield srv


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    """A directory with `pyexec` (the CLI under test) for PATH."""
    cli = pyexecd.cli_binary()
    if not os.access(cli, os.X_OK):
        pytest.fail(f"CLI {cli} missing: run `bazel build //client:pyexec` or set PYEXEC_CLI_BIN")
    d = tmp_path_factory.mktemp("bin")
    (d / "pyexec").symlink_to(cli)
    return d


@pytest.fixture
def workdir(tmp_path, cli_dir):
    for rel, content in FIXTURE.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    for name, mode in (("code.tar", "w"), ("code.tar.gz", "w:gz")):
        with tarfile.open(tmp_path / name, mode) as tf:
            tf.add(tmp_path / "script.py", arcname="main.py")
    # The README runs the CLI as scripts/pyexec from a checkout: here it is
    # the CLI under test.
    (tmp_path / "scripts").mkdir()
    shim = tmp_path / "scripts" / "pyexec"
    shim.write_text(f'#!/bin/sh\nexec "{cli_dir / "pyexec"}" "$@"\n')
    shim.chmod(0o755)
    return tmp_path


def environment(server, cli_dir):
    env = dict(os.environ, PYEXEC_SERVER=server.address, API_KEY="not-a-secret",
               PYTHONPATH=str(REPO / "client" / "python"))
    env["PATH"] = f"{cli_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def localize(text, server):
    text = text.replace(DOC_ADDRESS, server.address)
    return text.replace(DOC_HTTP_ADDRESS, server.http_address())


def run_shell(script, cwd, env):
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=300)


def console_steps(text):
    """[(command, expected output)] of a console block."""
    steps = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append([line[2:], []])
        elif steps:
            steps[-1][1].append(line)
    return [(cmd, "\n".join(out)) for cmd, out in steps]


def same_shape(expected, actual, where="$"):
    """Asserts that `actual` has `expected`'s keys and, outside VOLATILE,
    its values."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert sorted(actual) == sorted(expected), f"{where}: keys {sorted(actual)}"
        for k, v in expected.items():
            if k not in VOLATILE:
                same_shape(v, actual[k], f"{where}.{k}")
    else:
        assert actual == expected, f"{where}: {actual!r}, the docs say {expected!r}"


@pytest.mark.parametrize("block", SHELL, ids=repr)
def test_shell_block(block, server, cli_dir, workdir):
    env = environment(server, cli_dir)
    text = localize(block.text, server)
    if block.lang == "sh":
        r = run_shell(text, workdir, env)
        assert r.returncode == 0, (f"{block!r} exited {r.returncode}\n--- stdout\n"
                                   f"{r.stdout.decode()}\n--- stderr\n{r.stderr.decode()}")
        return
    for cmd, expected in console_steps(text):
        r = run_shell(cmd, workdir, env)
        assert r.returncode == 0, f"{block!r}: `{cmd}` exited {r.returncode}: {r.stderr.decode()}"
        out = r.stdout.decode()
        try:
            want = json.loads(expected)
        except ValueError:
            assert out.rstrip("\n") == expected.rstrip("\n"), f"{block!r}: `{cmd}`"
        else:
            same_shape(want, json.loads(out), f"{block!r} `{cmd}`")


RUNNER = r"""
import json, sys, traceback
ns = {"__name__": "__main__"}
for b in json.load(open(sys.argv[1])):
    # Leading newlines make tracebacks show the line in the document.
    code = compile("\n" * b["line"] + b["code"], b["file"], "exec")
    try:
        exec(code, ns)
    except BaseException:
        traceback.print_exc()
        print(f"the block at {b['file']}:{b['line']} failed", file=sys.stderr)
        sys.exit(1)
"""


@pytest.mark.parametrize("rel", PYTHON_FILES)
def test_python_blocks(rel, server, cli_dir, workdir):
    blocks = [{"file": b.rel, "line": b.line, "code": localize(b.text, server)}
              for b in ALL if b.rel == rel and b.lang == "python" and b.not_run is None]
    spec = workdir / "blocks.json"
    spec.write_text(json.dumps(blocks))
    runner = workdir / "run_blocks.py"
    runner.write_text(RUNNER)
    r = subprocess.run([PYTHON, str(runner), str(spec)], cwd=workdir,
                       env=environment(server, cli_dir), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=300)
    assert r.returncode == 0, (f"{rel}: python blocks failed\n--- stdout\n{r.stdout.decode()}\n"
                               f"--- stderr\n{r.stderr.decode()}")
