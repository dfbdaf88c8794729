"""The server's log as a user reads it (fake back-end): each execution's end
in words with its duration, peer and RPC; refused calls with their reason;
Kill logged only when there was something to kill; an access line per call
(gRPC and HTTP); --log-format json lines that parse, without secrets."""

import http.client
import json
import os
import pathlib
import re
import subprocess
import sys

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


@pytest.fixture
def srv():
    with pyexecd.Server("--log-level", "info", binary=fake_binary()) as s:
        yield s
        assert s.stop() == 0, s.stderr_text()[-3000:]


def execute(srv, *steps, async_=False, **config):
    pb = pyexecd.stubs().executor
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
    req = pb.ExecuteRequest(
        metadata=pb.Metadata(script_args=list(steps), config=pb.ExecutionConfig(**config)),
        files=[pb.File(path="main.py", content=b"")], **{"async": async_})
    return stub, pb, stub.Execute(req, timeout=30)


def lines_about(srv, needle):
    return [line for line in srv.stderr_lines() if needle in line]


def wait_for_line(srv, needle):
    """The end's log line is written by the executor thread around the reply;
    the server's stop (which joins every thread) is the event to wait for."""
    srv.stop()
    found = lines_about(srv, needle)
    assert found, f"no log line with {needle!r}: {srv.stderr_text()[-3000:]}"
    return found


def test_the_end_of_an_execution_names_status_reason_duration_peer_and_rpc(srv):
    _, _, res = execute(srv, "print:hi", "exit:3")
    (line,) = wait_for_line(srv, f"execution {res.execution_id}: COMPLETED")
    assert re.search(r"COMPLETED \(EXITED\), exit code 3; ran \d+ ms, \d+ ms since admitted; "
                     r"Execute \(sync\) from ipv4:127\.0\.0\.1:\d+", line), line
    (admitted,) = lines_about(srv, f"execution {res.execution_id}: admitted")
    assert re.search(r"admitted; Execute \(sync\) from ipv4:127\.0\.0\.1:\d+", admitted)


def test_a_timeout_is_named(srv):
    _, _, res = execute(srv, "timeout")
    (line,) = wait_for_line(srv, f"execution {res.execution_id}: COMPLETED")
    assert "COMPLETED (TIMEOUT), exit code 137" in line, line


def test_a_refused_request_is_logged_with_its_reason(srv):
    with pytest.raises(grpc.RpcError) as e:
        execute(srv, timeout_seconds=999999)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
    pb = pyexecd.stubs().executor
    with pytest.raises(grpc.RpcError) as e:
        stub.GetExecution(pb.GetExecutionRequest(execution_id="exe_nope"), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The refusal is logged around the reply and read from the server's
    # stderr by another thread: stopping the server is the event to await.
    (line,) = wait_for_line(srv, "rpc: Execute from ")
    assert re.search(r"INFO +rpc: Execute from ipv4:127\.0\.0\.1:\d+: INVALID_ARGUMENT: "
                     r"metadata\.config\.timeout_seconds: 999999 is above the maximum", line), line
    (line,) = lines_about(srv, "rpc: GetExecution from ")
    assert "INVALID_ARGUMENT: execution_id: 'exe_nope' is malformed" in line, line


def test_kill_is_logged_only_when_there_is_something_to_kill(srv):
    stub, pb, ended = execute(srv, "print:done", "exit:0")
    stub.Kill(pb.KillRequest(execution_id=ended.execution_id), timeout=10)
    _, _, running = execute(srv, "sleep", async_=True)
    stub.Kill(pb.KillRequest(execution_id=running.execution_id), timeout=10)
    srv.stop()
    assert not lines_about(srv, f"execution {ended.execution_id}: killing"), srv.stderr_text()
    (line,) = lines_about(srv, f"execution {running.execution_id}: killing")
    assert re.search(r"killing; Kill from ipv4:127\.0\.0\.1:\d+", line), line


def json_lines(srv):
    """Every stderr line parsed as JSON (fails on a line that is not one object)."""
    out = []
    for line in srv.stderr_lines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


KEYS = {"time", "level", "message", "execution_id", "tenant", "node", "rpc", "peer", "code",
        "duration_ms"}


def test_json_lines_parse_and_each_rpc_has_an_access_line(tmp_path):
    with pyexecd.Server("--log-format", "json", "--node-name", "node-json",
                        "--http-listen", "127.0.0.1:0", binary=fake_binary()) as srv:
        pb = pyexecd.stubs().executor
        stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
        # A secret in the environment and the stdin: neither may be logged.
        req = pb.ExecuteRequest(
            metadata=pb.Metadata(script_args=["print:hi", "exit:0"], stdin=b"stdin-s3cret",
                                 env_vars=["API_KEY=env-s3cret"]),
            files=[pb.File(path="main.py", content=b"code-s3cret")])
        res = stub.Execute(req, timeout=30)
        with pytest.raises(grpc.RpcError):
            stub.GetExecution(pb.GetExecutionRequest(execution_id="exe_nope"), timeout=10)
        stub.GetExecution(pb.GetExecutionRequest(execution_id=res.execution_id), timeout=10)
        host, port = srv.http_address().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", f"/api/v1/executions/{res.execution_id}?token=query-s3cret")
        assert conn.getresponse().status == 200
        conn.close()
        assert srv.stop() == 0
        lines = json_lines(srv)
        text = srv.stderr_text()
    assert "s3cret" not in text, text
    for obj in lines:
        assert set(obj) == KEYS, obj
        assert obj["node"] == "node-json" and obj["tenant"] == ""
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]), obj
        assert obj["level"] in ("debug", "info", "warn", "error"), obj
    access = [o for o in lines if o["duration_ms"] is not None]
    by_rpc = {}
    for o in access:
        by_rpc.setdefault((o["rpc"], o["code"]), []).append(o)
    (execute,) = by_rpc[("Execute", "OK")]
    assert execute["execution_id"] == res.execution_id
    assert execute["peer"].startswith("ipv4:127.0.0.1:")
    assert isinstance(execute["duration_ms"], (int, float)) and execute["duration_ms"] >= 0
    (refused,) = by_rpc[("GetExecution", "INVALID_ARGUMENT")]
    assert "'exe_nope' is malformed" in refused["message"], refused
    (got,) = by_rpc[("GetExecution", "OK")]
    assert got["execution_id"] == res.execution_id
    (door,) = by_rpc[("GET /api/v1/executions/{id}", "200")]
    assert door["execution_id"] == res.execution_id and door["peer"].startswith("127.0.0.1:")
    # Lines about the execution carry its id too.
    ended = [o for o in lines if "COMPLETED" in o["message"]]
    assert ended and all(o["execution_id"] == res.execution_id for o in ended), ended


def test_text_access_line_names_rpc_peer_status_and_duration(srv):
    _, _, res = execute(srv, "print:hi", "exit:0")
    srv.stop()
    (line,) = lines_about(srv, "rpc: Execute from ")
    assert re.search(r" INFO +rpc: Execute from ipv4:127\.0\.0\.1:\d+: OK; \d+\.\d{3} ms$", line), line


def test_a_bad_log_format_is_refused():
    p = subprocess.run([fake_binary(), "--log-format", "xml"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert "--log-format: 'xml' is not one of text, json" in p.stderr, p.stderr
