"""The HTTP door's routes and answers (docs/api.md, "The HTTP door"), over
the fake back-end: the original service's paths and JSON shapes, errors as
{"error": ...} with their status codes, output as Server-Sent Events."""

import json
import re
import socket

import pytest

import httpdoor
from sse import Stream

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RESULT_KEYS = {"execution_id", "status", "stdout", "stderr", "exit_code", "error",
               "started_at", "finished_at", "duration_ms", "reason", "output_truncated",
               "usage", "result", "error_type", "error_line", "error_message"}


def test_health_is_ok_while_serving(door):
    r = door.request("GET", "/health")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok"}


def test_sync_upload_answers_the_result_in_the_original_shape(door):
    r = door.run("print:hello\n", "stderr:oops", "exit:3")
    assert r.status == 200, r.body
    res = r.json()
    assert set(res) == RESULT_KEYS
    assert res["execution_id"].startswith("exe_")
    assert res["status"] == "completed"
    assert res["reason"] == "exited"
    assert res["exit_code"] == 3
    assert res["stdout"] == "hello\n"
    assert res["stderr"] == "oops"
    assert res["error"] is None
    assert RFC3339.match(res["started_at"]) and RFC3339.match(res["finished_at"])
    assert isinstance(res["duration_ms"], int)
    assert res["output_truncated"] is False
    assert set(res["usage"]) == {"peak_memory_bytes", "cpu_time_ms"}


def test_async_upload_answers_202_then_get_and_delete(door):
    eid = door.submit("print:started\n", "sleep")
    r = door.get(eid)
    assert r.status == 200
    assert r.json()["status"] in ("pending", "running")
    r = door.kill(eid)
    assert r.status == 200
    assert r.json() == {"status": "killed"}
    res = door.get(eid).json()
    assert res["status"] == "killed" and res["reason"] == "killed"
    # Idempotent: a second DELETE answers the same end.
    assert door.kill(eid).json() == {"status": "killed"}


def test_delete_of_a_finished_execution_answers_its_status(door):
    eid = door.run("exit:0").json()["execution_id"]
    assert door.kill(eid).json() == {"status": "completed"}


def test_unknown_and_malformed_ids(door):
    r = door.get("exe_00000000-0000-4000-8000-000000000000")
    assert r.status == 404
    assert "error" in r.json()
    r = door.get("nope")
    assert r.status == 400
    assert "execution_id" in r.json()["error"]
    assert door.kill("exe_00000000-0000-4000-8000-000000000000").status == 404


def test_invalid_utf8_output_is_replaced_as_python_decodes_it(door_factory):
    """Output bytes reach JSON as text: each maximal ill-formed subpart
    becomes one U+FFFD, exactly as bytes.decode("utf-8", "replace") does.
    The bytes come in over gRPC (stdin echoed by the fake), which carries
    any bytes."""
    import random

    door = door_factory()
    stubs = httpdoor.pyexecd.stubs()
    pb = stubs.executor
    stub = stubs.executor_grpc.ExecutorServiceStub(door.server.channel())
    cases = [b"ok \xff\xfe \xe2\x82\xac", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
             b"\xe2\x82", b"a\xe2\x82b", b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80!", b"\x80\x80",
             b"\xc2", b"\xe0\x80\x80", b"\xef\xbf\xbf", b"\x00nul"]
    rng = random.Random(15)
    alphabet = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0,
                0xf4, 0xf5, 0xff, 0x82, 0xac, 0x9f, 0xa0, 0x90]
    cases += [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(150)]
    for data in cases:
        res = stub.Execute(pb.ExecuteRequest(
            metadata=pb.Metadata(script_args=["stdin"], stdin=data),
            files=[pb.File(path="main.py", content=b"")]), timeout=30)
        got = door.get(res.execution_id).json()["stdout"]
        assert got == data.decode("utf-8", "replace"), data


def test_list_filters_and_pages(door):
    done = [door.run("exit:0").json()["execution_id"] for _ in range(3)]
    running = door.submit("sleep")
    door.await_status(running, "running")  # admitted is not yet running
    r = door.request("GET", "/api/v1/executions")
    assert r.status == 200
    body = r.json()
    ids = [e["execution_id"] for e in body["executions"]]
    assert ids == [running] + done[::-1]  # newest first
    assert all(e["stdout"] is None for e in body["executions"])
    assert body["next_page_token"] == ""
    r = door.request("GET", "/api/v1/executions?status=running").json()
    assert [e["execution_id"] for e in r["executions"]] == [running]
    first = door.request("GET", "/api/v1/executions?page_size=2").json()
    assert len(first["executions"]) == 2 and first["next_page_token"]
    rest = door.request(
        "GET", f"/api/v1/executions?page_size=2&page_token={first['next_page_token']}").json()
    assert [e["execution_id"] for e in first["executions"] + rest["executions"]] == ids
    door.kill(running)


