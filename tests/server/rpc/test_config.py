"""The --config file as an operator uses it: pyexecd --check-config's verdict
and exit code, a file's settings under the environment and the flags in a
running server, and its log-level re-read on SIGHUP (fake back-end)."""

import os
import pathlib
import signal
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYEXEC_")}
    env.update(extra)
    return env


def check(*args, env=None):
    return subprocess.run([pyexecd.server_binary(), "--check-config", *args], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL, env=env or clean_env())


def test_check_config_accepts_a_good_file_and_names_the_line_of_a_bad_one(tmp_path):
    conf = tmp_path / "pyexecd.conf"
    conf.write_text("# production\nlisten = 127.0.0.1:50051\nmax-concurrent = 8\n"
                    "log-format = json\n")
    p = check("--config", str(conf))
    assert p.returncode == 0, p.stderr
    assert f"configuration OK ({conf})" in p.stdout
    conf.write_text("listen = 127.0.0.1:50051\n\nmax-concurrent = many\n")
    p = check("--config", str(conf))
    assert p.returncode == 1
    assert f"{conf}:3: max-concurrent: 'many' is not an integer" in p.stderr, p.stderr
    # What is checked after parsing (the store's URL) is checked too.
    p = check("--store", "mysql://db")
    assert p.returncode == 1 and "--store: 'mysql://db' is not memory" in p.stderr, p.stderr
    # Without --check-config the same file stops the server with exit 2.
    p = subprocess.run([pyexecd.server_binary(), "--config", str(conf)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL, env=clean_env())
    assert p.returncode == 2 and f"{conf}:3:" in p.stderr, p.stderr


def test_the_file_is_under_the_environment_and_the_flags(tmp_path):
    conf = tmp_path / "pyexecd.conf"
    conf.write_text("instance = from-file\nlog-format = json\nhealth-interval-ms = 5000\n")
    env = clean_env(PYEXEC_LOG_FORMAT="text")
    with pyexecd.Server("--config", conf, "--instance", "from-flag", env=env,
                        binary=fake_binary()) as srv:
        assert srv.stop() == 0
        lines = srv.stderr_lines()
    # text (the environment's), not json (the file's); the flag's instance.
    assert lines and all(not line.startswith("{") for line in lines), lines
    assert any("instance 'from-flag'" in line for line in lines), lines


def test_sighup_rereads_the_log_level_from_the_file(tmp_path):
    conf = tmp_path / "pyexecd.conf"
    conf.write_text("log-level = warn\n")
    with pyexecd.Server("--config", conf, env=clean_env(), binary=fake_binary()) as srv:
        stubs = pyexecd.stubs()
        health = stubs.health_grpc.HealthStub(srv.channel())
        health.Check(stubs.health.HealthCheckRequest(), timeout=10)
        conf.write_text("log-level = info\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "SIGHUP: log level info (was warn)" in srv.stderr_text(),
                                  30), srv.stderr_text()
        health.Check(stubs.health.HealthCheckRequest(), timeout=10)
        # A file that no longer parses keeps the level, and says where.
        conf.write_text("log-level = info\nbogus = 1\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert pyexecd.wait_until(lambda: "keeping log level info" in srv.stderr_text(), 30)
        assert f"{conf}:2: unknown key 'bogus'" in srv.stderr_text()
        assert srv.stop() == 0
        checks = [line for line in srv.stderr_lines() if "rpc: Health/Check from" in line]
    # Only the call after the SIGHUP was logged (the access log is at info).
    assert len(checks) == 1, srv.stderr_text()
    assert srv.stderr_text().index("log level info (was warn)") < srv.stderr_text().index(
        "rpc: Health/Check from")


def test_check_config_reads_the_token_file_and_the_tls_files(tmp_path):
    import hashlib
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {hashlib.sha256(b't').hexdigest()}\nbob zzz\n")
    p = check("--auth-tokens", str(tokens))
    assert p.returncode == 1
    assert f"--auth-tokens '{tokens}' line 2: the hash is not 64 hex digits" in p.stderr, p.stderr
    tokens.write_text(f"alice {hashlib.sha256(b't').hexdigest()}\n")
    assert check("--auth-tokens", str(tokens)).returncode == 0
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    p = check("--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.key"))
    assert p.returncode == 1
    assert f"--tls-cert file '{cert}': not PEM" in p.stderr, p.stderr
