"""Dependencies: requirements_txt is installed outside the sandbox, once per
image and set of requirements, into a cached layer that every sandbox
mounts read-only (docs/sandbox.md, "Dependencies"). No package registry is
used: the tests make small wheels themselves (tests/support/wheels.py) and
serve them from a wheelhouse directory or a loopback-only simple index.

Each test's servers get an instance name of their own, so each has its own
cache volume (pyexec-deps-<instance>), removed when the test ends.
"""

import http.client
import json
import os
import re
import time
import uuid

import grpc
import pytest

from conftest import IMAGE, Runner, server_args
import pyexecd
import wheels

COMPLETED = "EXECUTION_STATUS_COMPLETED"
FAILED = "EXECUTION_STATUS_FAILED"
BIG = 700 * 1024  # two layers with this much data exceed a 1 MiB cache


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    d = tmp_path_factory.mktemp("wheelhouse")
    wheels.make_wheel(d, "tinypkg", modules={"tinypkg.py": "VALUE = 'from the wheel'\n"})
    wheels.make_wheel(d, "depbase", modules={"depbase.py": "BASE = 41\n"})
    wheels.make_wheel(d, "needs-dep", requires=["depbase>=1.0"],
                      modules={"needs_dep.py": "import depbase\nVALUE = depbase.BASE + 1\n"})
    for name in ("biga", "bigb"):
        wheels.make_wheel(
            d, name,
            modules={f"{name}/__init__.py": "import os\n"
                     "DATA = os.path.join(os.path.dirname(__file__), 'data.bin')\n"},
            data={f"{name}/data.bin": os.urandom(BIG)})
    return str(d)


class DepsServers:
    """Starts servers with a wheelhouse, each test with its own instance (and
    so its own cache volume); stops them and removes the volumes at the end."""

    def __init__(self, flags, instance, pb, wheelhouse):
        self.flags, self.pb, self.wheelhouse = flags, pb, wheelhouse
        self.instance = f"{instance}-deps-{uuid.uuid4().hex[:6]}"
        self.servers, self.runners = [], []

    def start(self, *extra, wheelhouse=True):
        args = server_args(self.flags, self.instance) + list(extra)
        if wheelhouse:
            args += ["--wheelhouse", self.wheelhouse]
        srv = pyexecd.Server(*args).start()
        self.servers.append(srv)
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), self.pb)
        self.runners.append(runner)
        return srv, runner

    def close(self):
        for r in self.runners:
            r.close()
        codes = []
        for s in self.servers:
            # A clean shutdown exits 0; under AddressSanitizer a leak or a
            # memory error makes it non-zero.
            codes.append((s.stop() if s.proc.poll() is None else s.proc.returncode,
                          s.stderr_text()[-2000:]))
        status, body = pyexecd.docker_api("DELETE", f"/volumes/pyexec-deps-{self.instance}")
        assert status in (204, 404), body
        for code, err in codes:
            assert code == 0, f"a server exited {code}: {err}"


@pytest.fixture
def deps(flags, instance, pb, wheelhouse):
    d = DepsServers(flags, instance, pb, wheelhouse)
    yield d
    d.close()


def builds(srv):
    return len(re.findall(r"docker: deps: execution \S+: built layer", srv.stderr_text()))


def hits(srv):
    return len(re.findall(r"docker: deps: execution \S+: cached layer", srv.stderr_text()))


IMPORT_TINY = "import tinypkg\nprint(tinypkg.VALUE)\n"