@pytest.mark.parametrize("query,message", [
    ("status=bogus", "status: 'bogus' is not one of"),
    ("page_size=5000", "page_size: 5000 is not in 0..1000"),
    ("page_size=-1", "page_size: -1 is not in 0..1000"),
    ("page_size=ten", "page_size: 'ten' is not an integer"),
    ("page_token=garbage", "page_token"),
])
def test_list_refuses_bad_queries(door, query, message):
    r = door.request("GET", f"/api/v1/executions?{query}")
    assert r.status == 400
    assert message in r.json()["error"]


def test_output_replays_a_finished_execution_then_the_result(door):
    eid = door.run("print:one\n", "stderr:two\nthree\n", "print:four").json()["execution_id"]
    s = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    assert s.status == 200
    assert s.headers["Content-Type"].startswith("text/event-stream")
    events = list(s)
    s.close()
    assert events[:3] == [("stdout", "4", "one\n"), ("stderr", "14", "two\nthree\n"),
                          ("stdout", "18", "four")]
    kind, ident, data = events[3]
    assert kind == "result" and ident == "18"
    res = json.loads(data)
    assert res["status"] == "completed" and res["stdout"] is None
    assert len(events) == 4


def test_output_from_an_offset_and_last_event_id(door):
    # Alternate streams: adjacent chunks of one stream may be coalesced.
    eid = door.run("print:one\n", "stderr:two\n", "print:three\n").json()["execution_id"]
    s = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output?offset=4")
    assert [e[2] for e in s][:2] == ["two\n", "three\n"]
    s.close()
    # A reconnect sends the last id it saw: it wins over ?offset.
    s = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output?offset=0",
               headers={"Last-Event-ID": "8"})
    events = list(s)
    s.close()
    assert [(e[0], e[2]) for e in events[:1]] == [("stdout", "three\n")]
    assert events[1][0] == "result"


def test_output_follows_a_running_execution_with_two_readers(door):
    eid = door.submit("print:one\n", "stderr:two\n", "sleep")
    a = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    b = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output?offset=4")
    ia, ib = iter(a), iter(b)
    assert next(ia)[2] == "one\n"
    assert next(ia)[2] == "two\n"
    assert next(ib)[2] == "two\n"
    # Both are now waiting on a live execution; its end reaches both.
    assert door.kill(eid).json() == {"status": "killed"}
    for it in (ia, ib):
        kind, _, data = next(it)
        assert kind == "result" and json.loads(data)["status"] == "killed"
        assert list(it) == []
    a.close()
    b.close()


def test_output_offset_errors(door):
    eid = door.run("print:abc").json()["execution_id"]
    for query, status, msg in [("offset=-1", 400, "offset: -1 is negative"),
                               ("offset=x", 400, "offset: 'x' is not an integer"),
                               ("offset=4", 416, "past the end")]:
        r = door.request("GET", f"/api/v1/executions/{eid}/output?{query}")
        assert r.status == status, (query, r.body)
        assert msg in r.json()["error"]
    r = door.request("GET", "/api/v1/executions/exe_00000000-0000-4000-8000-000000000000/output")
    assert r.status == 404


def let_in(door, eid):
    """Whether a new reader of `eid`'s output is let in now (it leaves at once)."""
    s = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    try:
        if s.status != 200:
            s.body()
            assert s.status == 429, s.status
        return s.status == 200
    finally:
        s.close()


def test_output_readers_are_bounded_per_execution(door_factory):
    door = door_factory("--max-stream-readers", "1")
    eid = door.submit("sleep")
    a = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    assert a.status == 200
    r = door.request("GET", f"/api/v1/executions/{eid}/output")
    assert r.status == 429
    assert "error" in r.json()
    a.close()
    door.kill(eid)


def test_a_reader_that_hangs_up_frees_its_slot(door_factory):
    door = door_factory("--max-stream-readers", "1")
    eid = door.submit("print:x", "sleep")
    a = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    assert next(iter(a))[2] == "x"
    a.response.close()
    a.conn.sock and a.conn.sock.shutdown(socket.SHUT_RDWR)
    a.close()
    # The slot comes back once the server notices the hang-up; until then a
    # second reader is refused (429).
    assert httpdoor.pyexecd.wait_until(lambda: let_in(door, eid), 60, 0.02)
    door.kill(eid)


