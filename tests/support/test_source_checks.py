"""scripts/check_layering and scripts/check_banned: each passes on a clean
tree and fails, naming file, line and rule, on a planted violation. They run
against a scratch git repository (PYEXEC_CHECK_ROOT), never this one."""

import os
import pathlib
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LAYERING = REPO / "scripts" / "check_layering"
BANNED = REPO / "scripts" / "check_banned"

# A tiny tree with the real module layout and legal includes only.
CLEAN = {
    "server/base/error.h": "#include <stddef.h>\n",
    "server/base/cleanup.h": "#include <stdlib.h>\n",
    "server/base/log.c": '#include "server/base/error.h"\n#include <pthread.h>\n',
    "server/model/job.h": '#include "server/base/error.h"\n',
    "server/store/store.c": '#include "server/model/job.h"\n#include "server/base/error.h"\n',
    "server/tar/tar.c": "#include <archive.h>\n",
    "server/executor/sandbox.h": '#include "server/model/job.h"\n',
    "server/executor/executor.h": '#include "server/executor/sandbox.h"\n',
    "server/executor/docker/run.c": (
        "#include <curl/curl.h>\n#include <jansson.h>\n"
        '#include "server/executor/sandbox.h"\n'),
    "server/rpc/server.c": (
        "#include <grpc/grpc.h>\n"
        '#include "pyexec/v1/executor.pb-c.h"\n'
        '#include "server/executor/executor.h"\n#include "server/store/store.h"\n'),
    "server/store/store.h": '#include "server/model/job.h"\n',
    "server/daemon.c": '#include "server/rpc/rpc.h"\n',
    "server/rpc/rpc.h": '#include "server/executor/executor.h"\n',
    "server/main.c": '#include "server/executor/docker/docker.h"\n',
    "server/executor/docker/docker.h": '#include "server/executor/sandbox.h"\n',
    "client/pyexec.h": '#include "client/pyexec_error.h"\n',
    "client/pyexec_error.h": "\n",
    "client/pyexec.c": '#include <grpc/grpc.h>\n#include "server/base/cleanup.h"\n',
    "client/cli/main.c": (
        '#include "client/pyexec.h"\n'
        "/* strcpy(a, b) in a comment, and a string: */\n"
        'static const char *s = "sprintf(";\n'
        "static int f(struct x *p) { char *save; (void)strtok_r(0, \",\", &save);"
        " return p->system(1); }\n"),
}


@pytest.fixture
def tree(tmp_path):
    for rel, text in CLEAN.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def run(script, root, *args):
    env = dict(os.environ, PYEXEC_CHECK_ROOT=str(root))
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True)


