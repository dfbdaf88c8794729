"""RPC-layer behaviour over the fake back-end: every contract point that
does not need a real container. Each test names the behaviour it asserts."""

import os
import signal
import threading
import time

import grpc
import pytest

S = "EXECUTION_STATUS_"
R = "TERMINATION_REASON_"


def status(fake, res):
    return fake.pb.ExecutionStatus.Name(res.status)


def reason(fake, res):
    return fake.pb.TerminationReason.Name(res.reason)


def read_all(fake, execution_id, offset=0):
    data, chunks, final = [], [], None
    for c in fake.stream(execution_id, offset):
        if c.HasField("result"):
            final = c
            break
        chunks.append(c)
        data.append(c.data)
    return b"".join(data), chunks, final


# ---- Execute ----

def test_sync_execute_returns_terminal_result_with_output(fake):
    res = fake.run("print:hello\n", "stderr:warn\n", "exit:3")
    assert status(fake, res) == S + "COMPLETED"
    assert reason(fake, res) == R + "EXITED"
    assert res.exit_code == 3
    assert res.stdout == b"hello\n" and res.stderr == b"warn\n"
    assert res.execution_id.startswith("exe_") and len(res.execution_id) == 40
    assert res.HasField("started_at") and res.HasField("finished_at")
    assert res.duration_ms >= 0


def test_async_execute_returns_at_once_then_get_and_kill(fake):
    res = fake.submit("print:x", "sleep")
    assert status(fake, res) in (S + "PENDING", S + "RUNNING")
    got = fake.get(res.execution_id)
    assert status(fake, got) in (S + "PENDING", S + "RUNNING")
    killed = fake.kill(res.execution_id)
    assert status(fake, killed) == S + "KILLED"
    assert reason(fake, killed) == R + "KILLED"
    assert fake.kill(res.execution_id) == killed  # idempotent, unchanged
    assert fake.get(res.execution_id).status == killed.status


def test_kill_after_exit_leaves_the_result_unchanged(fake):
    res = fake.run("print:done", "exit:0")
    assert fake.kill(res.execution_id) == res


@pytest.mark.parametrize("step,want_status,want_reason", [
    ("timeout", "COMPLETED", "TIMEOUT"),
    ("oom", "COMPLETED", "MEMORY_LIMIT"),
    ("fail", "FAILED", "SANDBOX_ERROR"),
    ("lost", "FAILED", "LOST"),
])
def test_outcomes_are_classified(fake, step, want_status, want_reason):
    res = fake.run(step)
    assert status(fake, res) == S + want_status
    assert reason(fake, res) == R + want_reason
    if want_status == "FAILED":
        assert res.error


def test_missing_image_is_failed_precondition_for_sync_and_failed_for_async(fake):
    with pytest.raises(grpc.RpcError) as e:
        fake.run("noimage")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    res = fake.submit("noimage")
    res = fake.get(res.execution_id) if status(fake, res) != S + "FAILED" else res
    _, _, final = read_all(fake, res.execution_id)
    assert status(fake, final.result) == S + "FAILED"
    assert final.result.error


def test_output_cap_truncates_and_kills(fake_factory):
    fake = fake_factory("--output-limit-bytes", "1000")
    res = fake.run("flood:100000", "sleep")
    assert status(fake, res) == S + "COMPLETED"
    assert reason(fake, res) == R + "OUTPUT_LIMIT"
    assert res.output_truncated
    assert len(res.stdout) == 1000
    assert res.stdout == bytes((ord("a") + i % 26) for i in range(1000))


def test_stdin_reaches_the_job(fake):
    res = fake.run("stdin", stdin=b"\x00\xffbinary")
    assert res.stdout == b"\x00\xffbinary"


def test_request_id_returns_the_same_execution(fake):
    a = fake.submit("sleep", request_id="job-1")
    b = fake.submit("sleep", request_id="job-1")
    assert a.execution_id == b.execution_id
    c = fake.submit("sleep", request_id="job-2")
    assert c.execution_id != a.execution_id
    for r in (a, c):
        fake.kill(r.execution_id)
    # The same request sync (async aside) gets the same, now terminal, execution.
    d = fake.run("sleep", request_id="job-1")
    assert d.execution_id == a.execution_id
    assert status(fake, d) == S + "KILLED"


