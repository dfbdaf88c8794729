"""Tenants (--auth-tokens, mutual TLS subjects) and their quotas, over the
fake back-end, on the gRPC port and the HTTP door. Each test names the rule
it asserts: no or a wrong token is UNAUTHENTICATED; a tenant sees, gets,
streams, lists and kills only its own executions (another tenant's id is
NOT_FOUND, in the words of an unknown id); request_id keys are per tenant;
health and reflection stay open; the token file is checked line by line at
start and re-read on SIGHUP (a bad file keeps the old table); each quota is
RESOURCE_EXHAUSTED naming it."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "tests" / "server" / "http"))
import httpdoor  # noqa: E402
import pyexecd  # noqa: E402

TOKENS = {"alice": "alice-token-1", "bob": "bob-token-1"}
UNKNOWN_ID = "exe_00000000-0000-4000-8000-000000000000"


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def write_tokens(path, tokens, extra=""):
    lines = ["# tenant  sha256(token)"] + [f"{t} {sha(tok)}" for t, tok in tokens.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def token_file(tmp_path):
    return write_tokens(tmp_path / "tokens", TOKENS)


class Tenant:
    """Calls as one tenant (token None: no authorization header)."""

    def __init__(self, channel, token):
        self.pb = pyexecd.stubs().executor
        self.stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(channel)
        self.md = [("authorization", f"Bearer {token}")] if token else []

    def request(self, *steps, async_=False, request_id=""):
        pb = self.pb
        return pb.ExecuteRequest(metadata=pb.Metadata(script_args=list(steps)),
                                 files=[pb.File(path="main.py", content=b"")],
                                 request_id=request_id, **{"async": async_})

    def run(self, *steps, **kw):
        return self.stub.Execute(self.request(*steps, **kw), timeout=30, metadata=self.md)

    def submit(self, *steps, **kw):
        return self.run(*steps, async_=True, **kw)

    def get(self, execution_id):
        return self.stub.GetExecution(self.pb.GetExecutionRequest(execution_id=execution_id),
                                      timeout=10, metadata=self.md)

    def kill(self, execution_id):
        return self.stub.Kill(self.pb.KillRequest(execution_id=execution_id), timeout=10,
                              metadata=self.md)

    def stream(self, execution_id):
        return list(self.stub.StreamOutput(
            self.pb.StreamOutputRequest(execution_id=execution_id), timeout=30,
            metadata=self.md))

    def ls(self):
        return self.stub.ListExecutions(self.pb.ListExecutionsRequest(), timeout=10,
                                        metadata=self.md).executions

    def eval(self, code="1"):
        return self.stub.Eval(self.pb.EvalRequest(code=code), timeout=30, metadata=self.md)


class CheckedServer(pyexecd.Server):
    """A fake server whose exit must be clean (ASan builds exit non-zero on
    a leak or a memory error)."""

    def __exit__(self, *exc):
        code = self.stop() if self.proc and self.proc.poll() is None else self.proc.returncode
        self.close()
        if exc[0] is None:
            assert code == 0, f"server exit {code}; stderr: {self.stderr_text()[-3000:]}"
        return False


def server(*args, level="info", **kw):
    return CheckedServer(*args, "--log-level", level, binary=fake_binary(), **kw)


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


# ---- start-up ----

def test_a_bad_line_in_the_token_file_stops_the_start_naming_it(tmp_path):
    f = write_tokens(tmp_path / "tokens", TOKENS, "carol not-a-hash\n")
    p = subprocess.run([fake_binary(), "--auth-tokens", str(f)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert f"--auth-tokens '{f}' line 4: the hash is not 64 hex digits" in p.stderr, p.stderr


def test_a_missing_token_file_stops_the_start(tmp_path):
    p = subprocess.run([fake_binary(), "--auth-tokens", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert "No such file" in p.stderr and "none'" in p.stderr


def test_tenants_over_the_redis_store_two_nodes(token_file):
    """Two nodes on one Redis: a record's tenant travels with it."""
    import shutil as _shutil
    if _shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    import redis_server
    with redis_server.RedisServer() as redis:
        common = ("--auth-tokens", token_file, "--store", redis.url, "--store-namespace",
                  f"tenants{os.getpid()}")
        with server(*common, "--node-name", "n1") as n1, \
                server(*common, "--node-name", "n2") as n2:
            alice1 = Tenant(n1.channel(), TOKENS["alice"])
            alice2 = Tenant(n2.channel(), TOKENS["alice"])
            bob2 = Tenant(n2.channel(), TOKENS["bob"])
            mine = alice1.submit("print:a\n", "sleep", request_id="k").execution_id
            assert alice2.get(mine).execution_id == mine  # the other node knows it is alice's
            for call in (lambda: bob2.get(mine), lambda: bob2.kill(mine)):
                assert code_of(call) == (grpc.StatusCode.NOT_FOUND,
                                         f"execution '{mine}' not found")
            theirs = bob2.submit("print:b\n", request_id="k").execution_id
            assert theirs != mine  # request_id keys are per tenant, cluster-wide
            assert alice2.kill(mine).status == alice2.pb.EXECUTION_STATUS_KILLED