def plant(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def test_layering_passes_on_a_clean_tree(tree):
    r = run(LAYERING, tree)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


@pytest.mark.parametrize("rel, line, expected", [
    ("server/store/store.c", "#include <curl/curl.h>\n",
     "server/store/store.c:3: includes <curl/curl.h> (libcurl), "
     "which only server/executor/docker may use"),
    ("server/base/log.c", "#include <archive.h>\n",
     "server/base/log.c:3: includes <archive.h> (libarchive), "
     "which only server/tar, client/cli/archive.c may use"),
    ("server/executor/executor.h", '#include "pyexec/v1/executor.pb-c.h"\n',
     "(generated protobuf-c code), which only server/rpc, client, server/http/transcode.h "
         "may use"),
    ("server/store/store.c", '#include "server/executor/executor.h"\n',
     'store includes "server/executor/executor.h" of executor, a module above it'),
    ("server/base/log.c", '#include "server/model/job.h"\n',
     'base includes "server/model/job.h" of model, a module above it'),
    ("server/store/store.c", '#include "server/executor/docker/docker.h"\n',
     "of executor/docker, a peer in its layer"),
    ("server/base/log.c", "#include <openssl/ssl.h>\n",
     "neither a system header nor owned by a module"),
    ("server/queue/queue.c", '#include "server/base/error.h"\n',
     "server/queue/queue.c:1: belongs to no module"),
    ("client/pyexec.h", '#include "server/base/error.h"\n',
     'the client includes "server/base/error.h"; from server/ it may include only '
     "server/base/cleanup.h"),
    ("client/pyexec.c", '#include "client/cli/cli.h"\n',
     'libpyexec includes "client/cli/cli.h" of client/cli, a module above it'),
])
def test_layering_fails_on_a_planted_violation(tree, rel, line, expected):
    plant(tree, "client/cli/cli.h", "\n")
    plant(tree, rel, line)
    r = run(LAYERING, tree, "--junit", str(tree / "junit.xml"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert expected in r.stderr
    assert "check_layering: 1 problem(s)" in r.stderr
    cases = ET.parse(tree / "junit.xml").getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert len(failed) == 1


def test_layering_ignores_includes_in_comments(tree):
    plant(tree, "server/base/log.c", "/*\n#include <curl/curl.h>\n*/\n// #include <jansson.h>\n")
    r = run(LAYERING, tree)
    assert r.returncode == 0, r.stderr


def test_banned_passes_on_a_clean_tree(tree):
    r = run(BANNED, tree)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("call, name", [
    ("strcpy(d, s);", "strcpy"),
    ("sprintf(d, \"%d\", 1);", "sprintf"),
    ("n = atoi(s);", "atoi"),
    ("(void)strtok(d, \",\");", "strtok"),
    ("strncpy (d, s, 4);", "strncpy"),
    ("(void)system(\"ls\");", "system"),
])
def test_banned_fails_on_a_planted_call(tree, call, name):
    plant(tree, "server/tar/tar.c", f"static void f(char *d, const char *s, int n) {{\n"
          f"    {call}\n}}\n")
    r = run(BANNED, tree, "--junit", str(tree / "junit.xml"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"server/tar/tar.c:3: {name}() is banned: " in r.stderr
    cases = {c.get("name"): c for c in ET.parse(tree / "junit.xml").getroot().iter("testcase")}
    assert cases[name].find("failure") is not None
    assert sum(c.find("failure") is not None for c in cases.values()) == 1


def test_the_repository_cites_no_file_outside_it():
    """The design notes the project grew from are not part of it: nothing
    committed may point at them (the project's own docs/contract.md and
    CONTRIBUTING.md take their place)."""
    names = ["CONTRACT", "STYLE", "DESIGN", "SCALING"]
    pattern = "|".join(n + r"\.md" for n in names) + r"|\.\./" + "shared"
    r = subprocess.run(["git", "-C", str(REPO), "grep", "-nE", pattern, "--", "."],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == "", r.stdout


FORMAT = REPO / "scripts" / "check_format"


@pytest.fixture
def format_tree(tmp_path):
    if not (REPO / ".clang-format").exists():
        pytest.skip("no .clang-format yet")
    (tmp_path / ".clang-format").write_text((REPO / ".clang-format").read_text())
    src = tmp_path / "server" / "base" / "ok.c"
    src.parent.mkdir(parents=True)
    code = "static int twice(int x) {\n    return 2 * x;\n}\n"
    src.write_text(code)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_format_passes_on_formatted_code(format_tree):
    r = run(FORMAT, format_tree)
    assert r.returncode == 0, r.stderr


def test_format_fails_on_unformatted_code_and_fix_formats_it(format_tree):
    bad = format_tree / "tests" / "x" / "bad_test.cc"
    bad.parent.mkdir(parents=True)
    bad.write_text("int  f( void ){return 1;}\n")
    r = run(FORMAT, format_tree, "--junit", str(format_tree / "junit.xml"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "tests/x/bad_test.cc:1: not formatted" in r.stderr
    cases = {c.get("name"): c for c in
             ET.parse(format_tree / "junit.xml").getroot().iter("testcase")}
    assert cases["tests/x"].find("failure") is not None
    assert cases["server/base"].find("failure") is None
    assert run(FORMAT, format_tree, "--fix").returncode == 0
    assert bad.read_text() == "int f(void) {\n    return 1;\n}\n"
    assert run(FORMAT, format_tree).returncode == 0


def test_the_architecture_map_names_every_module_directory():
    """docs/architecture.md's module map matches the tree: every directory
    of server/ and client/ that holds sources is in it."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("## Modules", 1)[1].split("```", 2)[1]
    missing = []
    for top in ("server", "client"):
        for d, subdirs, files in os.walk(REPO / top):
            subdirs[:] = [s for s in subdirs
                          if not s.startswith((".", "_")) and s != "node_modules"]
            rel = pathlib.Path(d).relative_to(REPO)
            if not any(f.endswith((".c", ".h", ".py", ".js")) for f in files):
                continue
            if not re.search(rf"\b{re.escape(rel.name)}/", block):
                missing.append(str(rel))
    assert not missing, f"docs/architecture.md does not map {missing}"