def test_request_id_with_other_content_is_already_exists(fake):
    secret = fake.run("print:secret output", request_id="job-1", timeout_seconds=30)
    assert secret.stdout == b"secret output"
    pb = fake.pb
    others = [
        fake.request("print:other", request_id="job-1", timeout_seconds=30),   # other code path
        fake.request("print:secret output", request_id="job-1"),               # other limits
        fake.request("print:secret output", request_id="job-1", timeout_seconds=30,
                     stdin=b"x"),                                              # other stdin
    ]
    other_file = fake.request("print:secret output", request_id="job-1", timeout_seconds=30)
    other_file.files[0].content = b"print(1)"                                   # other project
    others.append(other_file)
    for req in others:
        for async_ in (False, True):
            setattr(req, "async", async_)
            with pytest.raises(grpc.RpcError) as e:
                fake.stub.Execute(req, timeout=10)
            assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS, req
            assert "request_id" in e.value.details()
            assert secret.execution_id not in e.value.details()
    # The same content still finds it, sync and async.
    same = fake.request("print:secret output", request_id="job-1", timeout_seconds=30)
    assert fake.stub.Execute(same, timeout=10).stdout == b"secret output"
    setattr(same, "async", True)
    assert fake.stub.Execute(same, timeout=10).execution_id == secret.execution_id
    assert pb.ExecutionStatus.Name(fake.get(secret.execution_id).status) == S + "COMPLETED"


def test_admission_limit_is_resource_exhausted(fake_factory):
    fake = fake_factory("--max-concurrent", "1", "--max-queue", "1")
    a = fake.submit("sleep")
    b = fake.submit("sleep")
    with pytest.raises(grpc.RpcError) as e:
        fake.submit("sleep")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status(fake, fake.kill(b.execution_id)) == S + "KILLED"  # killed while queued
    assert status(fake, fake.kill(a.execution_id)) == S + "KILLED"
    assert status(fake, fake.run("exit:0")) == S + "COMPLETED"  # admitted again


