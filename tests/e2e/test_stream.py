"""StreamOutput: live output, replay, offsets, concurrent readers
(docs/contract.md, "StreamOutput")."""

import threading

import grpc
import pytest

import pyexecd

# Prints interleaved stdout/stderr lines and ends by itself.
MIXED = ("import sys\n"
         "for i in range(50):\n"
         "    print(f'out {i}')\n"
         "    print(f'err {i}', file=sys.stderr)\n")


def read_all(stream):
    """Returns (chunks, final_chunk) of a whole StreamOutput call."""
    chunks, final = [], None
    for c in stream:
        if c.HasField("result"):
            final = c
        else:
            chunks.append(c)
    return chunks, final


def check_offsets(chunks, start=0):
    """Chunks are contiguous from `start`; returns the concatenated bytes."""
    pos = start
    for c in chunks:
        assert c.offset == pos
        assert c.data
        pos += len(c.data)
    return b"".join(c.data for c in chunks)


def test_live_output_arrives_while_the_program_runs(ex):
    # The program prints, then blocks until killed: the first chunk can only
    # arrive while it is still running.
    first = ex.start("import time\nprint('first', flush=True)\ntime.sleep(3600)\n")
    eid = first.execution_id
    stream = ex.stream(eid, timeout=120)
    chunk = next(stream)
    assert chunk.offset == 0
    assert pyexecd.stubs().executor.Stream.Name(chunk.stream) == "STREAM_STDOUT"
    # print() may write its text and its newline separately.
    data = chunk.data + (pyexecd.read_until(stream, b"\n") if chunk.data == b"first" else b"")
    assert data == b"first\n"
    assert pyexecd.status_name(ex.get(eid)) == "EXECUTION_STATUS_RUNNING"
    killed = ex.kill(eid)
    assert pyexecd.status_name(killed) == "EXECUTION_STATUS_KILLED"
    rest, final = read_all(stream)
    assert rest == []
    assert final is not None
    assert pyexecd.status_name(final.result) == "EXECUTION_STATUS_KILLED"
    assert pyexecd.reason_name(final.result) == "TERMINATION_REASON_KILLED"
    assert final.offset == len(b"first\n")


def test_stream_without_unbuffered_flush_is_still_live(ex):
    """Output is unbuffered: a plain print() arrives without flush=True."""
    first = ex.start("import time\nprint('plain')\ntime.sleep(3600)\n")
    assert pyexecd.read_until(ex.stream(first.execution_id), b"plain\n") == b"plain\n"
    ex.kill(first.execution_id)


def test_replay_after_completion(ex, pb):
    res = ex.run(MIXED)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED"
    chunks, final = read_all(ex.stream(res.execution_id))
    log = check_offsets(chunks)
    out = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDOUT)
    err = b"".join(c.data for c in chunks if c.stream == pb.STREAM_STDERR)
    assert out == res.stdout == b"".join(b"out %d\n" % i for i in range(50))
    assert err == res.stderr == b"".join(b"err %d\n" % i for i in range(50))
    assert len(log) == len(out) + len(err)
    assert final is not None
    assert final.offset == len(log)
    assert final.result.execution_id == res.execution_id
    assert pyexecd.status_name(final.result) == "EXECUTION_STATUS_COMPLETED"
    assert final.result.exit_code == 0


def test_resume_from_an_offset(ex):
    res = ex.run(MIXED)
    full = check_offsets(read_all(ex.stream(res.execution_id))[0])
    for offset in (1, 7, len(full) // 2, len(full) - 1):
        chunks, final = read_all(ex.stream(res.execution_id, offset=offset))
        assert check_offsets(chunks, start=offset) == full[offset:]
        assert final.offset == len(full)


def test_offset_at_the_end_gives_only_the_result(ex):
    res = ex.run("print('abc')\n")
    chunks, final = read_all(ex.stream(res.execution_id, offset=4))
    assert chunks == []
    assert final.offset == 4
    assert pyexecd.status_name(final.result) == "EXECUTION_STATUS_COMPLETED"


def test_offset_past_the_end_of_a_finished_log_is_out_of_range(ex):
    res = ex.run("print('abc')\n")
    with pytest.raises(grpc.RpcError) as e:
        read_all(ex.stream(res.execution_id, offset=5))
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_negative_offset_is_invalid(ex):
    res = ex.run("print('abc')\n")
    with pytest.raises(grpc.RpcError) as e:
        read_all(ex.stream(res.execution_id, offset=-1))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_offset_ahead_of_a_running_log_waits_for_output(ex):
    # 'a\n' is printed at once, 'b\n' a while later: a reader asking for
    # offset 2 right after seeing 'a\n' waits instead of failing, then gets 'b\n'.
    first = ex.start("import time\nprint('a', flush=True)\ntime.sleep(2)\n"
                     "print('b', flush=True)\ntime.sleep(3600)\n")
    assert pyexecd.read_until(ex.stream(first.execution_id), b"a\n") == b"a\n"
    stream = ex.stream(first.execution_id, offset=2)
    chunk = next(stream)
    assert chunk.offset == 2
    assert chunk.data + pyexecd.read_until(stream, b"b\n"[len(chunk.data):]) == b"b\n"
    ex.kill(first.execution_id)


def test_two_concurrent_readers_get_identical_bytes(ex):
    code = ("import sys, time\n"
            "for i in range(200):\n"
            "    print(f'line {i}', flush=True)\n"
            "    if i % 50 == 0:\n"
            "        print(f'note {i}', file=sys.stderr, flush=True)\n"
            "    time.sleep(0.005)\n")
    first = ex.start(code)
    results = {}

    def reader(name):
        try:
            results[name] = read_all(ex.stream(first.execution_id, timeout=120))
        except grpc.RpcError as e:
            results[name] = e

    threads = [threading.Thread(target=reader, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    logs = []
    for name in ("a", "b"):
        assert not isinstance(results[name], Exception), results[name]
        chunks, final = results[name]
        assert final is not None
        logs.append(check_offsets(chunks))
    assert logs[0] == logs[1]
    res = ex.get(first.execution_id)
    assert len(logs[0]) == len(res.stdout) + len(res.stderr)
    assert b"line 199\n" in res.stdout


def test_stream_of_unknown_execution_is_not_found(ex):
    import uuid

    with pytest.raises(grpc.RpcError) as e:
        read_all(ex.stream(f"exe_{uuid.uuid4()}"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
