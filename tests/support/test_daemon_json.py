"""scripts/daemon_json.py, what scripts/setup --with-gvisor writes into the
engine's daemon.json: runsc (and crun) merged in, every other setting kept,
idempotent, a file that is not a JSON object refused."""

import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "daemon_json.py"
sys.path.insert(0, str(SCRIPT.parent))
import daemon_json  # noqa: E402


def run(path):
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True,
                          text=True, timeout=30)


def test_a_new_file_gets_runsc_with_no_network_and_the_ptrace_platform(tmp_path):
    path = tmp_path / "docker" / "daemon.json"
    p = run(path)
    assert p.returncode == 0 and p.stdout == "changed\n", p.stderr
    runtimes = json.loads(path.read_text())["runtimes"]
    assert runtimes["runsc"] == {"path": "/usr/bin/runsc",
                                 "runtimeArgs": ["--network=none", "--platform=ptrace"]}


def test_other_settings_and_runtimes_are_kept_and_a_second_run_changes_nothing(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-level": "warn", "runtimes": {"kata": {"path": "/k"}}}))
    assert daemon_json.merge(str(path), crun_installed=True) is True
    conf = json.loads(path.read_text())
    assert conf["log-level"] == "warn"
    assert set(conf["runtimes"]) == {"kata", "runsc", "crun"}
    before = path.read_text()
    assert daemon_json.merge(str(path), crun_installed=True) is False
    assert path.read_text() == before
    assert run(path).stdout == ""


def test_a_file_that_is_not_an_object_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("[1, 2]\n")
    p = run(path)
    assert p.returncode == 1 and "not a JSON object" in p.stderr
    assert path.read_text() == "[1, 2]\n"
