"""Fixtures for the end-to-end tests: a real pyexecd (the binary Bazel built)
on a free loopback port, talking to the real Docker engine.

Fixtures:
  server       the session's Server (tests/support/pyexecd.py), started with
               a small output cap when the server has a flag for it
  pb           the generated executor_pb2 module
  stub         ExecutorServiceStub on the session server
  health_stub  HealthStub on the session server
  ex           a Runner: builds requests, runs them, and kills whatever a
               test left running when it ends
A session-wide check fails the run if any container started by this
session's servers is still there at the end.

Environment: PYEXECD_BIN (server binary), PYEXEC_CLI_BIN (the `pyexec` CLI),
PYEXEC_TEST_IMAGE (sandbox image, default pyexec/python:3.11),
PYEXEC_TEST_ISOLATION (comma-separated --isolation modes the session server
runs in, default "container,namespace"), PYEXEC_TEST_RUNTIME (the OCI
runtime every server of the session uses, e.g. runsc; default: the
engine's).

The runtime: with PYEXEC_TEST_RUNTIME set, every pyexecd the suite starts
gets it (PYEXEC_RUNTIME in the environment they inherit), and the whole
session is skipped, saying why, when the engine has no such runtime.
scripts/test runs a representative subset so under runsc; a test whose
subject gVisor does differently says so with `runtime_differs` (skipped
under that runtime, with the reason).

Both isolation modes: the session `server` fixture is parametrised over
them, so every test that uses it (through `stub`, `ex`, ...) runs once per
mode, with the mode in its id ([container], [namespace]). Tests that start
servers of their own run in the container mode only, unless they pass
`isolation` to server_args(); tests/e2e/test_namespace.py holds what only
the namespace mode has.
"""

import os
import pathlib
import signal
import sys
import uuid

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402

IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"
ISOLATIONS = (os.environ.get("PYEXEC_TEST_ISOLATION") or "container,namespace").split(",")
RUNTIME = os.environ.get("PYEXEC_TEST_RUNTIME") or ""
if RUNTIME:
    os.environ["PYEXEC_RUNTIME"] = RUNTIME


def runtime_differs(runtime, reason):
    """Marks a test whose subject `runtime` does differently (documented in
    docs/security.md): skipped when the suite runs under it."""
    return pytest.mark.skipif(RUNTIME == runtime, reason=f"under {runtime}: {reason}")


def pytest_collection_modifyitems(config, items):
    if not RUNTIME:
        return
    try:
        status, info = pyexecd.docker_api("GET", "/info")
    except OSError as e:
        status, info = 0, str(e)
    if status != 200:
        why = f"the Docker engine did not answer GET /info: {info}"
    elif RUNTIME not in (info.get("Runtimes") or {}):
        why = (f"the engine has no runtime {RUNTIME!r} (it has "
               f"{', '.join(sorted(info.get('Runtimes') or {}))}); scripts/setup --with-gvisor "
               "registers runsc (docs/operations.md#gvisor-runsc)")
    else:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=why))
# The session server's output cap when the server lets us set one: small, so
# the output-limit test floods little. Otherwise the contract's default.
SMALL_OUTPUT_LIMIT = 1024 * 1024
DEFAULT_OUTPUT_LIMIT = 16 * 1024 * 1024


class Flags:
    """Server flags beyond the three docs/contract.md names, found in --help (None when the
    server has no such flag). Adapt the keywords here if names change."""

    def __init__(self):
        self.output_limit = pyexecd.find_flag("output", "limit")
        self.shutdown_grace = pyexecd.find_flag("grace")
        self.instance = pyexecd.find_flag("instance")
        self.log_level = pyexecd.find_flag("log", "level")


@pytest.fixture(scope="session")
def flags():
    if not os.access(pyexecd.server_binary(), os.X_OK):
        pytest.fail(f"server binary {pyexecd.server_binary()} missing: "
                    "run `bazel build //server:pyexecd` or set PYEXECD_BIN")
    return Flags()


@pytest.fixture(scope="session")
def instance():
    """A label value naming this session's servers' containers (used only
    when the server has an --instance flag)."""
    return f"e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def server_args(flags, instance, output_limit=None, grace=None, isolation=None):
    """Arguments every test server gets: the image, our instance label, and
    optionally an output cap, a shutdown grace period (seconds) and an
    --isolation mode."""
    args = ["--default-image", IMAGE]
    if isolation:
        args += ["--isolation", isolation]
    if flags.instance:
        args += [flags.instance, instance]
    if output_limit is not None and flags.output_limit:
        args += [flags.output_limit, str(output_limit)]
    if grace is not None and flags.shutdown_grace:
        args += [flags.shutdown_grace, str(grace)]
    return args