# ---- authentication ----

def test_no_or_a_wrong_token_is_unauthenticated_on_every_executor_rpc(token_file):
    with server("--auth-tokens", token_file) as srv:
        for token in (None, "wrong-token", TOKENS["alice"] + "x"):
            t = Tenant(srv.channel(), token)
            for call in (lambda: t.run("print:x"), lambda: t.get(UNKNOWN_ID),
                         lambda: t.stream(UNKNOWN_ID), lambda: t.kill(UNKNOWN_ID),
                         lambda: t.ls(), lambda: t.eval()):
                code, details = code_of(call)
                assert code == grpc.StatusCode.UNAUTHENTICATED, (token, details)
        code, details = code_of(lambda: Tenant(srv.channel(), None).ls())
        assert "send 'authorization: Bearer TOKEN'" in details
        stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
        code, details = code_of(lambda: stub.ListExecutions(
            pyexecd.stubs().executor.ListExecutionsRequest(), timeout=10,
            metadata=[("authorization", "Basic YWxpY2U6eA==")]))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "'Bearer TOKEN'" in details


def test_health_and_reflection_stay_open(token_file):
    with server("--auth-tokens", token_file) as srv:
        st = pyexecd.stubs()
        assert st.health_grpc.HealthStub(srv.channel()).Check(
            st.health.HealthCheckRequest(), timeout=10).status == 1
        ch = srv.channel()
        call = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
        # ServerReflectionRequest{list_services: ""} (field 7, empty string).
        replies = list(call(iter([b"\x3a\x00"]), timeout=10))
        assert replies and b"pyexec.v1.ExecutorService" in replies[0]


def test_a_token_without_tokens_configured_is_ignored():
    with server() as srv:
        t = Tenant(srv.channel(), "anything")
        assert t.run("print:ok\n").stdout == b"ok\n"


# ---- isolation ----

def test_another_tenants_execution_is_not_found_for_every_rpc(token_file):
    with server("--auth-tokens", token_file) as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        bob = Tenant(srv.channel(), TOKENS["bob"])
        mine = alice.submit("print:alice's\n", "sleep").execution_id
        for call in (lambda: bob.get(mine), lambda: bob.stream(mine), lambda: bob.kill(mine)):
            code, details = code_of(call)
            assert code == grpc.StatusCode.NOT_FOUND
            assert details == f"execution '{mine}' not found"  # as for an unknown id
        _, unknown = code_of(lambda: bob.get(UNKNOWN_ID))
        assert unknown == f"execution '{UNKNOWN_ID}' not found"
        assert [e.execution_id for e in bob.ls()] == []
        theirs = bob.run("print:bob's\n")
        assert [e.execution_id for e in alice.ls()] == [mine]
        assert [e.execution_id for e in bob.ls()] == [theirs.execution_id]
        # Bob's kill did nothing; alice's own calls work.
        assert alice.get(mine).status == alice.pb.EXECUTION_STATUS_RUNNING or \
            alice.get(mine).status == alice.pb.EXECUTION_STATUS_PENDING
        assert alice.kill(mine).status == alice.pb.EXECUTION_STATUS_KILLED
        assert b"alice's" in b"".join(c.data for c in alice.stream(mine))


