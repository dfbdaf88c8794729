"""GET /metrics: the Prometheus text format, parsed with the reference
parser (Debian's python3-prometheus-client), and its values moving as
executions run, over both doors."""

import json

from prometheus_client.parser import text_string_to_metric_families

import httpdoor
from sse import Stream


def scrape(door):
    r = door.request("GET", "/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    types = {}
    for family in text_string_to_metric_families(r.body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_exposition_parses_and_names_its_types(door):
    door.run("exit:0")
    samples, types = scrape(door)
    assert types["pyexec_executions"] == "counter"
    assert types["pyexec_output_bytes"] == "counter"
    assert types["pyexec_executions_queued"] == "gauge"
    assert types["pyexec_executions_running"] == "gauge"
    assert types["pyexec_executions_retained"] == "gauge"
    assert value(samples, "pyexec_executions_max_running") == 4


def test_executions_by_status_and_reason_and_output_bytes_move(door):
    before, _ = scrape(door)
    door.run("print:hello", "stderr:oops", "exit:0")
    door.run("exit:3")
    eid = door.submit("sleep")
    door.kill(eid)
    after, _ = scrape(door)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("pyexec_executions_total", status="completed", reason="exited") == 2
    assert moved("pyexec_executions_total", status="killed", reason="killed") == 1
    assert moved("pyexec_output_bytes_total", stream="stdout") == 5
    assert moved("pyexec_output_bytes_total", stream="stderr") == 4
    assert moved("pyexec_executions_retained") == 3
    assert moved("pyexec_http_requests_total", route="/api/v1/exec/sync", code="200") == 2
    assert moved("pyexec_http_requests_total", route="/api/v1/exec/async", code="202") == 1


def test_queue_depth_and_running(door_factory):
    door = door_factory("--max-concurrent", "1", "--max-queue", "1")
    first = door.submit("print:first", "sleep")
    # Running once it printed (its first output is the event to wait for).
    events = iter(Stream(door.host, door.port, f"/api/v1/executions/{first}/output"))
    assert next(events)[2] == "first"
    second = door.submit("sleep")
    samples, _ = scrape(door)
    assert value(samples, "pyexec_executions_running") == 1
    assert value(samples, "pyexec_executions_queued") == 1
    assert door.run("exit:0").status == 429
    samples, _ = scrape(door)
    assert value(samples, "pyexec_admissions_refused_total", reason="queue_full") == 1
    door.kill(second)
    door.kill(first)
    samples, _ = scrape(door)
    assert value(samples, "pyexec_executions_running") == 0
    assert value(samples, "pyexec_executions_queued") == 0


def test_rpc_latency_by_method_and_code(door):
    stubs = httpdoor.pyexecd.stubs()
    pb = stubs.executor
    stub = stubs.executor_grpc.ExecutorServiceStub(door.server.channel())
    res = stub.Execute(pb.ExecuteRequest(metadata=pb.Metadata(script_args=["exit:0"]),
                                         files=[pb.File(path="main.py", content=b"")]),
                       timeout=30)
    try:
        stub.GetExecution(pb.GetExecutionRequest(execution_id="nope"), timeout=10)
    except Exception:  # noqa: BLE001 - INVALID_ARGUMENT is the point
        pass
    stub.GetExecution(pb.GetExecutionRequest(execution_id=res.execution_id), timeout=10)
    samples, types = scrape(door)
    assert types["pyexec_rpc_duration_seconds"] == "histogram"
    ok = dict(method="Execute", code="OK")
    assert value(samples, "pyexec_rpc_duration_seconds_count", **ok) == 1
    assert value(samples, "pyexec_rpc_duration_seconds_bucket", le="+Inf", **ok) == 1
    assert value(samples, "pyexec_rpc_duration_seconds_sum", **ok) > 0
    assert value(samples, "pyexec_rpc_duration_seconds_count", method="GetExecution",
                 code="INVALID_ARGUMENT") == 1
    assert value(samples, "pyexec_rpc_duration_seconds_count", method="GetExecution",
                 code="OK") == 1
    # Buckets are cumulative.
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                     if k[0] == "pyexec_rpc_duration_seconds_bucket"
                     and dict(k[1])["method"] == "Execute")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_an_error_answer_is_counted_by_its_code(door):
    door.request("GET", "/api/v1/executions/nope")
    door.request("GET", "/nowhere")
    samples, _ = scrape(door)
    assert value(samples, "pyexec_http_requests_total", route="/api/v1/executions/{id}",
                 code="400") == 1
    assert value(samples, "pyexec_http_requests_total", route="none", code="404") == 1


def test_the_redis_store_round_trip(door_factory):
    import uuid

    import redis_server  # tests/support

    with redis_server.RedisServer() as redis:
        door = door_factory("--store", redis.url, "--store-namespace",
                            "m" + uuid.uuid4().hex[:12])
        before, _ = scrape(door)
        assert door.run("print:x").json()["stdout"] == "x"
        after, types = scrape(door)
        assert types["pyexec_store_round_trip_seconds"] == "histogram"
        moved = (value(after, "pyexec_store_round_trip_seconds_count")
                 - value(before, "pyexec_store_round_trip_seconds_count"))
        assert moved > 0
        assert value(after, "pyexec_store_round_trip_seconds_sum") > 0
        door.close()