@pytest.fixture(scope="session")
def our_containers(flags, instance):
    """A function listing the containers this session's servers created (by
    instance label when possible, else every pyexecd container that was not
    there before the session)."""
    before = {c["Id"] for c in pyexecd.containers()}

    def list_ours():
        found = []
        for c in pyexecd.containers():
            if c["Id"] in before:
                continue
            if flags.instance and instance not in (c.get("Labels") or {}).values():
                continue
            found.append(c)
        return found

    return list_ours


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind(our_containers):
    yield
    # Removal after a cancelled call may trail the call's end by a moment.
    if not pyexecd.wait_until(lambda: not our_containers(), timeout=15):
        names = [(c.get("Names"), c.get("State")) for c in our_containers()]
        pytest.fail(f"containers left behind after the e2e suite: {names}")


@pytest.fixture(scope="session", params=ISOLATIONS)
def isolation(request):
    """The session server's --isolation mode (see the top)."""
    return request.param


@pytest.fixture(scope="session")
def server(flags, instance, isolation, no_container_left_behind):
    limit = SMALL_OUTPUT_LIMIT if flags.output_limit else None
    with pyexecd.Server(*server_args(flags, instance, output_limit=limit,
                                     isolation=isolation)) as srv:
        srv.output_limit = limit or DEFAULT_OUTPUT_LIMIT
        srv.isolation = isolation
        yield srv
        if srv.proc.poll() is not None:
            pytest.fail(f"the session server died (exit {srv.proc.returncode}); "
                        f"stderr: {srv.stderr_text()[-2000:]}")
        # A clean shutdown exits 0; under AddressSanitizer a leak or memory
        # error makes this fail too.
        code = srv.stop(signal.SIGTERM, timeout=60)
        if code != 0:
            pytest.fail(f"the session server exited {code} on SIGTERM; "
                        f"stderr: {srv.stderr_text()[-3000:]}")


@pytest.fixture(scope="session")
def pb():
    return pyexecd.stubs().executor


@pytest.fixture(scope="session")
def stub(server):
    return pyexecd.stubs().executor_grpc.ExecutorServiceStub(server.channel())


@pytest.fixture(scope="session")
def health_stub(server):
    return pyexecd.stubs().health_grpc.HealthStub(server.channel())


class Runner:
    """Builds ExecuteRequests and runs them on one server; remembers every
    execution id so that close() can kill what a test left running."""

    def __init__(self, stub, pb):
        self.stub = stub
        self.pb = pb
        self.ids = []

    def request(self, code=None, files=None, tar=None, async_=False, request_id="",
                config=None, **metadata):
        """`code` is main.py's text; `files` a {path: content} dict sent as
        File messages; `tar` raw archive bytes. `config` is a dict of
        ExecutionConfig fields; other keywords are Metadata fields."""
        if code is not None:
            files = {"main.py": code}
        md = self.pb.Metadata(**metadata)
        if config:
            md.config.CopyFrom(self.pb.ExecutionConfig(**config))
        req = self.pb.ExecuteRequest(metadata=md, request_id=request_id)
        setattr(req, "async", async_)
        if files is not None:
            req.files.extend(pyexecd.make_files(files))
        if tar is not None:
            req.tar = tar
        return req

    def execute(self, req, timeout=120):
        res = self.stub.Execute(req, timeout=timeout)
        if res.execution_id:
            self.ids.append(res.execution_id)
        return res

    def run(self, code=None, timeout=120, **kw):
        """Runs synchronously; returns the terminal ExecutionResult."""
        return self.execute(self.request(code, **kw), timeout=timeout)

    def start(self, code=None, **kw):
        """Starts asynchronously; returns the first ExecutionResult."""
        return self.execute(self.request(code, async_=True, **kw), timeout=30)

    def get(self, execution_id):
        return self.stub.GetExecution(self.pb.GetExecutionRequest(execution_id=execution_id),
                                      timeout=10)

    def kill(self, execution_id):
        return self.stub.Kill(self.pb.KillRequest(execution_id=execution_id), timeout=30)

    def stream(self, execution_id, offset=0, timeout=120):
        return self.stub.StreamOutput(
            self.pb.StreamOutputRequest(execution_id=execution_id, offset=offset),
            timeout=timeout)

    def wait(self, execution_id, timeout=120):
        return pyexecd.wait_terminal(self.stub, execution_id, timeout=timeout)

    def close(self):
        for eid in self.ids:
            try:
                self.kill(eid)
            except grpc.RpcError:
                pass


@pytest.fixture
def ex(stub, pb):
    runner = Runner(stub, pb)
    yield runner
    runner.close()


def rpc_code(excinfo):
    """The grpc.StatusCode of a pytest.raises(grpc.RpcError) result."""
    return excinfo.value.code()
