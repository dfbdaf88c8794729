"""TLS and mutual TLS on the gRPC port (fake back-end), with real
certificates made by `openssl` at test time: good, expired, signed by
another CA, no client certificate, and rotation on SIGHUP with a call in
flight. Each test names the behaviour it asserts."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import certs  # noqa: E402
import pyexecd  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = certs.Authority(d, "server-ca")
    other = certs.Authority(d, "other-ca")
    clients = certs.Authority(d, "client-ca")
    return {
        "ca": ca, "other": other, "clients": clients,
        "server": ca.issue("server", "localhost", server=True),
        "expired": ca.issue("expired", "localhost", server=True, days=-1),
        "other_server": other.issue("server", "localhost", server=True),
        "alice": clients.issue("alice", "alice"),
        "mallory": other.issue("mallory", "alice"),
    }


class CheckedServer(pyexecd.Server):
    """A fake server whose exit must be clean (ASan builds exit non-zero on
    a leak or a memory error)."""

    def __exit__(self, *exc):
        code = self.stop() if self.proc and self.proc.poll() is None else self.proc.returncode
        self.close()
        if exc[0] is None:
            assert code == 0, f"server exit {code}; stderr: {self.stderr_text()[-3000:]}"
        return False


def server(*args, level="info"):
    return CheckedServer(*args, "--log-level", level, binary=fake_binary())


def secure_channel(address, ca, client=None):
    cert_chain = key = None
    if client:
        cert_chain, key = certs.read(client[0]), certs.read(client[1])
    creds = grpc.ssl_channel_credentials(root_certificates=certs.read(ca.cert),
                                         private_key=key, certificate_chain=cert_chain)
    # A pool per channel: each test's channel makes its own handshake.
    return grpc.secure_channel(address, creds, options=[("grpc.use_local_subchannel_pool", 1)])


def health(channel):
    st = pyexecd.stubs()
    return st.health_grpc.HealthStub(channel).Check(st.health.HealthCheckRequest(), timeout=10)


def executor(channel):
    return pyexecd.stubs().executor_grpc.ExecutorServiceStub(channel)


def request(*steps, async_=False):
    pb = pyexecd.stubs().executor
    return pb.ExecuteRequest(metadata=pb.Metadata(script_args=list(steps)),
                             files=[pb.File(path="main.py", content=b"")],
                             **{"async": async_})


def start_error(*args):
    p = subprocess.run([fake_binary(), *args], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr


# ---- start-up ----

def test_plaintext_on_a_non_loopback_address_refuses_to_start():
    code, err = start_error("--listen", "0.0.0.0:0")
    assert code == 2
    assert "--listen '0.0.0.0:0' is not a loopback address" in err
    assert "--insecure" in err and "--tls-cert" in err


def test_tls_cert_without_key_is_refused():
    code, err = start_error("--tls-cert", "/nonexistent.pem")
    assert code == 2
    assert "--tls-cert without --tls-key" in err


def test_an_unreadable_certificate_file_is_named(pki):
    _, key = pki["server"]
    code, err = start_error("--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem",
                            "--tls-key", key)
    assert code == 1
    assert "--tls-cert file '/nonexistent/cert.pem'" in err and "No such file" in err


def test_a_key_that_is_not_the_certificates_is_refused(pki):
    cert, _ = pki["server"]
    _, other_key = pki["other_server"]
    code, err = start_error("--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", other_key)
    assert code == 1
    assert "cannot serve TLS" in err, err


# ---- TLS ----

def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(pki):
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key) as srv:
        ch = secure_channel(srv.address, pki["ca"])
        assert health(ch).status == 1  # SERVING
        res = executor(ch).Execute(request("print:over tls\n"), timeout=30)
        assert res.stdout == b"over tls\n"
        ch.close()
        with pytest.raises(grpc.RpcError) as e:
            health(srv.channel())
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_trusts_another_ca_fails_the_handshake(pki):
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key) as srv:
        with pytest.raises(grpc.RpcError) as e:
            health(secure_channel(srv.address, pki["other"]))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_an_expired_server_certificate_fails_the_handshake(pki):
    cert, key = pki["expired"]
    with server("--tls-cert", cert, "--tls-key", key) as srv:
        with pytest.raises(grpc.RpcError) as e:
            health(secure_channel(srv.address, pki["ca"]))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- mutual TLS ----

def test_mtls_needs_a_client_certificate_signed_by_the_client_ca(pki):
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key,
                "--tls-client-ca", pki["clients"].cert) as srv:
        assert health(secure_channel(srv.address, pki["ca"], pki["alice"])).status == 1
        for client in (None, pki["mallory"]):  # no certificate; another CA's
            with pytest.raises(grpc.RpcError) as e:
                health(secure_channel(srv.address, pki["ca"], client))
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- rotation ----

def test_sighup_rotates_the_certificate_without_dropping_a_call_in_flight(pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki["server"][0], cert)
    shutil.copy(pki["server"][1], key)
    with server("--tls-cert", cert, "--tls-key", key) as srv:
        old = secure_channel(srv.address, pki["ca"])
        ex = executor(old)
        submitted = ex.Execute(request("print:before\n", "sleep", async_=True), timeout=30)
        pb = pyexecd.stubs().executor
        stream = ex.StreamOutput(pb.StreamOutputRequest(execution_id=submitted.execution_id),
                                 timeout=60)
        assert next(stream).data == b"before\n"  # the call is in flight

        # New files from another CA; a half-written file first: kept out.
        cert.write_text("not a certificate\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "keeping the files in use" in srv.stderr_text(), 30)
        assert health(secure_channel(srv.address, pki["ca"])).status == 1

        shutil.copy(pki["other_server"][0], cert)
        shutil.copy(pki["other_server"][1], key)
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "certificate files re-read" in srv.stderr_text(), 30)

        fresh = secure_channel(srv.address, pki["other"])
        assert health(fresh).status == 1
        with pytest.raises(grpc.RpcError) as e:
            health(secure_channel(srv.address, pki["ca"]))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE

        # Killed over the new connection; the old one still delivers the end.
        executor(fresh).Kill(pb.KillRequest(execution_id=submitted.execution_id), timeout=10)
        final = [m for m in stream if m.HasField("result")]
        assert pb.ExecutionStatus.Name(final[0].result.status) == "EXECUTION_STATUS_KILLED"
        assert health(old).status == 1


# ---- the CLI (libpyexec) over TLS ----

def cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYEXEC_")}
    e.update(env or {})
    return subprocess.run([pyexecd.cli_binary(), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=e)


def test_cli_speaks_tls_and_mtls(pki, tmp_path):
    main = tmp_path / "main.py"
    main.write_text("")
    cert, key = pki["server"]
    alice_cert, alice_key = pki["alice"]
    with server("--tls-cert", cert, "--tls-key", key,
                "--tls-client-ca", pki["clients"].cert) as srv:
        url = "https://" + srv.address
        r = cli("--server", url, "--tls-ca", pki["ca"].cert, "--tls-cert", alice_cert,
                "--tls-key", alice_key, "run", str(main), "--", "print:cli over mtls\n")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "cli over mtls\n"
        # The same from the environment, and grpcs://.
        r = cli("health", env={"PYEXEC_SERVER": "grpcs://" + srv.address,
                               "PYEXEC_TLS_CA": pki["ca"].cert, "PYEXEC_TLS_CERT": alice_cert,
                               "PYEXEC_TLS_KEY": alice_key})
        assert r.returncode == 0, r.stderr
        # No client certificate; a server CA the client does not trust.
        for extra in ([], ["--tls-cert", alice_cert, "--tls-key", alice_key]):
            ca = pki["ca"].cert if not extra else pki["other"].cert
            r = cli("--server", url, "--tls-ca", ca, *extra, "health")
            assert r.returncode != 0
            assert "UNAVAILABLE" in r.stderr, r.stderr


def test_cli_tls_file_errors_are_usage_errors(pki):
    r = cli("--server", "https://127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem", "health")
    assert r.returncode != 0
    assert "'/nonexistent/ca.pem'" in r.stderr, r.stderr
    r = cli("--server", "https://127.0.0.1:1", "--tls-cert", pki["alice"][0], "health")
    assert r.returncode == 2
    assert "--tls-cert without --tls-key" in r.stderr


# ---- the Python client over TLS ----

def python_client():
    sys.path.insert(0, str(REPO / "client" / "python"))
    pyexecd.stubs()  # generates the client's stubs if they are missing
    import python_executor_client
    return python_executor_client


def test_python_client_speaks_tls_and_mtls(pki):
    pec = python_client()
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key,
                "--tls-client-ca", pki["clients"].cert) as srv:
        alice_cert, alice_key = pki["alice"]
        with pec.PythonExecutorClient("grpcs://" + srv.address, tls_ca=pki["ca"].cert,
                                      tls_cert=alice_cert,
                                      tls_key=certs.read(alice_key)) as c:
            assert c.tls and c.health() == "SERVING"
            assert c.execute_sync(files={"main.py": ""},
                                  script_args=["print:py over mtls\n"]).stdout == \
                "py over mtls\n"
        with pec.PythonExecutorClient("https://" + srv.address, tls_ca=pki["ca"].cert,
                                      call_timeout=10) as c:
            with pytest.raises(pec.PythonExecutorError) as e:
                c.health()  # no client certificate
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        pec.PythonExecutorClient("https://h", tls_cert=alice_cert)
    with pytest.raises(ValueError, match="'/nonexistent/ca.pem'"):
        pec.PythonExecutorClient("https://h", tls_ca="/nonexistent/ca.pem")


# ---- the HTTP door over TLS ----

def https(address, ca, client=None, path="/health", headers=None):
    """GET `path` over TLS; (status, body), or raises ssl.SSLError/OSError."""
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=ca.cert)
    if client:
        ctx.load_cert_chain(client[0], client[1])
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_http_door_speaks_tls_with_the_same_files(pki):
    import http.client
    import ssl
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key, "--http-listen", "127.0.0.1:0") as srv:
        status, body = https(srv.http_address(), pki["ca"])
        assert status == 200 and b"ok" in body
        with pytest.raises(ssl.SSLError):
            https(srv.http_address(), pki["other"])  # a CA the client does not trust
        host, port = srv.http_address().rsplit(":", 1)
        plain = http.client.HTTPConnection(host, int(port), timeout=10)
        with pytest.raises((OSError, http.client.HTTPException)):
            plain.request("GET", "/health")
            plain.getresponse()  # plaintext to a TLS port: no HTTP answer
        plain.close()


def test_http_door_mtls_needs_a_valid_client_certificate(pki):
    cert, key = pki["server"]
    with server("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", pki["clients"].cert,
                "--http-listen", "127.0.0.1:0") as srv:
        status, body = https(srv.http_address(), pki["ca"], pki["alice"], "/api/v1/executions")
        assert status == 200, body
        for client, why in ((None, b"a client certificate signed by --tls-client-ca"),
                            (pki["mallory"], b"not valid for --tls-client-ca")):
            status, body = https(srv.http_address(), pki["ca"], client, "/api/v1/executions")
            assert status == 401 and why in body, body


def test_http_door_rotates_its_certificate_on_sighup(pki, tmp_path):
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki["server"][0], cert)
    shutil.copy(pki["server"][1], key)
    with server("--tls-cert", cert, "--tls-key", key, "--http-listen", "127.0.0.1:0") as srv:
        assert https(srv.http_address(), pki["ca"])[0] == 200
        shutil.copy(pki["other_server"][0], cert)
        shutil.copy(pki["other_server"][1], key)
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "http: certificate files re-read" in srv.stderr_text(),
                                  30)
        assert https(srv.http_address(), pki["other"])[0] == 200
        with pytest.raises(ssl.SSLError):
            https(srv.http_address(), pki["ca"])

