"""Kill and execution ids (docs/contract.md, "Kill", "Ids")."""

import uuid

import grpc
import pytest

import pyexecd

BLOCKING = "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"


def started(ex, code=BLOCKING):
    """Starts `code` async and returns its id once its first output arrived
    (so it is running)."""
    eid = ex.start(code).execution_id
    assert pyexecd.read_until(ex.stream(eid), b"ready\n") == b"ready\n"
    return eid


def test_kill_running_execution(ex):
    eid = started(ex)
    res = ex.kill(eid)
    assert res.execution_id == eid
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_KILLED"
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_KILLED"
    assert res.exit_code == 128 + 9
    assert res.stdout == b"ready\n"
    again = ex.get(eid)
    assert pyexecd.status_name(again) == "EXECUTION_STATUS_KILLED"
    # Kill returns once the container is removed.
    assert not pyexecd.containers_mentioning(eid[len("exe_"):])


def test_kill_is_idempotent(ex):
    eid = started(ex)
    first = ex.kill(eid)
    second = ex.kill(eid)
    assert pyexecd.status_name(second) == "EXECUTION_STATUS_KILLED"
    assert pyexecd.reason_name(second) == "TERMINATION_REASON_KILLED"
    assert second.finished_at == first.finished_at


def test_kill_pending_or_just_started_execution(ex):
    eid = ex.start(BLOCKING).execution_id
    res = ex.kill(eid)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_KILLED"
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_KILLED"
    assert pyexecd.wait_until(
        lambda: not pyexecd.containers_mentioning(eid[len("exe_"):]), 15)


def test_kill_finished_execution_returns_it_unchanged(ex):
    done = ex.run("print('done')\n")
    res = ex.kill(done.execution_id)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED"
    assert pyexecd.reason_name(res) == "TERMINATION_REASON_EXITED"
    assert res.exit_code == 0
    assert res.finished_at == done.finished_at
    assert ex.get(done.execution_id).stdout == b"done\n"


def test_kill_unknown_execution_is_not_found(ex):
    with pytest.raises(grpc.RpcError) as e:
        ex.kill(f"exe_{uuid.uuid4()}")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


MALFORMED = ["", "x" * 10240, "../../etc/passwd", "exe_", "exe_not-a-uuid",
             f"EXE_{uuid.uuid4()}", f"{uuid.uuid4()}", f"exe_{uuid.uuid4()}/..",
             "exe_\x00" + str(uuid.uuid4())]


@pytest.mark.parametrize("bad", MALFORMED, ids=lambda s: repr(s[:24]))
@pytest.mark.parametrize("method", ["GetExecution", "Kill", "StreamOutput"])
def test_malformed_ids_are_invalid(ex, pb, method, bad):
    with pytest.raises(grpc.RpcError) as e:
        if method == "GetExecution":
            ex.get(bad)
        elif method == "Kill":
            ex.kill(bad)
        else:
            list(ex.stream(bad, timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", ["GetExecution", "Kill", "StreamOutput"])
def test_well_formed_unknown_id_is_not_found(ex, method):
    eid = f"exe_{uuid.uuid4()}"
    with pytest.raises(grpc.RpcError) as e:
        if method == "GetExecution":
            ex.get(eid)
        elif method == "Kill":
            ex.kill(eid)
        else:
            list(ex.stream(eid, timeout=30))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
