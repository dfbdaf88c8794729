"""The server process and the service as a whole: health, unknown methods,
flags and environment, shutdown (docs/contract.md, "Binaries", "Shutdown", the
status-code table)."""

import signal
import subprocess
import threading

import grpc
import pytest

import pyexecd
from conftest import server_args


def health_status(health_stub, service=""):
    h = pyexecd.stubs().health
    resp = health_stub.Check(h.HealthCheckRequest(service=service), timeout=10)
    return h.HealthCheckResponse.ServingStatus.Name(resp.status)


def test_health_is_serving(health_stub):
    assert health_status(health_stub) == "SERVING"


def test_health_of_the_executor_service_is_serving(health_stub):
    assert health_status(health_stub, "pyexec.v1.ExecutorService") == "SERVING"


def test_health_not_serving_when_docker_is_unreachable(flags, instance, pb):
    args = server_args(flags, instance) + ["--docker-socket", "/nonexistent/docker.sock"]
    with pyexecd.Server(*args) as srv:
        s = pyexecd.stubs()
        assert health_status(s.health_grpc.HealthStub(srv.channel())) == "NOT_SERVING"
        stub = s.executor_grpc.ExecutorServiceStub(srv.channel())
        req = pb.ExecuteRequest(files=pyexecd.make_files({"main.py": "print(1)"}))
        with pytest.raises(grpc.RpcError) as e:
            stub.Execute(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert srv.stop() == 0


def test_not_serving_says_why_in_the_response_the_log_and_the_cli(flags, instance):
    """The reason travels as the Check response's trailing metadata
    pyexec-health-reason; the server logs it when health changes; `pyexec
    health` prints it after the status. The Docker error names the socket
    and what connect(2) said, not curl's "localhost port 80"."""
    why = "Docker engine at /nonexistent/docker.sock: connect: No such file or directory"
    args = server_args(flags, instance) + ["--docker-socket", "/nonexistent/docker.sock"]
    with pyexecd.Server(*args) as srv:
        s = pyexecd.stubs()
        health = s.health_grpc.HealthStub(srv.channel())
        resp, call = health.Check.with_call(s.health.HealthCheckRequest(), timeout=10)
        assert s.health.HealthCheckResponse.ServingStatus.Name(resp.status) == "NOT_SERVING"
        trailer = dict(call.trailing_metadata())
        assert why in trailer.get("pyexec-health-reason", ""), trailer
        assert "localhost" not in trailer["pyexec-health-reason"]

        logged = [line for line in srv.stderr_lines() if "health: NOT_SERVING: " in line]
        assert logged and why in logged[0], srv.stderr_text()[-2000:]

        cli = subprocess.run([pyexecd.cli_binary(), "--server", srv.address, "health"],
                             capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        assert cli.returncode == 1, cli.stderr
        assert cli.stdout.startswith("NOT_SERVING: "), cli.stdout
        assert why in cli.stdout
        assert srv.stop() == 0


def test_serving_has_no_reason(health_stub):
    s = pyexecd.stubs()
    resp, call = health_stub.Check.with_call(s.health.HealthCheckRequest(), timeout=10)
    assert s.health.HealthCheckResponse.ServingStatus.Name(resp.status) == "SERVING"
    assert "pyexec-health-reason" not in dict(call.trailing_metadata())


@pytest.mark.parametrize("method", [
    "/pyexec.v1.ExecutorService/NoSuchMethod",
    "/no.such.Service/Execute",
    "/grpc.health.v1.Health/NoSuchMethod",
])
def test_unknown_method_is_unimplemented_at_once(server, method):
    call = server.channel().unary_unary(method)
    with pytest.raises(grpc.RpcError) as e:
        # A hang would surface as DEADLINE_EXCEEDED.
        call(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unknown_streaming_method_is_unimplemented_at_once(server):
    call = server.channel().unary_stream("/pyexec.v1.ExecutorService/NoSuchStream")
    with pytest.raises(grpc.RpcError) as e:
        list(call(b"", timeout=5))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_sigterm_when_idle_exits_zero(flags, instance):
    with pyexecd.Server(*server_args(flags, instance)) as srv:
        assert health_status(pyexecd.stubs().health_grpc.HealthStub(srv.channel())) == "SERVING"
        assert srv.stop(signal.SIGTERM, timeout=30) == 0


def test_sigint_exits_zero(flags, instance):
    with pyexecd.Server(*server_args(flags, instance)) as srv:
        assert srv.stop(signal.SIGINT, timeout=30) == 0


def test_shutdown_refuses_new_calls_and_ends_running_executions(flags, instance, pb,
                                                                our_containers):
    """SIGTERM with an execution running: health turns NOT_SERVING, calls
    made after shutdown began get UNAVAILABLE, the running execution ends
    FAILED/SANDBOX_ERROR after the grace period, the server exits 0 and no
    container remains."""
    with pyexecd.Server(*server_args(flags, instance, grace=1)) as srv:
        s = pyexecd.stubs()
        stub = s.executor_grpc.ExecutorServiceStub(srv.channel())
        health = s.health_grpc.HealthStub(srv.channel())
        req = pb.ExecuteRequest(files=pyexecd.make_files(
            {"main.py": "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"}))
        setattr(req, "async", True)
        eid = stub.Execute(req, timeout=30).execution_id
        stream = stub.StreamOutput(pb.StreamOutputRequest(execution_id=eid), timeout=120)
        assert pyexecd.read_until(stream, b"ready\n") == b"ready\n"

        watch = health.Watch(s.health.HealthCheckRequest(service=""), timeout=60)
        assert s.health.HealthCheckResponse.ServingStatus.Name(next(watch).status) == "SERVING"

        srv.proc.send_signal(signal.SIGTERM)
        # The shutdown has begun once health says so (or the Watch ends).
        try:
            update = next(watch)
            assert s.health.HealthCheckResponse.ServingStatus.Name(update.status) == "NOT_SERVING"
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

        with pytest.raises(grpc.RpcError) as e:
            stub.GetExecution(pb.GetExecutionRequest(execution_id=eid), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        fresh = s.executor_grpc.ExecutorServiceStub(pyexecd.channel(srv.address))
        with pytest.raises(grpc.RpcError) as e:
            fresh.Execute(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE

        # The stream opened before the shutdown ends with the terminal result,
        # or is cancelled when the server cancels its remaining calls.
        final = None
        try:
            for chunk in stream:
                if chunk.HasField("result"):
                    final = chunk.result
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        if final is not None:
            assert pyexecd.status_name(final) == "EXECUTION_STATUS_FAILED"
            assert pyexecd.reason_name(final) == "TERMINATION_REASON_SANDBOX_ERROR"
            assert "shut" in final.error.lower()

        assert srv.stop(timeout=60) == 0
        assert not pyexecd.containers_mentioning(eid[len("exe_"):])
    assert pyexecd.wait_until(lambda: not our_containers(), timeout=15)


def test_bad_flag_exits_2_with_a_message():
    p = subprocess.run([pyexecd.server_binary(), "--no-such-flag"], capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert b"no-such-flag" in p.stderr


def test_bad_flag_value_exits_2_with_a_message():
    p = subprocess.run([pyexecd.server_binary(), "--listen"], capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert b"listen" in p.stderr


def test_bad_environment_value_exits_2_naming_the_variable(flags):
    if not flags.output_limit:
        pytest.skip("the server has no output-limit flag to give a bad value")
    env_name = "PYEXEC_" + flags.output_limit[2:].upper().replace("-", "_")
    p = subprocess.run([pyexecd.server_binary(), "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
                       env={"PATH": "/usr/bin:/bin", env_name: "not-a-number"})
    assert p.returncode == 2
    assert env_name.encode() in p.stderr


def test_help_exits_zero_and_lists_the_contract_flags():
    p = subprocess.run([pyexecd.server_binary(), "--help"], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0
    text = p.stdout + p.stderr
    for flag in (b"--listen", b"--docker-socket", b"--default-image"):
        assert flag in text


def test_listen_address_from_environment(flags, instance):
    with pyexecd.Server(*server_args(flags, instance), listen=None,
                        env={"PYEXEC_LISTEN": "127.0.0.1:0"}) as srv:
        assert srv.address.startswith("127.0.0.1:")
        assert not srv.address.endswith(":0")
        health = pyexecd.stubs().health_grpc.HealthStub(srv.channel())
        assert health_status(health) == "SERVING"
        assert srv.stop() == 0


def test_flag_wins_over_environment(flags, instance):
    with pyexecd.Server(*server_args(flags, instance), listen="127.0.0.1:0",
                        env={"PYEXEC_LISTEN": "127.0.0.1:1"}) as srv:
        assert not srv.address.endswith(":1")
        assert srv.stop() == 0


def test_random_bytes_as_requests_are_rejected_and_server_stays_healthy(server, health_stub):
    import random

    rnd = random.Random(20240601)
    payloads = [b"\xff" * 16, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05abc"]
    payloads += [rnd.randbytes(n) for n in (1, 7, 64, 1000, 65536)]
    for method in ("Execute", "GetExecution", "Kill"):
        call = server.channel().unary_unary(f"/pyexec.v1.ExecutorService/{method}")
        for data in payloads:
            with pytest.raises(grpc.RpcError) as e:
                call(data, timeout=30)
            assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                                      grpc.StatusCode.INTERNAL), (method, data[:16])
    stream = server.channel().unary_stream("/pyexec.v1.ExecutorService/StreamOutput")
    for data in payloads:
        with pytest.raises(grpc.RpcError) as e:
            list(stream(data, timeout=30))
        assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)
    assert health_status(health_stub) == "SERVING"


def test_concurrent_health_checks(server):
    """Many clients at once all get an answer (a smoke test of the queue)."""
    errors = []

    def check():
        try:
            h = pyexecd.stubs().health_grpc.HealthStub(pyexecd.channel(server.address))
            assert health_status(h) == "SERVING"
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=check) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