def metrics(srv):
    """The deps and warm-pool values of the server's /metrics: {name: value}."""
    conn = http.client.HTTPConnection(*srv.http_address().rsplit(":", 1), timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(pyexec_(?:deps|warm_pool)_\w+) (\S+)$", text, re.M)}


def test_install_and_import_with_the_network_off_then_cached(deps):
    srv, ex = deps.start("--http-listen", "127.0.0.1:0", "--warm-pool", "1")
    # The pooled container exists before the layer does, and is used for it.
    assert pyexecd.wait_until(lambda: metrics(srv).get("pyexec_warm_pool_ready") == 1, 60)
    res = ex.run(IMPORT_TINY, requirements_txt="tinypkg==1.0\n")
    assert metrics(srv)["pyexec_warm_pool_handovers_total"] == 1
    assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
    assert (res.exit_code, res.stdout) == (0, b"from the wheel\n"), res.stderr
    # The build's output is the execution's stderr, every line marked.
    lines = res.stderr.decode().splitlines()
    assert lines and all(line.startswith("pyexec: install: ") for line in lines), lines
    assert any("tinypkg" in line for line in lines), lines
    assert builds(srv) == 1

    # The same requirements in another spelling: the same layer, no build.
    res = ex.run("import os, tinypkg\nprint(tinypkg.VALUE, len(os.listdir('/sys/class/net')))\n",
                 requirements_txt="# cached\nTinyPkg == 1.0\n")
    assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
    assert res.stdout == b"from the wheel 1\n", res.stderr  # only lo: the network is off
    assert res.stderr == b""
    assert (builds(srv), hits(srv)) == (1, 1)
    m = metrics(srv)
    assert (m["pyexec_deps_builds_total"], m["pyexec_deps_hits_total"]) == (1, 1), m
    assert m["pyexec_deps_layers"] == 1 and m["pyexec_deps_bytes"] > 0, m
    assert m["pyexec_deps_build_failures_total"] == 0, m


def test_a_wheel_that_depends_on_another(deps):
    srv, ex = deps.start()
    res = ex.run("import needs_dep, depbase\nprint(needs_dep.VALUE)\n",
                 requirements_txt="needs-dep\n")
    assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
    assert res.stdout == b"42\n", res.stderr


def test_the_layer_is_read_only_in_the_sandbox(deps):
    srv, ex = deps.start()
    res = ex.run("import errno, tinypkg\n"
                 "try:\n    open(tinypkg.__file__, 'a')\nexcept OSError as e:\n"
                 "    print(errno.errorcode[e.errno])\n"
                 "for line in open('/proc/self/mountinfo'):\n"
                 "    f = line.split()\n"
                 "    if f[4] == '/deps':\n"
                 "        print(f[5].split(',')[0])\n",
                 requirements_txt="tinypkg\n")
    assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
    assert res.stdout in (b"EACCES\nro\n", b"EROFS\nro\n"), res.stderr


def test_a_missing_package_fails_clearly_and_is_not_cached(deps):
    srv, ex = deps.start("--http-listen", "127.0.0.1:0")
    for attempt in (1, 2):
        res = ex.run("print('never')\n", requirements_txt="no-such-package\n")
        assert pyexecd.status_name(res) == FAILED, res
        assert pyexecd.reason_name(res) == "TERMINATION_REASON_SANDBOX_ERROR", res
        assert "install requirements: pip exited 1" in res.error, res.error
        assert "no-such-package" in res.error, res.error
        assert res.stdout == b""
        assert b"pyexec: install: failed: " in res.stderr, res.stderr
        # The failure's log line is read from the server's stderr by another
        # thread: await it (a cached failure would never log a second one).
        deadline = time.monotonic() + 30
        while srv.stderr_text().count("build of layer") < attempt and time.monotonic() < deadline:
            time.sleep(0.05)
        failed = srv.stderr_text().count("build of layer")
        assert failed == attempt, "a failed build is tried again, not cached"
    assert builds(srv) == 0
    m = metrics(srv)
    assert (m["pyexec_deps_build_failures_total"], m["pyexec_deps_layers"]) == (2, 0), m


@pytest.fixture
def held_index(tmp_path):
    """A simple index of tinypkg that answers only once the test sets
    .release: a build from it stays in progress until then."""
    d = tmp_path / "held"
    d.mkdir()
    wheels.make_wheel(d, "tinypkg", modules={"tinypkg.py": "VALUE = 'from the wheel'\n"})
    with wheels.SimpleIndex(str(d), hold=True) as index:
        yield index


def index_server(deps, index, *extra):
    return deps.start("--pip-index-url", index.url, "--deps-network", "host", *extra,
                      wheelhouse=False)


def test_concurrent_identical_requests_share_one_build(deps, held_index):
    srv, ex = index_server(deps, held_index, "--max-concurrent", "4")
    ids = [ex.start(IMPORT_TINY, requirements_txt="tinypkg\n").execution_id for _ in range(3)]
    # All three are running (one builds, two wait) while the index holds.
    assert held_index.asked.wait(60)
    assert pyexecd.wait_until(lambda: all(
        pyexecd.status_name(ex.get(i)) == "EXECUTION_STATUS_RUNNING" for i in ids), 60)
    held_index.release.set()
    results = [ex.wait(i) for i in ids]
    for res in results:
        assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
        assert res.stdout == b"from the wheel\n", res.stderr
    waited = [r for r in results if b"waiting for another execution's build" in r.stderr]
    assert len(waited) == 2, [r.stderr for r in results]
    assert builds(srv) == 1, srv.stderr_text()[-3000:]
    assert held_index.requests.count("/simple/tinypkg/") == 1, held_index.requests


def test_a_failed_build_is_reported_to_every_waiter(deps):
    srv, ex = deps.start("--max-concurrent", "4")
    ids = [ex.start("print('never')\n", requirements_txt="tinypkg\nno-such-package\n")
           .execution_id for _ in range(3)]
    for res in (ex.wait(i) for i in ids):
        assert pyexecd.status_name(res) == FAILED, res
        assert "no-such-package" in res.error, res.error


def test_the_build_counts_against_the_timeout(deps, held_index):
    srv, ex = index_server(deps, held_index)
    res = ex.run(IMPORT_TINY, requirements_txt="tinypkg\n", config={"timeout_seconds": 2})
    assert pyexecd.status_name(res) == COMPLETED, res
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_TIMEOUT", res
    assert res.stdout == b""
    assert builds(srv) == 0
    held_index.release.set()
    res = ex.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert builds(srv) == 1, "the stopped build was not cached"


def test_kill_during_the_build(deps, held_index):
    srv, ex = index_server(deps, held_index)
    a = ex.start(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert held_index.asked.wait(60)
    res = ex.kill(a.execution_id)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_KILLED", res
    assert not [c for c in pyexecd.containers("pyexec.deps") if
                (c.get("Labels") or {}).get("pyexec.instance") == deps.instance], \
        "the builder is gone once Kill answers"


def test_a_killed_waiter_ends_at_once_and_the_build_goes_on(deps, held_index):
    srv, ex = index_server(deps, held_index, "--max-concurrent", "4")
    builder = ex.start(IMPORT_TINY, requirements_txt="tinypkg\n").execution_id
    assert held_index.asked.wait(60)
    waiter = ex.start(IMPORT_TINY, requirements_txt="tinypkg\n").execution_id
    assert pyexecd.wait_until(
        lambda: pyexecd.status_name(ex.get(waiter)) == "EXECUTION_STATUS_RUNNING", 60)
    res = ex.kill(waiter)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_KILLED", res
    held_index.release.set()
    res = ex.wait(builder)
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert builds(srv) == 1


def in_volume(volume, script):
    """Runs `sh -c script` as root in a container that mounts `volume` at
    /deps (network off); returns its stdout."""
    status, c = pyexecd.docker_api("POST", "/containers/create", body={
        "Image": IMAGE, "Cmd": ["sh", "-c", script], "AttachStdout": True,
        "HostConfig": {"NetworkMode": "none",
                       "Mounts": [{"Type": "volume", "Source": volume, "Target": "/deps"}]}})
    assert status == 201, c
    try:
        status, body = pyexecd.docker_api("POST", f"/containers/{c['Id']}/start")
        assert status == 204, body
        status, body = pyexecd.docker_api("POST", f"/containers/{c['Id']}/wait")
        assert status == 200 and body["StatusCode"] == 0, body
        status, logs = pyexecd.docker_api("GET", f"/containers/{c['Id']}/logs?stdout=1")
        assert status == 200, logs
        return logs if isinstance(logs, bytes) else json.dumps(logs).encode()
    finally:
        pyexecd.docker_api("DELETE", f"/containers/{c['Id']}?force=1")


def test_restart_keeps_the_cache_and_clears_what_the_index_does_not_list(deps):
    srv, ex = deps.start()
    res = ex.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert srv.stop() == 0
    # What a crash mid-build or mid-eviction leaves: a partial build, a
    # directory whose index entry is gone, an index entry whose directory is.
    volume = f"pyexec-deps-{deps.instance}"
    in_volume(volume, "mkdir -p /deps/.build-x/out /deps/orphan-dir && "
                      "echo '{\"dir\": \"gone\", \"key\": \"k\"}' > /deps/.index/gone.json")
    srv2, ex2 = deps.start()
    assert "docker: deps: 1 cached layer(s)" in srv2.stderr_text()
    left = in_volume(volume, "ls -a /deps /deps/.index")
    assert re.search(rb"[0-9a-f]{64}-[0-9a-f]{8}\.json", left), left  # the layer's entry
    for junk in (b".build-x", b"orphan-dir", b"gone.json"):
        assert junk not in left, left
    res = ex2.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert res.stderr == b""
    assert (builds(srv2), hits(srv2)) == (0, 1)


def serving(srv):
    h = pyexecd.stubs().health
    stub = pyexecd.stubs().health_grpc.HealthStub(srv.channel())
    try:
        res = stub.Check(h.HealthCheckRequest(service=""), timeout=10)
    except grpc.RpcError:
        return False
    return h.HealthCheckResponse.ServingStatus.Name(res.status) == "SERVING"


def test_a_server_that_started_without_the_engine_reads_the_index_later(deps, tmp_path):
    srv, ex = deps.start()
    res = ex.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert srv.stop() == 0
    # The engine's socket is not there when the next server starts...
    socket_path = tmp_path / "docker.sock"
    srv2, ex2 = deps.start("--docker-socket", str(socket_path), "--warm-pool", "0")
    assert "cached layer(s)" not in srv2.stderr_text()
    # ...and appears later: the first dependency run reads the index first.
    socket_path.symlink_to(os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"))
    assert pyexecd.wait_until(lambda: serving(srv2), 30)
    res = ex2.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert res.stdout == b"from the wheel\n", (res.error, res.stderr)
    assert "docker: deps: 1 cached layer(s)" in srv2.stderr_text()
    assert (builds(srv2), hits(srv2)) == (0, 1)


WAIT_FOR_EVICTION = """\
import os, time, biga
print('ready', flush=True)
start = set(os.listdir('/deps'))
seen = set()
while True:
    now = set(os.listdir('/deps'))
    seen |= now - start
    if seen and not seen & now:  # another layer came and was evicted again
        break
    time.sleep(0.02)
with open(biga.DATA, 'rb') as f:
    print('still there', len(f.read()))
"""


def test_eviction_is_lru_and_spares_a_layer_in_use(deps):
    srv, ex = deps.start("--deps-cache-mb", "1", "--max-concurrent", "2")
    a = ex.start(WAIT_FOR_EVICTION, requirements_txt="biga\n", config={"timeout_seconds": 120})
    out = b""
    for chunk in ex.stream(a.execution_id):  # its build's output on stderr, then "ready"
        assert not chunk.HasField("result"), chunk.result
        if chunk.stream == deps.pb.STREAM_STDOUT:
            out += chunk.data
        if out == b"ready\n":
            break

    # Layer b pushes the cache over 1 MiB; a is in use, so b itself goes.
    res = ex.run("import bigb\nprint('b ran')\n", requirements_txt="bigb\n")
    assert res.stdout == b"b ran\n", (res.error, res.stderr)
    res_a = ex.wait(a.execution_id)
    assert res_a.stdout == f"ready\nstill there {BIG}\n".encode(), (res_a.error, res_a.stderr)
    # The eviction's log line follows the deletion, which a saw.
    assert pyexecd.wait_until(lambda: "evicted 1 layer(s)" in srv.stderr_text(), 30)

    # Now a is unused and least recently used: b's rebuild evicts it.
    res = ex.run("import bigb\nprint('b again')\n", requirements_txt="bigb\n")
    assert res.stdout == b"b again\n", (res.error, res.stderr)
    assert builds(srv) == 3
    # Eviction follows the run's answer (the run's worker does it after).
    assert pyexecd.wait_until(lambda: srv.stderr_text().count("evicted 1 layer(s)") == 2, 30)
    res = ex.run("import biga\nprint('a again')\n", requirements_txt="biga\n")
    assert res.stdout == b"a again\n", (res.error, res.stderr)
    assert builds(srv) == 4, "a was evicted, so it is built again"


def test_requirements_from_a_loopback_simple_index(deps, tmp_path):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    wheels.make_wheel(index_dir, "indexed-pkg", modules={"indexed_pkg.py": "X = 'indexed'\n"})
    with wheels.SimpleIndex(str(index_dir)) as index:
        srv, ex = deps.start("--pip-index-url", index.url, "--deps-network", "host",
                             wheelhouse=False)
        res = ex.run("import indexed_pkg\nprint(indexed_pkg.X)\n",
                     requirements_txt="indexed-pkg\n")
        assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
        assert res.stdout == b"indexed\n", res.stderr
        assert any(p.startswith("/files/indexed_pkg-1.0") for p in index.requests), index.requests


def test_without_a_package_source_requirements_are_a_precondition(deps):
    srv, ex = deps.start(wheelhouse=False)
    with pytest.raises(grpc.RpcError) as e:
        ex.run(IMPORT_TINY, requirements_txt="tinypkg\n")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--wheelhouse" in e.value.details()


AUTO_PROJECT = {
    "main.py": "import os, json, sys\n"
               "import helper\n"
               "from mypkg import util\n"
               "import yaml\n"
               "print(helper.VALUE, util.X, yaml.FAKE, os.sep)\n",
    "helper.py": "from tinypkg import VALUE\n",
    "mypkg/__init__.py": "",
    "mypkg/util.py": "import collections.abc\nX = 'util'\n",
}


def test_auto_requirements_detect_third_party_imports(deps):
    wheels.make_wheel(deps.wheelhouse, "PyYAML", version="6.0",
                      modules={"yaml/__init__.py": "FAKE = 'yaml from the wheelhouse'\n"})
    srv, ex = deps.start("--auto-requirements", "1")
    res = ex.run(files=AUTO_PROJECT)
    assert pyexecd.status_name(res) == COMPLETED, (res.error, res.stderr)
    assert res.stdout == b"from the wheel util yaml from the wheelhouse /\n", res.stderr
    # Neither the standard library (os, json, sys, collections) nor the
    # project's own modules (helper, mypkg) became requirements.
    assert (b"pyexec: install: requirements detected from the project's imports: "
            b"pyyaml tinypkg\n") in res.stderr, res.stderr
    assert pyexecd.wait_until(lambda: "imports detected" in srv.stderr_text(), 30)

    # The same project again: detection and layer both remembered.
    res = ex.run(files=AUTO_PROJECT)
    assert res.stdout.startswith(b"from the wheel util"), (res.error, res.stderr)
    assert srv.stderr_text().count("imports detected") == 1
    assert (builds(srv), hits(srv)) == (1, 1)

    # "-" turns detection off for one request: nothing is installed.
    res = ex.run(files=AUTO_PROJECT, requirements_txt="-\n")
    assert pyexecd.status_name(res) == COMPLETED
    assert res.exit_code == 1
    assert b"ModuleNotFoundError: No module named 'tinypkg'" in res.stderr, res.stderr

    # An explicit line wins over the detected name.
    res = ex.run(files=AUTO_PROJECT, requirements_txt="tinypkg==1.0\n")
    assert res.stdout.startswith(b"from the wheel util"), (res.error, res.stderr)
    assert b"detected from the project's imports: pyyaml\n" in res.stderr, res.stderr
