"""The HTTP door against real sandboxes, used the way the original service's
users use it: curl recipes (multipart upload, eval, poll, kill) and a
`requests` client with the original client's types (http_client.py), run
unchanged; the output stream of a live program; /metrics from the Docker
back-end."""

import json
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

import pyexecd
from conftest import server_args

sys.path.insert(0, str(pyexecd.REPO) + "/tests/server/http")
from sse import Stream  # noqa: E402

import http_client  # noqa: E402
from http_client import ExecutionConfig, ExecutionStatus, HttpClient, Metadata  # noqa: E402


@pytest.fixture(scope="module")
def door(flags, instance, no_container_left_behind):
    with pyexecd.Server(*server_args(flags, instance), "--http-listen", "127.0.0.1:0",
                        "--warm-pool", "1") as srv:
        srv.http = srv.http_address()
        yield srv
        assert srv.stop(timeout=60) == 0, srv.stderr_text()[-2000:]


def sh(script, door, cwd):
    """Runs a bash recipe with BASE set to the door's URL; returns stdout."""
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                       env={"BASE": f"http://{door.http}", "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_curl_upload_sync(door, tmp_path):
    (tmp_path / "main.py").write_text("import sys\nprint('hello', sys.argv[1:], input())\n")
    out = sh("""
        tar cf code.tar main.py
        curl -fsS -F tar=@code.tar \
          -F 'metadata={"entrypoint":"main.py","script_args":["a"],"stdin":"you\\n"}' \
          "$BASE/api/v1/exec/sync"
    """, door, tmp_path)
    res = json.loads(out)
    assert res["status"] == "completed" and res["exit_code"] == 0
    assert res["stdout"] == "hello ['a'] you\n"


def test_curl_eval(door, tmp_path):
    out = sh("""curl -fsS "$BASE/api/v1/eval" -d '{"code":"2+2","eval_last_expr":true}'""",
             door, tmp_path)
    res = json.loads(out)
    assert res["result"] == "4" and res["status"] == "completed"


def test_curl_async_then_poll(door, tmp_path):
    (tmp_path / "main.py").write_text("print('polled')\n")
    out = sh("""
        tar cf code.tar main.py
        id=$(curl -fsS -F tar=@code.tar "$BASE/api/v1/exec/async" \
             | python3 -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
        while :; do
          body=$(curl -fsS "$BASE/api/v1/executions/$id")
          case "$body" in *'"status":"pending"'*|*'"status":"running"'*) sleep 0.2 ;; *) break ;; esac
        done
        echo "$body"
    """, door, tmp_path)
    res = json.loads(out)
    assert res["status"] == "completed" and res["stdout"] == "polled\n"


def test_curl_kill(door, tmp_path):
    (tmp_path / "main.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    out = sh("""
        tar cf code.tar main.py
        id=$(curl -fsS -F tar=@code.tar "$BASE/api/v1/exec/async" \
             | python3 -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
        curl -fsS -X DELETE "$BASE/api/v1/executions/$id"
        echo
        curl -fsS "$BASE/api/v1/executions/$id"
    """, door, tmp_path)
    killed, res = out.strip().split("\n")
    assert json.loads(killed) == {"status": "killed"}
    assert json.loads(res)["status"] == "killed" and json.loads(res)["reason"] == "killed"


def test_requests_client_with_the_original_types(door):
    client = HttpClient(f"http://{door.http}")
    result = client.execute_sync(
        {"main.py": "import os, sys\nprint(os.environ['MODE'], sys.argv[1:])\n"},
        Metadata(entrypoint="main.py", env_vars=["MODE=test"], script_args=["x"],
                 config=ExecutionConfig(timeout_seconds=60)))
    assert result.status == ExecutionStatus.COMPLETED
    assert result.exit_code == 0 and result.stdout == "test ['x']\n"
    assert result.started_at <= result.finished_at and result.duration_ms >= 0

    eid = client.execute_async({"main.py": "print('later')"}, Metadata(entrypoint="main.py"))
    done = client.wait_for_completion(eid)
    assert done.status == ExecutionStatus.COMPLETED and done.stdout == "later\n"

    eid = client.execute_async({"main.py": "import time\ntime.sleep(600)"},
                               Metadata(entrypoint="main.py"))
    assert client.kill(eid) == "killed"
    assert client.get_execution(eid).status == ExecutionStatus.KILLED

    failed = client.execute_sync({"main.py": "raise SystemExit(3)"}, Metadata("main.py"))
    assert failed.status == ExecutionStatus.COMPLETED and failed.exit_code == 3
    assert client.eval("6 * 7", eval_last_expr=True)["result"] == "42"


def test_the_output_of_a_live_program_with_resume(door):
    client = HttpClient(f"http://{door.http}")
    eid = client.execute_async(
        {"main.py": "import time\nprint('one', flush=True)\ntime.sleep(600)\n"},
        Metadata(entrypoint="main.py"))
    host, port = door.http.rsplit(":", 1)
    a = Stream(host, int(port), f"/api/v1/executions/{eid}/output")
    kind, ident, data = next(iter(a))
    assert (kind, data) == ("stdout", "one\n") and ident == "4"
    a.close()
    # A reconnect from the last id gets nothing twice: only the end.
    b = Stream(host, int(port), f"/api/v1/executions/{eid}/output",
               headers={"Last-Event-ID": ident})
    assert client.kill(eid) == "killed"
    events = list(b)
    b.close()
    assert [e[0] for e in events] == ["result"]
    assert json.loads(events[0][2])["status"] == "killed"


def scrape(door):
    text = HttpClient(f"http://{door.http}").session.get(
        f"http://{door.http}/metrics", timeout=30).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_from_the_docker_back_end_move(door):
    def v(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    before = scrape(door)
    client = HttpClient(f"http://{door.http}")
    assert client.execute_sync({"main.py": "print(1)"}, Metadata("main.py")).exit_code == 0
    after = scrape(door)
    assert v(after, "pyexec_warm_pool_size") == 1
    runs = (v(after, "pyexec_warm_pool_handovers_total") + v(after, "pyexec_warm_pool_cold_runs_total")
            - v(before, "pyexec_warm_pool_handovers_total")
            - v(before, "pyexec_warm_pool_cold_runs_total"))
    assert runs == 1
    # Containers were created, started and removed by this module's runs (the
    # removal of this run's container may trail its answer: not compared).
    for op in ("create", "start", "remove"):
        assert v(after, "pyexec_container_op_seconds_count", op=op) >= 1, op
        assert v(after, "pyexec_container_op_seconds_sum", op=op) > 0, op
    assert (v(after, "pyexec_executions_total", status="completed", reason="exited")
            == v(before, "pyexec_executions_total", status="completed", reason="exited") + 1)
    assert ("pyexec_docker_errors_total", (("kind", "server_error"),)) in after
