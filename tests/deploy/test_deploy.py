"""The packaging in deploy/ as an operator uses it: the systemd unit checked
by systemd's own analyser, the server's container image (scripts/setup
--server-image) serving a hello world with the Docker socket mounted, and
deploy/compose.yaml starting two nodes on one Redis from that image.

Needs the Docker engine for the image and compose tests (skipped, saying
why, without it). The image's base layer is built once per machine (about a
minute) and reused; the binary layer whenever the binary changes.
"""

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402

UNIT = REPO / "deploy" / "pyexecd.service"
COMPOSE = REPO / "deploy" / "compose.yaml"
DOCKER = "/usr/bin/docker"
SOCKET = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")


def unit_for(binary, tmp_path):
    """The unit with ExecStart's binary at `binary` (verify checks it exists)."""
    text = UNIT.read_text().replace("/usr/local/bin/pyexecd", str(binary))
    path = tmp_path / "pyexecd.service"
    path.write_text(text)
    return path


# ---- the systemd unit ----

def directives(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def test_the_unit_is_a_notify_service_with_a_watchdog_as_a_user_in_the_docker_group():
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["30s"]
    assert d["User"] == ["pyexec"] and d["SupplementaryGroups"] == ["docker"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", "")):
        assert d[key] == [value], key
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert any("--check-config" in v for v in d["ExecStartPre"])


def systemd_analyze():
    tool = shutil.which("systemd-analyze")
    if not tool:
        pyexecd.missing("systemd-analyze is not installed (Debian package systemd; scripts/setup)")
    return tool


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    tool = systemd_analyze()
    p = subprocess.run([tool, "verify", str(unit_for(pyexecd.server_binary(), tmp_path))],
                       capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values, and says so on stderr.
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr


def test_systemd_analyze_verify_catches_a_bad_directive(tmp_path):
    """The check above is able to fail."""
    tool = systemd_analyze()
    path = unit_for(pyexecd.server_binary(), tmp_path)
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    p = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert "protect system value" in p.stderr, p.stderr


def test_the_units_exposure_is_low(tmp_path):
    tool = systemd_analyze()
    p = subprocess.run([tool, "security", "--offline=true", "--no-pager",
                        str(unit_for(pyexecd.server_binary(), tmp_path))],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for pyexecd\.service: (\d+\.\d+)", p.stdout)
    assert m, p.stdout[-2000:] + p.stderr
    assert float(m.group(1)) <= 2.0, p.stdout


# ---- the server image ----

def engine_gid():
    try:
        status, _ = pyexecd.docker_api("GET", "/_ping")
    except OSError as e:
        pyexecd.missing(f"no Docker engine on {SOCKET}: {e}")
    if status != 200:
        pyexecd.missing(f"the Docker engine on {SOCKET} does not answer /_ping")
    return os.stat(SOCKET).st_gid


@pytest.fixture(scope="module")
def server_image():
    """pyexec/pyexecd:latest holding the binary under test, made by
    scripts/setup --server-image (the base layer is reused when present)."""
    engine_gid()
    env = dict(os.environ, PYEXECD_BIN=pyexecd.server_binary())
    p = subprocess.run([str(REPO / "scripts" / "setup"), "--server-image"], env=env,
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "pyexec/pyexecd:latest" in p.stdout, p.stdout
    return "pyexec/pyexecd:latest"


def hello(address):
    stubs = pyexecd.stubs()
    pb = stubs.executor
    with grpc.insecure_channel(address) as channel:
        stub = stubs.executor_grpc.ExecutorServiceStub(channel)
        req = pb.ExecuteRequest(files=pyexecd.make_files({"main.py": "print('hello world')\n"}))
        return stub.Execute(req, timeout=120)


def test_the_server_image_serves_a_hello_world(server_image):
    gid = engine_gid()
    name = f"pyexec-image-test-{uuid.uuid4().hex[:8]}"
    # The host's network namespace (no bridge), loopback only; the engine's
    # socket mounted; the image's own user plus the socket's group.
    argv = [DOCKER, "run", "--rm", "--name", name, "--network", "host", "--read-only",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-v", f"{SOCKET}:/var/run/docker.sock", "--group-add", str(gid), server_image,
            "--listen", "127.0.0.1:0", "--instance", name, "--warm-pool", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, DOCKER_HOST=f"unix://{SOCKET}"))
    try:
        first = proc.stdout.readline()
        m = re.match(r"^listening on (\S+:\d+)$", first.strip())
        assert m, (first, proc.stderr.read() if proc.poll() is not None else "")
        res = hello(m.group(1))
        assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED", res
        assert res.stdout == b"hello world\n" and res.exit_code == 0
    finally:
        # docker run passes SIGTERM on to the server: a clean shutdown.
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=90)
        finally:
            subprocess.run([DOCKER, "rm", "-f", name], capture_output=True, timeout=60)
    assert code == 0, proc.stderr.read()[-3000:]
    assert not [c for c in pyexecd.containers() if name in (c.get("Labels") or {}).values()]


# ---- compose ----

def compose_tool():
    tool = shutil.which("docker-compose")
    if not tool:
        pyexecd.missing("docker-compose is not installed (Debian package docker-compose; "
                        "scripts/setup)")
    return tool


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_file_is_valid():
    p = subprocess.run([compose_tool(), "-f", str(COMPOSE), "config"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, DOCKER_GID="999"))
    assert p.returncode == 0, p.stderr
    assert "node-a" in p.stdout and "node-b" in p.stdout and "redis" in p.stdout


def test_compose_runs_two_nodes_on_one_redis(server_image):
    tool = compose_tool()
    gid = engine_gid()
    prefix = f"pyexec-compose-test-{uuid.uuid4().hex[:8]}"
    a, b = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = dict(os.environ, DOCKER_HOST=f"unix://{SOCKET}", DOCKER_GID=str(gid),
               PYEXEC_REDIS_PORT=str(free_port()), PYEXEC_NODE_A_LISTEN=a,
               PYEXEC_NODE_B_LISTEN=b, PYEXEC_PREFIX=prefix)
    base = [tool, "-p", prefix, "-f", str(COMPOSE)]
    try:
        up = subprocess.run(base + ["up", "-d"], capture_output=True, text=True, timeout=300,
                            env=env)
        assert up.returncode == 0, up.stderr
        for address in (a, b):
            assert pyexecd.wait_until(lambda: health(address) == 1, 60), (
                address, logs(base, env))
        # Admitted on node a, read on node b: one store.
        stubs = pyexecd.stubs()
        pb = stubs.executor
        with grpc.insecure_channel(a) as ca, grpc.insecure_channel(b) as cb:
            req = pb.ExecuteRequest(files=pyexecd.make_files({"main.py": "print('shared')\n"}))
            setattr(req, "async", True)
            started = stubs.executor_grpc.ExecutorServiceStub(ca).Execute(req, timeout=60)
            res = pyexecd.wait_terminal(stubs.executor_grpc.ExecutorServiceStub(cb),
                                        started.execution_id, timeout=120)
        assert res.stdout == b"shared\n", (res, logs(base, env))
    finally:
        down = subprocess.run(base + ["down", "--timeout", "60"], capture_output=True,
                              text=True, timeout=300, env=env)
    assert down.returncode == 0, down.stderr
    assert not [c for c in pyexecd.containers()
                if any(prefix in v for v in (c.get("Labels") or {}).values())]


def health(address):
    stubs = pyexecd.stubs()
    try:
        with grpc.insecure_channel(address) as ch:
            return stubs.health_grpc.HealthStub(ch).Check(
                stubs.health.HealthCheckRequest(), timeout=5).status
    except grpc.RpcError:
        return None


def logs(base, env):
    p = subprocess.run(base + ["logs", "--no-color", "--tail", "20"], capture_output=True,
                       text=True, timeout=60, env=env)
    return p.stdout[-4000:]