def test_request_id_keys_are_per_tenant(token_file):
    with server("--auth-tokens", token_file) as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        bob = Tenant(srv.channel(), TOKENS["bob"])
        a = alice.run("print:a\n", request_id="job-1")
        b = bob.run("print:b\n", request_id="job-1")  # other content, same key: fine
        assert a.execution_id != b.execution_id and b.stdout == b"b\n"
        assert alice.run("print:a\n", request_id="job-1").execution_id == a.execution_id
        code, _ = code_of(lambda: alice.run("print:other\n", request_id="job-1"))
        assert code == grpc.StatusCode.ALREADY_EXISTS


# ---- rotation ----

def test_sighup_rereads_the_tokens_and_a_bad_file_keeps_the_old(tmp_path):
    f = write_tokens(tmp_path / "tokens", {"alice": TOKENS["alice"]})
    with server("--auth-tokens", f) as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        carol = Tenant(srv.channel(), "carol-token")
        assert code_of(carol.ls)[0] == grpc.StatusCode.UNAUTHENTICATED

        write_tokens(f, {"alice": TOKENS["alice"], "carol": "carol-token"})
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "2 tokens re-read" in srv.stderr_text(), 30)
        assert list(carol.ls()) == []

        write_tokens(f, {"dave": "dave-token"}, "dave\n")  # line 3: one field
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "keeping the files in use" in srv.stderr_text(), 30)
        assert f"--auth-tokens '{f}' line 3: expected 'TENANT SHA256HEX'" in srv.stderr_text()
        assert list(carol.ls()) == [] and list(alice.ls()) == []
        assert code_of(Tenant(srv.channel(), "dave-token").ls)[0] == \
            grpc.StatusCode.UNAUTHENTICATED


# ---- mutual TLS: the certificate's subject is the tenant ----