def test_sync_call_whose_deadline_passes_kills_its_execution(fake):
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(fake.request("sleep", request_id="deadline-1"), timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    again = fake.submit("sleep", request_id="deadline-1")
    _, _, final = read_all(fake, again.execution_id)
    assert status(fake, final.result) == S + "KILLED"
    assert reason(fake, final.result) == R + "CLIENT_CANCELLED"


def test_retention_expires_finished_executions(fake_factory):
    fake = fake_factory("--retention-s", "1")
    res = fake.run("exit:0")
    assert fake.get(res.execution_id).execution_id == res.execution_id
    deadline = time.monotonic() + 10
    while True:
        try:
            fake.get(res.execution_id)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
            break
        assert time.monotonic() < deadline, "not expired after 10 s"
        time.sleep(0.1)
    # Nor is it listed any more.
    assert list(list_all(fake).executions) == []


# ---- validation ----

@pytest.mark.parametrize("field,value,needle", [
    ("timeout_seconds", 999999, "timeout_seconds"),
    ("memory_mb", 10 ** 7, "memory_mb"),
    ("disk_mb", 10 ** 7, "disk_mb"),
    ("cpu_shares", 10 ** 7, "cpu_shares"),
    ("timeout_seconds", -1, "timeout_seconds"),
    ("memory_mb", -5, "memory_mb"),
])
def test_limits_out_of_range_name_the_field(fake, field, value, needle):
    with pytest.raises(grpc.RpcError) as e:
        fake.run("exit:0", **{field: value})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.details()


@pytest.mark.parametrize("env,needle", [
    ("NOEQUALS", "KEY=value"),
    ("1BAD=x", "not a valid variable name"),
    ("PYTHONUNBUFFERED=0", "cannot be overridden"),
    ("PATH=/evil", "cannot be overridden"),
])
def test_bad_env_vars_are_rejected(fake, env, needle):
    req = fake.request("exit:0")
    req.metadata.env_vars.append(env)
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.details()


def test_code_input_rules(fake):
    pb = fake.pb
    cases = [
        pb.ExecuteRequest(),  # no code
        pb.ExecuteRequest(files=[pb.File(path="../x.py", content=b"")]),
        pb.ExecuteRequest(files=[pb.File(path="/etc/x.py", content=b"")]),
        pb.ExecuteRequest(files=[pb.File(path="a.txt", content=b"")]),  # no entrypoint
        pb.ExecuteRequest(tar=b"not a tar" * 100, files=[pb.File(path="m.py")]),
        pb.ExecuteRequest(tar=b"\x00garbage" * 200),
        pb.ExecuteRequest(metadata=pb.Metadata(entrypoint="missing.py"),
                          files=[pb.File(path="main.py", content=b"")]),
    ]
    for req in cases:
        with pytest.raises(grpc.RpcError) as e:
            fake.stub.Execute(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req


def test_nul_in_a_string_field_is_rejected(fake):
    req = fake.request("exit:0")
    req.metadata.script_args.append("a\x00b")
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_random_bytes_as_a_request(fake):
    raw = fake.channel.unary_unary("/pyexec.v1.ExecutorService/Execute",
                                   request_serializer=None, response_deserializer=None)
    for blob in (os.urandom(64), b"\xff" * 100, b"\x0a\xff\xff\xff\xff\x0f"):
        with pytest.raises(grpc.RpcError) as e:
            raw(blob, timeout=10)
        assert e.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)
    assert status(fake, fake.run("exit:0")) == S + "COMPLETED"


def test_message_above_the_receive_limit_is_resource_exhausted(fake_factory):
    fake = fake_factory("--max-message-bytes", "4096")
    req = fake.request("exit:0")
    req.files[0].content = b"#" * 10000
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("bad", ["", "x" * 10240, "../../etc/passwd",
                                 "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d47Z"])
def test_malformed_ids_are_invalid_argument(fake, bad):
    for call in (fake.get, fake.kill):
        with pytest.raises(grpc.RpcError) as e:
            call(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        list(fake.stream(bad))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_ids_are_not_found(fake):
    unknown = "exe_1b4e28ba-2fa1-4d2e-8c9f-0e02b2c3d479"
    for call in (fake.get, fake.kill):
        with pytest.raises(grpc.RpcError) as e:
            call(unknown)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        list(fake.stream(unknown))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_method_and_service_are_unimplemented_at_once(fake):
    for path in ("/pyexec.v1.ExecutorService/Nope", "/no.such.Service/Call"):
        call = fake.channel.unary_unary(path)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            call(b"", timeout=30)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The deadline is 30 s: an answer at all before it proves there was no hang.
        assert time.monotonic() - t0 < 30


# ---- StreamOutput ----

def test_stream_replays_with_offsets_then_the_final_result(fake):
    res = fake.run("print:ab", "stderr:cd", "print:e")
    data, chunks, final = read_all(fake, res.execution_id)
    assert data == b"abcde"
    assert [(c.offset, c.data) for c in chunks] == [(0, b"ab"), (2, b"cd"), (4, b"e")]
    assert [fake.pb.Stream.Name(c.stream) for c in chunks] == [
        "STREAM_STDOUT", "STREAM_STDERR", "STREAM_STDOUT"]
    assert final.offset == 5
    assert final.result.execution_id == res.execution_id
    assert status(fake, final.result) == S + "COMPLETED"


def test_stream_resumes_from_an_offset_inside_a_chunk(fake):
    res = fake.run("print:ab", "stderr:cd", "print:e")
    data, chunks, _ = read_all(fake, res.execution_id, offset=3)
    assert data == b"de"
    assert chunks[0].offset == 3


def test_stream_offset_at_end_gives_only_the_result(fake):
    res = fake.run("print:abc")
    data, chunks, final = read_all(fake, res.execution_id, offset=3)
    assert data == b"" and final is not None


def test_stream_offset_past_end_is_out_of_range_and_negative_is_invalid(fake):
    res = fake.run("print:abc")
    with pytest.raises(grpc.RpcError) as e:
        list(fake.stream(res.execution_id, offset=4))
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.RpcError) as e:
        list(fake.stream(res.execution_id, offset=-1))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stream_follows_live_output_until_killed(fake):
    res = fake.submit("print:first", "sleep")
    it = fake.stream(res.execution_id)
    first = next(it)
    assert first.data == b"first"  # arrived while the job still runs
    assert status(fake, fake.get(res.execution_id)) == S + "RUNNING"
    fake.kill(res.execution_id)
    rest = list(it)
    assert rest[-1].HasField("result")
    assert status(fake, rest[-1].result) == S + "KILLED"


def test_stream_on_a_running_execution_waits_for_a_future_offset(fake):
    res = fake.submit("print:abc", "sleep")
    assert next(fake.stream(res.execution_id)).data == b"abc"  # it runs
    it = fake.stream(res.execution_id, offset=10)
    # The reader waits (no message, no error) while the job runs ...
    assert status(fake, fake.get(res.execution_id)) == S + "RUNNING"
    fake.kill(res.execution_id)
    # ... and once the log ends at 3 < 10 it gets OUT_OF_RANGE, not a hang.
    with pytest.raises(grpc.RpcError) as e:
        list(it)
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_fifty_readers_get_identical_bytes(fake):
    res = fake.submit("print:head-", "flood:200000", "sleep")
    results = [None] * 50
    errors = []

    def reader(i):
        try:
            results[i] = read_all(fake, res.execution_id)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    # Wait until the flood is fully in the log, then end the job.
    deadline = time.monotonic() + 30
    while len(fake.get(res.execution_id).stdout) < 200005:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fake.kill(res.execution_id)
    for t in threads:
        t.join(60)
    assert not errors
    expected = b"head-" + bytes((ord("a") + i % 26) for i in range(200000))
    for data, _, final in results:
        assert data == expected
        assert status(fake, final.result) == S + "KILLED"


def test_a_stalled_reader_does_not_block_the_job_or_other_readers(fake):
    res = fake.submit("flood:3000000", "exit:0")
    stalled = fake.stream(res.execution_id)
    next(stalled)  # opened, then never read again
    data, _, final = read_all(fake, res.execution_id)
    assert len(data) == 3000000
    assert status(fake, final.result) == S + "COMPLETED"
    stalled.cancel()


def test_cancelled_readers_are_cleaned_up(fake):
    res = fake.submit("print:x", "sleep")
    for _ in range(200):
        it = fake.stream(res.execution_id)
        next(it)
        it.cancel()
    # Still serving, and a full reader works.
    fake.kill(res.execution_id)
    data, _, final = read_all(fake, res.execution_id)
    assert data == b"x" and final is not None


def test_reader_limit_is_resource_exhausted(fake_factory):
    fake = fake_factory("--max-stream-readers", "2")
    res = fake.submit("print:x", "sleep")
    streams = []
    try:
        for _ in range(2):
            it = fake.stream(res.execution_id)
            next(it)
            streams.append(it)
        with pytest.raises(grpc.RpcError) as e:
            next(fake.stream(res.execution_id))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 readers (limit 2)" in e.value.details()
    finally:
        for it in streams:
            it.cancel()
        fake.kill(res.execution_id)


def test_readers_filling_the_limit_never_lock_out_kill_or_sync_execute(fake):
    """The default --max-stream-readers (256) readers, over four connections:
    exactly 256 are admitted, and Kill and a sync Execute with the same
    request_id still succeed (they used to share the readers' 256 + 64 slots)."""
    rid = "held-by-readers"
    res = fake.submit("print:x", "sleep", request_id=rid)
    # Own subchannel pools: four real connections (at most 256 streams each).
    channels = [fake.server.channel(**{"grpc.use_local_subchannel_pool": 1}) for _ in range(4)]
    stubs = [fake.grpc_mod.ExecutorServiceStub(c) for c in channels]
    req = fake.pb.StreamOutputRequest(execution_id=res.execution_id)
    streams = []
    refused = None
    try:
        for i in range(300):
            it = stubs[i % 4].StreamOutput(req, timeout=30)
            try:
                next(it)  # the "x": the reader is registered
            except grpc.RpcError as e:
                refused = e
                break
            streams.append(it)
        assert len(streams) == 256
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "256 readers (limit 256)" in refused.details()

        sync = {}
        waiter = threading.Thread(target=lambda: sync.update(
            res=fake.stub.Execute(fake.request("print:x", "sleep", request_id=rid), timeout=30)))
        waiter.start()
        killed = fake.kill(res.execution_id)
        waiter.join(30)
        assert status(fake, killed) == S + "KILLED"
        assert sync["res"].execution_id == res.execution_id
        assert status(fake, sync["res"]) == S + "KILLED"
        # Every reader still gets the end.
        for it in streams:
            assert list(it)[-1].HasField("result")
    finally:
        for it in streams:
            it.cancel()
        for c in channels:
            c.close()


# ---- health and shutdown ----

def test_health_check_serving(fake):
    h = __import__("pyexecd").stubs()
    stub = h.health_grpc.HealthStub(fake.channel)
    resp = stub.Check(h.health.HealthCheckRequest(), timeout=10)
    assert h.health.HealthCheckResponse.ServingStatus.Name(resp.status) == "SERVING"
    resp = stub.Check(h.health.HealthCheckRequest(service="pyexec.v1.ExecutorService"), timeout=10)
    assert resp.status == h.health.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        stub.Check(h.health.HealthCheckRequest(service="nope"), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_shutdown_with_calls_in_flight(fake_factory):
    fake = fake_factory("--shutdown-grace-s", "0")
    h = __import__("pyexecd").stubs()
    watch = h.health_grpc.HealthStub(fake.channel).Watch(h.health.HealthCheckRequest(),
                                                         timeout=30)
    assert next(watch).status == h.health.HealthCheckResponse.SERVING
    running = fake.submit("print:x", "sleep")
    stream = fake.stream(running.execution_id)
    assert next(stream).data == b"x"
    sync_result = {}

    def sync_call():
        try:
            sync_result["res"] = fake.run("sleep")
        except grpc.RpcError as e:
            sync_result["err"] = e

    t = threading.Thread(target=sync_call)
    t.start()
    assert fake.server.proc.poll() is None
    fake.server.proc.send_signal(signal.SIGTERM)
    rest = list(stream)
    assert rest[-1].HasField("result")
    assert status(fake, rest[-1].result) == S + "FAILED"
    assert reason(fake, rest[-1].result) == R + "SANDBOX_ERROR"
    assert "shut" in rest[-1].result.error
    t.join(30)
    assert "res" in sync_result or "err" in sync_result
    if "res" in sync_result:
        assert status(fake, sync_result["res"]) == S + "FAILED"
    assert fake.server.proc.wait(30) == 0


def test_explicitly_encoded_default_fields_are_accepted(fake):
    # Some encoders (protobufjs) write fields set to their default value,
    # e.g. offset 0 and an empty string: legal protobuf, must be accepted.
    res = fake.run("print:x")
    raw = fake.channel.unary_stream("/pyexec.v1.ExecutorService/StreamOutput",
                                    request_serializer=None, response_deserializer=None)
    eid = res.execution_id.encode()
    msg = b"\x0a" + bytes([len(eid)]) + eid + b"\x10\x00"  # execution_id, offset=0 explicit
    out = list(raw(msg, timeout=10))
    assert len(out) == 2  # the chunk "x" and the final result
    get = fake.channel.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=None, response_deserializer=None)
    assert get(b"\x0a\x00", timeout=10) == b"\x08\x01"  # service="" explicit -> SERVING


def test_nul_in_a_nested_string_field_is_rejected(fake):
    req = fake.request("exit:0")
    req.files[0].path = "ma\x00in.py"
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NUL" in e.value.details()


@pytest.mark.memory_only("the retained-output budget bounds this process's memory")
def test_retained_output_budget_drops_the_oldest_finished_execution(fake_factory):
    fake = fake_factory("--max-retained-bytes", "1500")
    first = fake.run("print:" + "a" * 1000)
    second = fake.run("print:" + "b" * 1000)
    assert fake.get(first.execution_id).stdout == b"a" * 1000  # 2000 held, until ...
    fake.run("print:c")  # ... the next execution is admitted: the oldest goes
    with pytest.raises(grpc.RpcError) as e:
        fake.get(first.execution_id)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert fake.get(second.execution_id).stdout == b"b" * 1000


# ---- ListExecutions ----

def list_all(fake, **kw):
    return fake.stub.ListExecutions(fake.pb.ListExecutionsRequest(**kw), timeout=10)


def test_list_executions_pages_newest_first_without_output(fake):
    ids = [fake.run("print:out%d" % i, "stderr:err", "exit:0").execution_id for i in range(5)]
    first = list_all(fake, page_size=2)
    assert [e.execution_id for e in first.executions] == ids[::-1][:2]
    assert first.next_page_token
    for e in first.executions:
        assert status(fake, e) == S + "COMPLETED" and e.HasField("finished_at")
        assert e.stdout == b"" and e.stderr == b""
    second = list_all(fake, page_size=2, page_token=first.next_page_token)
    third = list_all(fake, page_size=2, page_token=second.next_page_token)
    assert [e.execution_id for e in list(second.executions) + list(third.executions)] == ids[::-1][2:]
    assert third.next_page_token == ""


def test_list_executions_filters_by_status_and_defaults_to_fifty(fake):
    done = fake.run("exit:0").execution_id
    running = fake.submit("print:x", "sleep").execution_id
    got = list_all(fake, status=fake.pb.EXECUTION_STATUS_COMPLETED)
    assert [e.execution_id for e in got.executions] == [done]
    killed = fake.kill(running)
    got = list_all(fake, status=fake.pb.EXECUTION_STATUS_KILLED)
    assert [e.execution_id for e in got.executions] == [killed.execution_id]
    for _ in range(55):
        fake.run("exit:0")
    page = list_all(fake)
    assert len(page.executions) == 50 and page.next_page_token


@pytest.mark.parametrize("kw,needle", [
    ({"page_size": 1001}, "page_size"),
    ({"page_size": -1}, "page_size"),
    ({"page_token": "nonsense"}, "page_token"),
])
def test_list_executions_bad_requests_are_invalid_argument(fake, kw, needle):
    with pytest.raises(grpc.RpcError) as e:
        list_all(fake, **kw)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.details()


def test_list_executions_at_the_maximum_page_size(fake):
    fake.run("exit:0")
    assert len(list_all(fake, page_size=1000).executions) == 1


# ---- Eval ----

def eval_req(fake, *steps, code="1 + 1\n", **kw):
    env = kw.pop("env_vars", []) + ["FAKE_STEP=" + s for s in steps]
    return fake.pb.EvalRequest(code=code, env_vars=env, **kw)


def test_eval_runs_in_eval_mode_and_returns_the_report(fake):
    res = fake.stub.Eval(eval_req(fake, "mode", "result:2"), timeout=30)
    assert status(fake, res) == S + "COMPLETED"
    assert res.stdout == b"eval\n"
    assert res.HasField("result") and res.result.value == "2"
    assert res.error_type == "" and res.error_line == 0
    got = fake.get(res.execution_id)
    assert got.result.value == "2"


def test_eval_error_fields_and_no_result(fake):
    res = fake.stub.Eval(eval_req(fake, "raised:NameError:3:name 'x' is not defined", "exit:1"),
                         timeout=30)
    assert not res.HasField("result")
    assert (res.error_type, res.error_line, res.error_message) == (
        "NameError", 3, "name 'x' is not defined")
    assert res.exit_code == 1


def test_execute_is_not_eval_and_has_no_result(fake):
    res = fake.run("mode")
    assert res.stdout == b"execute\n"
    assert not res.HasField("result") and res.error_type == ""


def test_eval_async_and_request_id(fake):
    first = fake.stub.Eval(eval_req(fake, "result:'x'", request_id="ev-1", **{"async": True}),
                           timeout=30)
    assert status(fake, first) in (S + "PENDING", S + "RUNNING", S + "COMPLETED")
    again = fake.stub.Eval(eval_req(fake, "result:'x'", request_id="ev-1"), timeout=30)
    assert again.execution_id == first.execution_id
    assert again.result.value == "'x'"
    # The same key with other content, or for an Execute, is a reuse.
    for call in (lambda: fake.stub.Eval(eval_req(fake, "result:other", request_id="ev-1"),
                                        timeout=30),
                 lambda: fake.run("result:'x'", request_id="ev-1")):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_eval_with_files_and_entrypoint_and_stdin(fake):
    pb = fake.pb
    res = fake.stub.Eval(pb.EvalRequest(
        files=[pb.File(path="app/run.py", content=b"x"), pb.File(path="lib.py", content=b"")],
        entrypoint="app/run.py", stdin=b"in", env_vars=["FAKE_STEP=stdin"]), timeout=30)
    assert res.stdout == b"in"


@pytest.mark.parametrize("kw,needle", [
    ({}, "code/files"),
    ({"code": "1", "files": [("main.py", b"1")]}, "code/files"),
    ({"code": "1", "entrypoint": "other.py"}, "entrypoint"),
    ({"code": "1", "env_vars": ["PATH=/x"]}, "env_vars: 'PATH'"),
    ({"code": "1", "config": {"memory_mb": 999999}}, "config.memory_mb"),
    ({"code": "1", "request_id": "r" * 257}, "request_id"),
    ({"files": [("../x.py", b"1")]}, "files"),
])
def test_eval_requests_are_validated_like_execute(fake, kw, needle):
    pb = fake.pb
    kw = dict(kw)  # the parameters are shared by the runs for each store
    if "files" in kw:
        kw["files"] = [pb.File(path=p, content=c) for p, c in kw["files"]]
    if "config" in kw:
        kw["config"] = pb.ExecutionConfig(**kw["config"])
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Eval(pb.EvalRequest(**kw), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.details()
    assert "metadata." not in e.value.details()


# ---- python_version ----

def image_of(fake, **metadata):
    pb = fake.pb
    req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["image"], **metadata),
                            files=[pb.File(path="main.py", content=b"")])
    return fake.stub.Execute(req, timeout=30).stdout.decode()


