"""Server-wide bounds on what clients that never read can pin: StreamOutput
readers and unary replies, against raw HTTP/2 clients with a stream window
of 0 (tests/support/stalled_reader.py) whose messages the server can never
send."""

import grpc
import pyexecd
import pytest
from stalled_reader import StalledConnection, execution_id_request

RESOURCE_EXHAUSTED = str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])


def connect(fake):
    host, port = fake.server.address.rsplit(":", 1)
    return StalledConnection(host, int(port))


def chunks(fake, execution_id):
    out = []
    for c in fake.stream(execution_id):
        if c.HasField("result"):
            return out, c
        out.append(c)
    raise AssertionError("stream ended without a result")


def admitted(fake, execution_id):
    try:
        next(iter(fake.stream(execution_id, timeout=10)))
        return True
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        return False


def test_stalled_readers_are_bounded_server_wide(fake_factory):
    fake = fake_factory("--max-total-stream-readers", "8",
                        "--max-stream-queued-bytes", "65536")
    jobs = [fake.submit("flood:100000", "sleep") for _ in range(2)]
    conns = [connect(fake), connect(fake)]
    try:
        # Eight stalled readers over two connections and two executions,
        # each with one message queued that it never takes.
        sids = [[conn.open(job.execution_id) for _ in range(4)]
                for conn, job in zip(conns, jobs)]
        for conn, ids in zip(conns, sids):
            conn.wait_started(ids)
            assert not conn.statuses and conn.data_bytes == 0

        # The ninth reader, stalled or not, on either execution: refused.
        extra = connect(fake)
        try:
            sid = extra.open(jobs[1].execution_id)
            [trailers] = extra.wait_status([sid])
            assert trailers["grpc-status"] == RESOURCE_EXHAUSTED
            assert "--max-total-stream-readers" in trailers["grpc-message"]
        finally:
            extra.close()
        with pytest.raises(grpc.RpcError) as e:
            next(iter(fake.stream(jobs[0].execution_id)))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "8 StreamOutput readers (limit 8" in e.value.details()

        # Control calls are not readers. (The flood is all in before the
        # Kill: with the Redis store it takes a few round trips.)
        assert pyexecd.wait_until(
            lambda: len(fake.get(jobs[0].execution_id).stdout) == 100000, 10)
        fake.kill(jobs[0].execution_id)

        # Their connection gone, the stalled readers' slots come back.
        conns.pop(0).close()
        assert pyexecd.wait_until(lambda: admitted(fake, jobs[0].execution_id), 10)
        data, final = chunks(fake, jobs[0].execution_id)
        assert b"".join(c.data for c in data) == bytes(
            (ord("a") + i % 26) for i in range(100000))
        assert final.result.status == fake.pb.EXECUTION_STATUS_KILLED
    finally:
        for conn in conns:
            conn.close()
        fake.kill(jobs[1].execution_id)


def test_message_size_is_each_readers_share_of_the_queued_bytes(fake_factory):
    """4 readers sharing 16 KiB get messages of at most 4 KiB, so however
    many of them stall, at most 16 KiB of output is queued."""
    fake = fake_factory("--max-total-stream-readers", "4",
                        "--max-stream-queued-bytes", "16384")
    job = fake.submit("flood:50000", "exit:0")
    data, final = chunks(fake, job.execution_id)
    assert max(len(c.data) for c in data) == 4096
    assert sum(len(c.data) for c in data) == 50000
    assert final.result.status == fake.pb.EXECUTION_STATUS_COMPLETED


def test_default_message_size_is_64_kib(fake):
    # Read once the output is all there (how much a live reader gets at once
    # depends on how far behind the writer it is).
    job = fake.run("flood:300000", "exit:0")
    data, _ = chunks(fake, job.execution_id)
    assert max(len(c.data) for c in data) == 65536


def test_replies_to_clients_that_never_read_are_bounded(fake_factory):
    """Each GetExecution of a 150 KB result pins the whole reply while its
    client never reads: past --max-reply-queued-bytes, replies are refused
    until the stalled ones go."""
    fake = fake_factory("--output-limit-bytes", "200000",
                        "--max-reply-queued-bytes", "600000")
    big = fake.run("flood:150000", "exit:0")
    small = fake.run("print:hi")
    conn = connect(fake)
    try:
        sids = [conn.open_call("GetExecution", execution_id_request(big.execution_id))
                for _ in range(3)]
        conn.wait_started(sids)
        assert not conn.statuses and conn.data_bytes == 0

        # A fourth copy does not fit, whoever asks and however.
        for call in (fake.get, fake.kill):
            with pytest.raises(grpc.RpcError) as e:
                call(big.execution_id)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"execution '{big.execution_id}' is COMPLETED" in e.value.details()
            assert "--max-reply-queued-bytes" in e.value.details()
        # A small reply still fits beside them.
        assert fake.get(small.execution_id).stdout == b"hi"
    finally:
        conn.close()
    # Their connection gone, the budget comes back.
    assert pyexecd.wait_until(lambda: replies(fake, big.execution_id), 10)
    assert len(fake.get(big.execution_id).stdout) == 150000


def replies(fake, execution_id):
    try:
        fake.get(execution_id)
        return True
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        return False
