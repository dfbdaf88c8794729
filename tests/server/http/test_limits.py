"""The HTTP door's limits and its answers to bad input, each exercised with
real bad input over a socket: body size, connection bounds, request line
and header size, the idle timeout against slow senders, slow readers, bad
Content-Type, broken multipart, invalid JSON, wrong member types, and
admission refusals."""

import json
import socket

import pytest

import httpdoor
from sse import Stream


def raw(door, data, timeout=30):
    """Sends `data` on a new connection and returns everything the server
    sends back until it closes the connection."""
    s = socket.create_connection((door.host, door.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response else None


def test_a_declared_body_above_the_limit_is_413_before_it_is_read(door_factory):
    door = door_factory("--http-max-body-bytes", "4096")
    ctype, body = httpdoor.multipart({"tar": ("code.tar", b"x" * 5000)})
    r = door.request("POST", "/api/v1/exec/sync", body, {"Content-Type": ctype})
    assert r.status == 413
    assert "body: 5" in r.json()["error"] and "--http-max-body-bytes" in r.json()["error"]


def test_a_chunked_body_that_grows_past_the_limit_is_413(door_factory):
    door = door_factory("--http-max-body-bytes", "4096")
    ctype, _ = httpdoor.multipart({})
    chunk = b"y" * 3000
    data = (f"POST /api/v1/exec/sync HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    data += b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n"
    out = raw(door, data)
    assert status_of(out) == 413
    assert b"more than 4096 bytes" in out


def test_a_chunked_body_that_goes_on_is_cut_off(door_factory):
    """Past the limit the rest is read and dropped (so that the 413 can be
    sent), but only up to twice the limit: then the connection is closed."""
    door = door_factory("--http-max-body-bytes", "4096")
    ctype, _ = httpdoor.multipart({})
    s = socket.create_connection((door.host, door.port), timeout=30)
    s.sendall((f"POST /api/v1/exec/sync HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n").encode())
    chunk = b"z" * 1024
    try:
        for _ in range(10000):  # 10 MB at most; the server stops at 8 KiB
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        assert s.recv(4096) == b""
    except ConnectionResetError:
        pass
    s.close()


def test_a_body_within_the_limit_is_taken(door_factory):
    door = door_factory("--http-max-body-bytes", "65536")
    r = door.upload("/api/v1/exec/sync", ["print:ok"])
    assert r.status == 200 and r.json()["stdout"] == "ok"


def test_connections_beyond_the_bound_are_closed(door_factory):
    door = door_factory("--http-max-connections", "2")
    held = [socket.create_connection((door.host, door.port)) for _ in range(2)]
    # Both held connections are accepted (each answers a request).
    for s in held:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    out = raw(door, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out == b""  # closed without an answer
    held[0].close()
    held[1].close()


def test_connections_per_client_are_bounded(door_factory):
    door = door_factory("--http-max-connections-per-client", "1")
    held = socket.create_connection((door.host, door.port))
    held.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert held.recv(4096).startswith(b"HTTP/1.1 200")
    assert raw(door, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    held.close()


def test_a_url_too_long_is_414_and_headers_too_large_431(door_factory):
    door = door_factory("--http-max-header-bytes", "8192")
    out = raw(door, b"GET /api/v1/executions/" + b"a" * 16384 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == 414
    out = raw(door, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 16384 + b"\r\n\r\n")
    assert status_of(out) == 431
    # Within the bound, the same server answers.
    assert door.request("GET", "/health", headers={"X-Big": "b" * 1000}).status == 200


def test_a_request_that_trickles_in_is_closed_by_the_idle_timeout(door_factory):
    door = door_factory("--http-read-timeout-s", "1")
    slow = socket.create_connection((door.host, door.port), timeout=60)
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
    # Others are served meanwhile.
    assert door.request("GET", "/health").status == 200
    # The server closes the slow one: recv sees the end (no answer).
    assert slow.recv(4096) == b""
    slow.close()


def test_a_body_that_stops_coming_is_closed_by_the_idle_timeout(door_factory):
    door = door_factory("--http-read-timeout-s", "1")
    ctype, body = httpdoor.multipart({"tar": ("code.tar", httpdoor.tar_of({"main.py": ""}))})
    slow = socket.create_connection((door.host, door.port), timeout=60)
    slow.sendall((f"POST /api/v1/exec/sync HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:100])
    assert slow.recv(4096) == b""
    slow.close()


def test_a_stalled_reader_slows_neither_the_program_nor_other_readers(door):
    """A client that opens the output stream and never reads: the program
    produces all its output and ends, and another reader gets all of it."""
    size = 4 * 1024 * 1024
    eid = door.submit(f"flood:{size}", "sleep")
    stalled = socket.create_connection((door.host, door.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /api/v1/executions/{eid}/output HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    reader = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output")
    got = 0
    for kind, ident, data in reader:
        assert kind == "stdout"
        got += len(data)
        if int(ident) == size:
            break
    assert got == size
    assert door.kill(eid).json() == {"status": "killed"}
    kind, _, data = next(iter(reader))
    assert kind == "result" and json.loads(data)["status"] == "killed"
    reader.close()
    stalled.close()


@pytest.mark.parametrize("ctype", [None, "application/json", "text/plain",
                                   "application/x-www-form-urlencoded"])
def test_an_upload_that_is_not_multipart_is_415(door, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = door.request("POST", "/api/v1/exec/sync", b'{"tar": "x"}', headers)
    assert r.status == 415
    assert "multipart/form-data" in r.json()["error"]


def test_multipart_without_a_boundary_is_400(door):
    r = door.request("POST", "/api/v1/exec/sync", b"--x\r\n",
                     {"Content-Type": "multipart/form-data"})
    assert r.status == 400
    assert "boundary" in r.json()["error"]


def test_broken_multipart_is_400(door):
    ctype, body = httpdoor.multipart({"tar": ("code.tar", httpdoor.tar_of({"main.py": ""}))})
    r = door.request("POST", "/api/v1/exec/sync", body[:len(body) // 2],
                     {"Content-Type": ctype})
    assert r.status == 400
    assert "malformed multipart" in r.json()["error"]


def test_a_missing_tar_field_is_400(door):
    ctype, body = httpdoor.multipart({"metadata": (None, b"{}")})
    r = door.request("POST", "/api/v1/exec/sync", body, {"Content-Type": ctype})
    assert r.status == 400
    assert r.json()["error"].startswith("tar: missing")


def test_a_tar_that_is_not_a_tar_is_400(door):
    r = door.upload("/api/v1/exec/sync", metadata="{}", tar=b"not a tar at all" * 64)
    assert r.status == 400
    assert r.json()["error"].startswith("tar")


@pytest.mark.parametrize("metadata,message", [
    ('{"entrypoint": ', "metadata: invalid JSON"),
    ('["main.py"]', "metadata: expected a JSON object, got an array"),
    ('{"entrypoint": 5}', "metadata.entrypoint: expected a string, got an integer"),
    ('{"script_args": "a b"}', "metadata.script_args: expected an array of strings"),
    ('{"script_args": ["a", 2]}', "metadata.script_args[1]: expected a string, got an integer"),
    ('{"config": {"timeout_seconds": 1.5}}',
     "metadata.config.timeout_seconds: expected an integer, got a number with a fraction"),
    ('{"config": {"network_disabled": "no"}}',
     "metadata.config.network_disabled: expected a boolean, got a string"),
    ('{"config": {"memory_mb": 4294967296}}',
     "metadata.config.memory_mb: 4294967296 does not fit in 32 bits"),
    ('{"config": {"memory_mb": 99999}}', "metadata.config.memory_mb: 99999 is above the maximum"),
    ('{"config": []}', "metadata.config: expected an object, got an array"),
    ('{"entrpoint": "main.py"}', "metadata: unknown member 'entrpoint'"),
    ('{"entrypoint": "missing.py"}', "metadata.entrypoint"),
    ('{"env_vars": ["NOEQUALS"]}', "metadata.env_vars: 'NOEQUALS' is not KEY=value"),
    ('{"entrypoint": "a", "entrypoint": "b"}', "metadata: invalid JSON"),
])
def test_bad_metadata_is_400_naming_the_member(door, metadata, message):
    r = door.upload("/api/v1/exec/sync", metadata=metadata)
    assert r.status == 400, r.body
    assert message in r.json()["error"], r.json()


def test_null_members_are_the_defaults(door):
    r = door.upload("/api/v1/exec/sync", metadata=json.dumps({
        "entrypoint": None, "docker_image": None, "config": None, "env_vars": None,
        "script_args": ["print:defaults"]}))
    assert r.status == 200, r.body
    assert r.json()["stdout"] == "defaults"


def test_a_full_queue_is_429(door_factory):
    door = door_factory("--max-concurrent", "1", "--max-queue", "0")
    eid = door.submit("sleep")
    r = door.run("exit:0")
    assert r.status == 429
    assert "error" in r.json()
    door.kill(eid)


def test_a_body_on_a_route_that_takes_none_is_400(door):
    r = door.request("GET", "/health", b"surprise", {"Content-Type": "text/plain"})
    assert r.status == 400
    assert "takes no body" in r.json()["error"]


def test_health_is_503_from_the_start_of_a_shutdown(door_factory):
    """A shutdown stops the door accepting; a connection already open sees
    /health turn 503, and its requests in progress are answered."""
    door = door_factory("--shutdown-grace-s", "600")
    eid = door.submit("sleep")  # holds the shutdown until it is killed
    conn = door.connection()
    conn.request("GET", "/health")
    r = conn.getresponse()
    assert r.status == 200
    r.read()
    door.server.proc.send_signal(2)  # SIGINT: graceful shutdown
    # The signal is handled asynchronously: ask on the open connection,
    # pausing between tries, until the answer turns.
    answers = []

    def health_turned():
        conn.request("GET", "/health")
        r = conn.getresponse()
        answers.append((r.status, json.loads(r.read())))
        return r.status == 503

    assert httpdoor.pyexecd.wait_until(health_turned, 60, 0.02), answers[-1]
    assert answers[-1][1] == {"status": "unavailable", "error": "shutting down"}
    conn.request("DELETE", f"/api/v1/executions/{eid}")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"status": "killed"}
    conn.close()
    assert door.server.wait(60) == 0


def test_a_reader_that_stops_reading_is_closed_by_the_idle_timeout(door_factory):
    """An output stream whose client stops reading while output is pending
    is closed after --http-read-timeout-s, and its reader slot returns."""
    door = door_factory("--http-read-timeout-s", "1", "--max-stream-readers", "1")
    flood = 8 * 1024 * 1024
    eid = door.submit(f"flood:{flood}", "sleep")
    # A small receive buffer, set before connecting (the window is agreed
    # on in the handshake), so the server's writes back up at once.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(60)
    stalled.connect((door.host, door.port))
    stalled.sendall(f"GET /api/v1/executions/{eid}/output HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert stalled.recv(64).startswith(b"HTTP/1.1 200")
    # The one reader slot is busy (429) until the server gives up on the
    # stalled reader; then a new reader is let in.

    def let_in():
        s = Stream(door.host, door.port, f"/api/v1/executions/{eid}/output?offset=0")
        try:
            if s.status != 200:
                s.body()
                assert s.status == 429, s.status
            return s.status == 200
        finally:
            s.close()

    assert httpdoor.pyexecd.wait_until(let_in, 60, 0.05), "the stalled reader kept its slot"
    # And the server closed the stalled connection: what it had sent before
    # is still in the buffers, then EOF (a reader it still served would get
    # the whole flood and then wait: a timeout here).
    received = 0
    while True:
        try:
            chunk = stalled.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += len(chunk)
    assert received < flood
    stalled.close()
    door.kill(eid)


def test_replies_held_for_clients_that_never_read_are_bounded(door_factory):
    """A reply is held until its client takes it, so the door's replies
    count against --max-reply-queued-bytes as gRPC's do: with two large
    results pinned by clients that never read, the third is 429; once they
    go, the budget is back."""
    size = 8 * 1024 * 1024
    door = door_factory("--output-limit-bytes", str(size), "--max-reply-queued-bytes",
                        str(2 * size + 2 * 1024 * 1024))
    eid = door.run(f"flood:{size}").json()["execution_id"]
    stalled = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        s.connect((door.host, door.port))
        s.sendall(f"GET /api/v1/executions/{eid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(64).startswith(b"HTTP/1.1 200")  # answered, then stuck
        stalled.append(s)
    r = door.get(eid)
    assert r.status == 429, r.status
    assert "--max-reply-queued-bytes" in r.json()["error"]
    # Small answers still fit.
    assert door.request("GET", "/api/v1/executions").status == 200
    for s in stalled:
        s.close()
    # The budget is back once the server has noticed the hang-ups.
    answers = []

    def answered():
        answers.append(door.get(eid))
        return answers[-1].status == 200

    assert httpdoor.pyexecd.wait_until(answered, 60, 0.05), answers[-1].body
    assert len(answers[-1].json()["stdout"]) == size