def test_python_version_picks_the_built_in_images(fake):
    assert image_of(fake, python_version="3.13") == "pyexec/python:3.13"
    assert image_of(fake, python_version="3.11") == "pyexec/python:3.11"
    assert image_of(fake, docker_image="pyexec/python:3.13") == "pyexec/python:3.13"
    res = fake.stub.Eval(eval_req(fake, "image", python_version="3.13"), timeout=30)
    assert res.stdout == b"pyexec/python:3.13"


def test_only_allowed_images_reach_the_back_end(fake, fake_factory):
    # By default: the configured images, and nothing else (refused before
    # the back-end, which here would echo any image it got).
    with pytest.raises(grpc.RpcError) as e:
        image_of(fake, docker_image="custom:1")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == (
        "metadata.docker_image: 'custom:1' is not an image this server runs (allowed: "
        "pyexec/python:3.11, pyexec/python:3.13)")
    other = fake_factory("--allowed-images", "custom:*")
    assert image_of(other, docker_image="custom:1") == "custom:1"
    with pytest.raises(grpc.RpcError) as e:
        image_of(other, python_version="3.13")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "(allowed: custom:*)" in e.value.details()


def test_python_image_flag_overrides_and_adds(fake_factory):
    fake = fake_factory("--python-image", "3.13=mine/py:13", "--python-image", "3.12=mine/py:12")
    assert image_of(fake, python_version="3.13") == "mine/py:13"
    assert image_of(fake, python_version="3.12") == "mine/py:12"
    assert image_of(fake, python_version="3.11") == "pyexec/python:3.11"


@pytest.mark.parametrize("metadata,needle", [
    ({"python_version": "2.7"}, "python_version: '2.7' is not available here (known: 3.11, 3.13)"),
    ({"python_version": "3.13", "docker_image": "x:1"}, "set one of them, not both"),
])
def test_python_version_errors_are_invalid_argument(fake, metadata, needle):
    with pytest.raises(grpc.RpcError) as e:
        image_of(fake, **metadata)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Eval(fake.pb.EvalRequest(code="1", python_version="2.7"), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("python_version: '2.7'")


def test_eval_report_reaches_stream_get_and_list(fake):
    sub = fake.stub.Eval(eval_req(fake, "print:x\n", "result:'v'", **{"async": True}),
                         timeout=30)
    data, _, final = read_all(fake, sub.execution_id)
    assert data == b"x\n" and final.result.result.value == "'v'"
    assert fake.get(sub.execution_id).result.value == "'v'"
    listed = list_all(fake).executions
    assert listed[0].execution_id == sub.execution_id and listed[0].result.value == "'v'"