def test_mtls_subject_is_the_tenant(tmp_path):
    import certs
    ca = certs.Authority(tmp_path, "server-ca")
    clients = certs.Authority(tmp_path, "client-ca")
    cert, key = ca.issue("server", "localhost", server=True)
    alice_c, bob_c = clients.issue("alice", "alice"), clients.issue("bob", "bob")

    def channel(address, client):
        creds = grpc.ssl_channel_credentials(certs.read(ca.cert), certs.read(client[1]),
                                             certs.read(client[0]))
        return grpc.secure_channel(address, creds,
                                   options=[("grpc.use_local_subchannel_pool", 1)])

    with server("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clients.cert) as srv:
        alice = Tenant(channel(srv.address, alice_c), None)
        bob = Tenant(channel(srv.address, bob_c), None)
        mine = alice.submit("print:x\n").execution_id
        assert code_of(lambda: bob.get(mine))[0] == grpc.StatusCode.NOT_FOUND
        assert [e.execution_id for e in alice.ls()] == [mine]
        assert list(bob.ls()) == []
        assert "(tenant 'CN=alice')" in srv.stderr_text()  # the log names who asked


# ---- quotas ----

def test_concurrent_quota(token_file):
    with server("--auth-tokens", token_file, "--tenant-max-concurrent", "2") as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        bob = Tenant(srv.channel(), TOKENS["bob"])
        ids = [alice.submit("sleep").execution_id for _ in range(2)]
        code, details = code_of(lambda: alice.submit("sleep"))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tenant 'alice': quota of 2 concurrent executions reached " \
               "(--tenant-max-concurrent" in details
        bob.run("print:bob is not counted\n")
        alice.kill(ids[0])
        alice.kill(alice.submit("sleep").execution_id)  # a finished one freed its slot
        alice.kill(ids[1])


def test_queued_quota(token_file):
    with server("--auth-tokens", token_file, "--max-concurrent", "1",
                "--tenant-max-queued", "1") as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        bob = Tenant(srv.channel(), TOKENS["bob"])
        running = alice.submit("sleep").execution_id
        waiting = alice.submit("sleep").execution_id  # the one slot is taken: it waits
        assert alice.get(waiting).status == alice.pb.EXECUTION_STATUS_PENDING
        code, details = code_of(lambda: alice.submit("sleep"))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tenant 'alice': quota of 1 queued executions reached (--tenant-max-queued" \
            in details
        bob_waiting = bob.submit("sleep").execution_id  # bob's own queue
        for i in (running, waiting):
            alice.kill(i)
        bob.kill(bob_waiting)


def test_per_minute_quota(token_file):
    with server("--auth-tokens", token_file, "--tenant-max-per-minute", "3") as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        for _ in range(3):
            alice.run("print:x\n")
        code, details = code_of(lambda: alice.run("print:x\n"))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "quota of 3 executions per minute reached (--tenant-max-per-minute" in details
        Tenant(srv.channel(), TOKENS["bob"]).run("print:bob\n")


def test_quotas_over_the_redis_store_hold_for_the_cluster(token_file):
    """Two nodes on one Redis: a tenant's quota is one count for both, and
    an end on either node frees the slot on both."""
    import shutil as _shutil
    if _shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    import redis_server
    with redis_server.RedisServer() as redis:
        common = ("--auth-tokens", token_file, "--store", redis.url, "--store-namespace",
                  f"quotas{os.getpid()}", "--tenant-max-concurrent", "1")
        with server(*common, "--node-name", "q1") as n1, \
                server(*common, "--node-name", "q2") as n2:
            alice1 = Tenant(n1.channel(), TOKENS["alice"])
            alice2 = Tenant(n2.channel(), TOKENS["alice"])
            first = alice1.submit("sleep").execution_id
            code, details = code_of(lambda: alice2.submit("sleep"))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert details == "execute: tenant 'alice': quota of 1 concurrent executions " \
                              "reached (--tenant-max-concurrent; 1 pending or running)"
            Tenant(n2.channel(), TOKENS["bob"]).run("print:bob is not counted\n")
            assert alice2.kill(first).status == alice2.pb.EXECUTION_STATUS_KILLED
            alice1.kill(alice1.submit("sleep").execution_id)  # the kill on n2 freed it
            alice2.run("print:again\n")


# ---- clients: the CLI, the Python client ----

def cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYEXEC_")}
    e.update(env or {})
    return subprocess.run([pyexecd.cli_binary(), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=e)


def test_cli_sends_its_token(token_file, tmp_path):
    main = tmp_path / "main.py"
    main.write_text("")
    with server("--auth-tokens", token_file) as srv:
        r = cli("--server", srv.address, "--token", TOKENS["alice"], "run", str(main), "--",
                "print:cli\n")
        assert r.returncode == 0 and r.stdout == "cli\n", r.stderr
        r = cli("ls", "--json", env={"PYEXEC_SERVER": srv.address,
                                     "PYEXEC_TOKEN": TOKENS["alice"]})
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("exe_") == 1, r.stdout  # alice's one execution
        r = cli("--server", srv.address, "ls")
        assert r.returncode != 0 and "UNAUTHENTICATED" in r.stderr, r.stderr


def test_python_client_sends_its_token(token_file):
    sys.path.insert(0, str(REPO / "client" / "python"))
    pyexecd.stubs()
    import python_executor_client as pec
    with server("--auth-tokens", token_file) as srv:
        with pec.PythonExecutorClient(srv.address, token=TOKENS["bob"]) as c:
            eid = c.execute_async(files={"main.py": ""}, script_args=["print:py\n"])
            assert c.get_execution(eid).execution_id == eid
            assert [e.execution_id for e in c.list_executions()] == [eid]
        with pec.PythonExecutorClient(srv.address, token=TOKENS["alice"]) as c:
            with pytest.raises(pec.PythonExecutorError) as e:
                c.get_execution(eid)
            assert e.value.code == grpc.StatusCode.NOT_FOUND
        with pec.PythonExecutorClient(srv.address) as c:
            assert c.health() == "SERVING"  # open
            with pytest.raises(pec.PythonExecutorError) as e:
                c.list_executions()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED


# ---- the HTTP door ----

def test_http_door_follows_the_same_rules(token_file):
    door = httpdoor.Door("--auth-tokens", str(token_file), "--tenant-max-concurrent", "1")
    try:
        alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
        bob = {"Authorization": f"Bearer {TOKENS['bob']}"}
        assert door.request("GET", "/health").status == 200  # open
        r = door.request("GET", "/api/v1/executions")
        assert r.status == 401 and "Bearer TOKEN" in r.json()["error"]
        assert door.request("GET", "/api/v1/executions", headers={
            "Authorization": "Bearer nope"}).status == 401
        ctype, body = httpdoor.multipart({
            "tar": ("code.tar", httpdoor.tar_of({"main.py": ""})),
            "metadata": (None, json.dumps({"script_args": ["sleep"]}).encode())})
        r = door.request("POST", "/api/v1/exec/async", body,
                         {"Content-Type": ctype, **alice})
        assert r.status == 202, r.body
        mine = r.json()["execution_id"]
        for method, path in (("GET", f"/api/v1/executions/{mine}"),
                             ("GET", f"/api/v1/executions/{mine}/output"),
                             ("DELETE", f"/api/v1/executions/{mine}")):
            r = door.request(method, path, headers=bob)
            assert r.status == 404, (method, path, r.body)
            assert r.json()["error"] == f"execution '{mine}' not found"
        assert door.request("GET", "/api/v1/executions", headers=bob).json()["executions"] == []
        listed = door.request("GET", "/api/v1/executions", headers=alice).json()["executions"]
        assert [e["execution_id"] for e in listed] == [mine]
        r = door.request("POST", "/api/v1/exec/async", body, {"Content-Type": ctype, **alice})
        assert r.status == 429 and "--tenant-max-concurrent" in r.json()["error"]
        assert door.request("DELETE", f"/api/v1/executions/{mine}", headers=alice).status == 200
    finally:
        assert door.close() == 0


# ---- logs ----

def test_access_lines_name_the_tenant_and_never_the_token(token_file):
    import http.client
    with server("--auth-tokens", token_file, "--log-format", "json",
                "--http-listen", "127.0.0.1:0") as srv:
        alice = Tenant(srv.channel(), TOKENS["alice"])
        alice.run("print:x\n")
        code_of(lambda: Tenant(srv.channel(), "wrong-s3cret").ls())
        host, port = srv.http_address().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/api/v1/executions",
                     headers={"Authorization": f"Bearer {TOKENS['bob']}"})
        assert conn.getresponse().status == 200
        conn.close()
        assert srv.stop() == 0
        text = srv.stderr_text()
        lines = [json.loads(line) for line in srv.stderr_lines() if line.startswith("{")]
    assert TOKENS["alice"] not in text and TOKENS["bob"] not in text and "s3cret" not in text
    access = {(o["rpc"], o["tenant"], o["code"]) for o in lines if o["duration_ms"] is not None}
    assert ("Execute", "alice", "OK") in access, access
    assert ("ListExecutions", "", "UNAUTHENTICATED") in access, access
    assert ("GET /api/v1/executions", "bob", "200") in access, access


def test_metrics_can_be_put_behind_a_tenants_token(token_file):
    import http.client
    with server("--auth-tokens", token_file, "--metrics-tenant", "alice",
                "--http-listen", "127.0.0.1:0") as srv:
        host, port = srv.http_address().rsplit(":", 1)

        def scrape(token=None):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/metrics",
                         headers={"Authorization": f"Bearer {token}"} if token else {})
            r = conn.getresponse()
            body = r.read()
            conn.close()
            return r.status, body

        assert scrape(TOKENS["alice"])[0] == 200
        status, body = scrape(TOKENS["bob"])
        assert status == 401 and b"only tenant 'alice' may scrape it" in body
        assert scrape()[0] == 401
        assert scrape("nope")[0] == 401
    with server("--auth-tokens", token_file, "--http-listen", "127.0.0.1:0") as srv:
        host, port = srv.http_address().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200  # open by default
        conn.close()