def test_sync_client_that_hangs_up_kills_its_execution(door):
    ctype, body = httpdoor.multipart({
        "tar": ("code.tar", httpdoor.tar_of({"main.py": ""})),
        "metadata": (None, json.dumps({"script_args": ["print:started", "sleep"]}).encode())})
    sock = socket.create_connection((door.host, door.port))
    sock.sendall((f"POST /api/v1/exec/sync HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    # Wait until it runs ("started" is its first output), then hang up.
    listed = httpdoor.pyexecd.wait_until(
        lambda: door.request("GET", "/api/v1/executions").json()["executions"], 60, 0.02)
    assert listed, "the upload was never admitted"
    eid = listed[0]["execution_id"]
    events = iter(Stream(door.host, door.port, f"/api/v1/executions/{eid}/output"))
    assert next(events)[2] == "started"
    sock.close()
    kind, _, data = next(events)
    assert kind == "result"
    res = json.loads(data)
    assert res["status"] == "killed"
    assert res["reason"] == "client_cancelled"


def test_unknown_route_and_method(door):
    r = door.request("GET", "/api/v1/nothing")
    assert r.status == 404
    assert r.json() == {"error": "no route for GET /api/v1/nothing"}
    r = door.request("PUT", "/api/v1/exec/sync")
    assert r.status == 405
    assert r.headers["Allow"] == "POST"
    assert "PUT is not allowed" in r.json()["error"]
    r = door.request("POST", "/health")
    assert r.status == 405


def eval_body(*steps, **kw):
    """An eval body whose fake run does `steps` (the fake reads them from
    FAKE_STEP environment variables, as an Eval has no script_args)."""
    body = {"code": "1 + 1\n", "env_vars": ["FAKE_STEP=" + s for s in steps]}
    body.update(kw)
    return json.dumps(body)


def test_eval_returns_the_last_expression(door):
    r = door.request("POST", "/api/v1/eval", eval_body("mode", "result:2", eval_last_expr=True),
                     {"Content-Type": "application/json"})
    assert r.status == 200, r.body
    res = r.json()
    assert res["stdout"] == "eval\n"
    assert res["result"] == "2"
    assert res["error_type"] is None and res["error_line"] is None
    assert door.get(res["execution_id"]).json()["result"] == "2"


def test_eval_without_eval_last_expr_runs_a_plain_program(door):
    # curl -d sends application/x-www-form-urlencoded: taken as JSON too.
    r = door.request("POST", "/api/v1/eval", eval_body("mode"),
                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r.body
    assert r.json()["stdout"] == "execute\n"
    assert r.json()["result"] is None


def test_eval_reports_the_exception(door):
    r = door.request("POST", "/api/v1/eval",
                     eval_body("raised:NameError:3:name 'x' is not defined", "exit:1",
                               eval_last_expr=True))
    res = r.json()
    assert res["exit_code"] == 1 and res["result"] is None
    assert (res["error_type"], res["error_line"], res["error_message"]) == (
        "NameError", 3, "name 'x' is not defined")


def test_eval_async_answers_202(door):
    r = door.request("POST", "/api/v1/eval", eval_body("sleep", **{"async": True}))
    assert r.status == 202
    eid = r.json()["execution_id"]
    assert door.kill(eid).json() == {"status": "killed"}


def test_eval_with_files_and_stdin(door):
    r = door.request("POST", "/api/v1/eval", json.dumps({
        "files": [{"name": "app.py", "content": ""}], "entrypoint": "app.py",
        "stdin": "piped", "env_vars": ["FAKE_STEP=stdin"]}))
    assert r.status == 200, r.body
    assert r.json()["stdout"] == "piped"


@pytest.mark.parametrize("body,message", [
    ("{bad", "body: invalid JSON at line 1"),
    ("[1]", "body: expected a JSON object, got an array"),
    ('{"code": 3}', "code: expected a string, got an integer"),
    ('{"code": "1", "eval_last_expr": "yes"}', "eval_last_expr: expected a boolean"),
    ('{"code": "1", "config": {"memory_mb": "x"}}',
     "config.memory_mb: expected an integer, got a string"),
    ('{"code": "1", "config": {"memory_mb": 99999}}',
     "config.memory_mb: 99999 is above the maximum"),
    ('{"code": "1", "files": [{"name": "a.py", "content": "1"}]}',
     "code/files: send exactly one of them"),
    ('{"files": [{"name": "a.py", "body": "1"}]}', "files[0]: unknown member 'body'"),
    ('{"code": "1", "colour": "red"}', "body: unknown member 'colour'"),
    ('{"code": "1", "env_vars": ["PATH=/x"]}', "env_vars: 'PATH' is set by the sandbox"),
    ('{"code": "1", "python_version": "2.7"}', "python_version"),
])
def test_eval_refuses_bad_bodies(door, body, message):
    r = door.request("POST", "/api/v1/eval", body, {"Content-Type": "application/json"})
    assert r.status == 400, r.body
    assert message in r.json()["error"]


def test_eval_refuses_a_multipart_body(door):
    ctype, body = httpdoor.multipart({"code": (None, b"1")})
    r = door.request("POST", "/api/v1/eval", body, {"Content-Type": ctype})
    assert r.status == 415
    assert "JSON body" in r.json()["error"]
