"""Tests of python_executor_client: the types on their own, request
building without a server, and every client method against a real pyexecd."""

import io
import json
import os
import pathlib
import tarfile
from datetime import datetime

import grpc
import pytest

from python_executor_client import (
    ExecutionConfig,
    ExecutionResult,
    ExecutionStatus,
    Metadata,
    OutputChunk,
    PythonExecutorClient,
    PythonExecutorError,
    ResourceUsage,
    make_tar,
    server_target,
)
from python_executor_client._proto import executor_pb2

UNKNOWN_ID = "exe_00000000-0000-4000-8000-000000000000"


# ---------------------------------------------------------------------------
# types


def test_execution_status_is_a_str_enum_with_the_original_values():
    assert [s.value for s in ExecutionStatus] == [
        "pending", "running", "completed", "failed", "killed"]
    assert ExecutionStatus("completed") is ExecutionStatus.COMPLETED
    assert ExecutionStatus.COMPLETED == "completed"
    assert isinstance(ExecutionStatus.KILLED, str)
    assert [s.is_terminal for s in ExecutionStatus] == [False, False, True, True, True]


def test_execution_config_defaults_and_to_dict():
    cfg = ExecutionConfig()
    assert cfg.to_dict() == {"timeout_seconds": 300, "network_disabled": True,
                             "memory_mb": 1024, "disk_mb": 2048, "cpu_shares": 1024}
    assert ExecutionConfig(timeout_seconds=5, network_disabled=False).to_dict()[
        "network_disabled"] is False


def test_metadata_to_dict_omits_unset_fields():
    assert Metadata(entrypoint="main.py").to_dict() == {"entrypoint": "main.py"}
    m = Metadata(entrypoint="app.py", docker_image="img", requirements_txt="six\n",
                 pre_commands=["echo hi"], stdin="in", config=ExecutionConfig(memory_mb=256),
                 env_vars=["A=1"], script_args=["-v"])
    d = m.to_dict()
    assert d["entrypoint"] == "app.py"
    assert d["docker_image"] == "img"
    assert d["requirements_txt"] == "six\n"
    assert d["pre_commands"] == ["echo hi"]
    assert d["stdin"] == "in"
    assert d["config"]["memory_mb"] == 256
    assert d["env_vars"] == ["A=1"]
    assert d["script_args"] == ["-v"]
    json.dumps(d)


def test_execution_result_from_dict_reads_the_original_shape():
    r = ExecutionResult.from_dict({
        "execution_id": "exe_1", "status": "completed", "stdout": "hi\n", "stderr": "",
        "exit_code": 0, "started_at": "2024-05-01T12:00:00.250000Z",
        "finished_at": "2024-05-01T12:00:01Z", "duration_ms": 750})
    assert r.status is ExecutionStatus.COMPLETED
    assert r.stdout == "hi\n" and r.stdout_bytes == b"hi\n"
    assert r.exit_code == 0
    assert r.error is None
    assert r.started_at == datetime(2024, 5, 1, 12, 0, 0, 250000)
    assert r.finished_at == datetime(2024, 5, 1, 12, 0, 1)
    assert r.duration_ms == 750
    assert r.reason is None and r.output_truncated is False and r.usage is None


def test_execution_result_from_dict_decodes_bytes_and_extras():
    r = ExecutionResult.from_dict({
        "execution_id": "exe_2", "status": "killed", "stdout": b"ok \xff", "stderr": b"",
        "reason": "killed", "output_truncated": True,
        "usage": {"peak_memory_bytes": 10, "cpu_time_ms": 3}})
    assert r.stdout == "ok \ufffd"
    assert r.stdout_bytes == b"ok \xff"
    assert r.reason == "killed"
    assert r.output_truncated is True
    assert r.usage == ResourceUsage(peak_memory_bytes=10, cpu_time_ms=3)


def test_execution_result_to_dict_round_trips():
    r = ExecutionResult(execution_id="exe_3", status=ExecutionStatus.FAILED, stdout="",
                        stderr="", exit_code=None, error="image missing",
                        started_at=datetime(2024, 1, 2, 3, 4, 5, 6),
                        finished_at=datetime(2024, 1, 2, 3, 4, 6), duration_ms=1000,
                        reason="sandbox_error", usage=ResourceUsage(1, 2))
    d = r.to_dict()
    json.dumps(d)
    assert d["status"] == "failed"
    assert d["started_at"] == "2024-01-02T03:04:05.000006Z"
    back = ExecutionResult.from_dict(d)
    assert back.to_dict() == d
    assert back.error == "image missing"


def test_output_chunk_text():
    assert OutputChunk(stream="stdout", data=b"a\xffb", offset=0).text == "a\ufffdb"


# ---------------------------------------------------------------------------
# request building (no server)


def build(files=None, tar_data=None, metadata=None, async_=False, **kwargs):
    # The channel connects lazily: nothing is sent here.
    with PythonExecutorClient("127.0.0.1:1") as c:
        return c._build_request(files, tar_data, metadata, async_, kwargs)


def test_request_from_dict_of_files_and_kwargs():
    req = build({"main.py": "print(1)", "bin/run.sh": (b"#!/bin/sh\n", 0o755)}, async_=True,
                entrypoint="main.py", timeout_seconds=7, network_disabled=False,
                stdin="abc", script_args=["x", 2], env_vars=["K=V"], request_id="r1")
    assert getattr(req, "async") is True
    assert [(f.path, f.content, f.mode) for f in req.files] == [
        ("main.py", b"print(1)", 0), ("bin/run.sh", b"#!/bin/sh\n", 0o755)]
    assert req.metadata.entrypoint == "main.py"
    assert req.metadata.stdin == b"abc"
    assert list(req.metadata.script_args) == ["x", "2"]
    assert list(req.metadata.env_vars) == ["K=V"]
    assert req.request_id == "r1"
    cfg = req.metadata.config
    assert cfg.timeout_seconds == 7
    assert cfg.HasField("network_disabled") and cfg.network_disabled.value is False
    # Limits that were not given stay at 0: the server's defaults.
    assert cfg.memory_mb == 0 and cfg.disk_mb == 0 and cfg.cpu_shares == 0


def test_request_with_metadata_sends_its_whole_config():
    req = build({"a.py": ""}, metadata=Metadata(entrypoint="a.py", config=ExecutionConfig()))
    cfg = req.metadata.config
    assert (cfg.timeout_seconds, cfg.memory_mb, cfg.disk_mb, cfg.cpu_shares) == (
        300, 1024, 2048, 1024)
    assert cfg.network_disabled.value is True
    assert not build({"a.py": ""}, metadata=Metadata()).metadata.HasField("config")


def test_request_from_directory_keeps_relative_paths_and_modes(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "main.py").write_text("import pkg.mod\n")
    (tmp_path / "pkg" / "mod.py").write_text("print('mod')\n")
    (tmp_path / "tool.sh").write_text("echo\n")
    os.chmod(tmp_path / "tool.sh", 0o750)
    req = build(tmp_path)
    def mode(rel):
        return os.stat(tmp_path / rel).st_mode & 0o7777

    assert not req.files
    with tarfile.open(fileobj=io.BytesIO(req.tar)) as tf:
        assert [(m.name, m.mode) for m in tf.getmembers()] == [
            ("main.py", mode("main.py")), ("pkg/mod.py", mode("pkg/mod.py")), ("tool.sh", 0o750)]
        assert tf.extractfile("pkg/mod.py").read() == b"print('mod')\n"
    assert req.metadata.entrypoint == ""


def tar_listing(req):
    with tarfile.open(fileobj=io.BytesIO(req.tar)) as tf:
        return [m.name + (" -> " + m.linkname if m.issym() else "") for m in tf.getmembers()]


def test_directory_leaves_vcs_caches_and_ignored_files_home(tmp_path):
    files = ["main.py", ".git/HEAD", "__pycache__/main.cpython-311.pyc", "__pycache__/note.txt",
             "pkg/mod.py", "pkg/old.pyc", "build/out.o", "src/build/keep.py", "debug.log",
             "important.log", "docs/readme.md", "docs/a/b/deep.md", "docs/a/b/deep.txt",
             "data/secret.csv", "data/sample.csv"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / ".pyexecignore").write_text(
        "# comment\n\n/build/\n*.log\n!important.log\ndocs/**/*.md\ndata/*\n"
        "!data/sample.csv\n!__pycache__/\n")
    assert sorted(tar_listing(build(tmp_path))) == [
        ".pyexecignore", "__pycache__/note.txt", "data/sample.csv", "docs/a/b/deep.txt",
        "important.log", "main.py", "pkg/mod.py", "src/build/keep.py"]


def test_directory_sends_symbolic_links_as_links(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "alias.py").symlink_to("pkg/mod.py")
    (tmp_path / "pkglink").symlink_to("pkg")
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    assert tar_listing(build(tmp_path)) == [
        "alias.py -> pkg/mod.py", "passwd -> /etc/passwd", "pkg/mod.py", "pkglink -> pkg"]


def test_compressed_tar_files_are_decompressed(tmp_path):
    plain = make_tar({"main.py": "print(1)\n"})
    import bz2
    import gzip
    import lzma
    for name, packed in (("a.tar.gz", gzip.compress(plain)), ("a.tgz", gzip.compress(plain)),
                         ("a.tar.bz2", bz2.compress(plain)), ("a.tar.xz", lzma.compress(plain))):
        (tmp_path / name).write_bytes(packed)
        assert build(tmp_path / name).tar == plain, name


def test_request_from_single_file_and_tar(tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("print('hi')\n")
    req = build(str(script))
    assert [f.path for f in req.files] == ["hello.py"]
    assert req.metadata.entrypoint == "hello.py"
    tar_bytes = make_tar({"main.py": "print(1)\n"})
    (tmp_path / "code.tar").write_bytes(tar_bytes)
    assert build(tmp_path / "code.tar").tar == tar_bytes
    assert build(tar_bytes).tar == tar_bytes
    assert build(None, tar_data=tar_bytes).tar == tar_bytes
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        assert tf.getnames() == ["main.py"]


def test_request_errors():
    with pytest.raises(ValueError):
        build()
    with pytest.raises(TypeError):
        build({"main.py": ""}, no_such_option=1)


def test_server_address_forms():
    with PythonExecutorClient("http://127.0.0.1:1/") as c:
        assert c.server == "127.0.0.1:1"
    with PythonExecutorClient("127.0.0.1") as c:
        assert c.server == "127.0.0.1:50051"
    assert server_target("grpc://localhost:50061") == "localhost:50061"
    assert server_target("localhost") == "localhost:50051"
    assert server_target("[::1]") == "[::1]:50051"
    assert server_target("::1") == "[::1]:50051"
    assert server_target("[::1]:7") == "[::1]:7"
    assert server_target("unix:/run/x.sock") == "unix:/run/x.sock"
    assert server_target(None) == "127.0.0.1:50051"
    assert server_target("https://h:1") == "h:1"
    assert server_target("https://pyexec.example/") == "pyexec.example:443"
    assert server_target("grpcs://h") == "h:50051"
    for bad, why in (("ftp://h", "unknown scheme"), ("h:0", "bad port"), ("h:x", "bad port"),
                     (":1", "no host"), ("http://h:1/x", "a path")):
        with pytest.raises(ValueError, match=why):
            server_target(bad)


def test_https_means_a_tls_channel(server):
    """An https:// address opens a TLS channel: against the plaintext test
    server the handshake fails, where http:// to the same port works."""
    host_port = server.address
    with PythonExecutorClient("http://" + host_port) as plain:
        assert not plain.tls and plain.health() == "SERVING"
    with PythonExecutorClient("https://" + host_port, call_timeout=5) as tls:
        assert tls.tls and tls.server == host_port
        with pytest.raises(PythonExecutorError) as e:
            tls.health()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------------------
# against a real server


def test_health_is_serving(client):
    assert client.health() == "SERVING"


def test_execute_sync_hello_world(client):
    r = client.execute_sync(files={"main.py": "print('Hello, World!')"}, entrypoint="main.py")
    assert r.status is ExecutionStatus.COMPLETED
    assert r.exit_code == 0
    assert r.stdout == "Hello, World!\n"
    assert r.stdout_bytes == b"Hello, World!\n"
    assert r.stderr == ""
    assert r.reason == "exited"
    assert r.execution_id.startswith("exe_")
    assert r.started_at is not None and r.finished_at is not None
    assert r.finished_at >= r.started_at
    assert r.duration_ms is not None and r.duration_ms >= 0


def test_execute_sync_passes_stdin_args_env_and_exit_code(client):
    code = ("import os, sys\n"
            "data = sys.stdin.read()\n"
            "print(data.upper(), sys.argv[1:], os.environ['GREETING'])\n"
            "sys.stderr.write('warn\\n')\n"
            "sys.exit(3)\n")
    r = client.execute_sync(files={"main.py": code}, stdin="abc", script_args=["x", "y"],
                            env_vars=["GREETING=hey"])
    assert r.status is ExecutionStatus.COMPLETED
    assert r.exit_code == 3
    assert r.stdout == "ABC ['x', 'y'] hey\n"
    assert r.stderr == "warn\n"


def test_execute_sync_non_utf8_output_is_replaced_and_kept_raw(client):
    r = client.execute_sync(files={"main.py": "import sys; sys.stdout.buffer.write(b'a\\xffb')"})
    assert r.stdout == "a\ufffdb"
    assert r.stdout_bytes == b"a\xffb"


def test_execute_sync_with_metadata_directory_and_tar(client, tmp_path):
    (tmp_path / "helper.py").write_text("def greet():\n    print('from helper')\n")
    (tmp_path / "main.py").write_text("from helper import greet\ngreet()\n")
    r = client.execute_sync(files=tmp_path,
                            metadata=Metadata(entrypoint="main.py",
                                              config=ExecutionConfig(timeout_seconds=60)))
    assert (r.exit_code, r.stdout) == (0, "from helper\n")
    tar_bytes = make_tar({"app/__main__.py": "print('tar ok')\n"})
    r = client.execute_sync(tar_data=tar_bytes, entrypoint="app/__main__.py")
    assert (r.exit_code, r.stdout) == (0, "tar ok\n")


def test_execute_async_get_and_wait_for_completion(client):
    exec_id = client.execute_async(files={"main.py": "print('async hello')"})
    assert exec_id.startswith("exe_")
    first = client.get_execution(exec_id)
    assert first.execution_id == exec_id
    assert first.status in set(ExecutionStatus)
    result = client.wait_for_completion(exec_id, timeout=120)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.stdout == "async hello\n"
    again = client.get_execution(exec_id)
    assert again.status is ExecutionStatus.COMPLETED
    assert again.stdout == "async hello\n" and again.exit_code == 0


def test_stream_output_yields_chunks_then_the_result(client):
    code = ("import sys\n"
            "print('one')\n"
            "sys.stderr.write('two\\n')\n"
            "print('three')\n")
    exec_id = client.execute_async(files={"main.py": code})
    chunks = list(client.stream_output(exec_id))
    assert chunks[-1].result is not None
    assert chunks[-1].result.status is ExecutionStatus.COMPLETED
    assert chunks[-1].result.exit_code == 0
    data = [c for c in chunks if c.result is None]
    assert b"".join(c.data for c in data if c.stream == "stdout") == b"one\nthree\n"
    assert b"".join(c.data for c in data if c.stream == "stderr") == b"two\n"
    offset = 0
    for c in data:  # offsets count both streams in arrival order
        assert c.offset == offset
        offset += len(c.data)
    assert chunks[-1].offset == offset

    # Replay from an offset: the log from byte 4 on.
    replay = b"".join(c.data for c in client.stream_output(exec_id, offset=4)
                      if c.result is None)
    assert replay == b"".join(c.data for c in data)[4:]


def test_kill_a_running_execution(client):
    code = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"
    exec_id = client.execute_async(files={"main.py": code})
    stream = client.stream_output(exec_id)
    first = next(stream)  # the program is running once it has printed
    assert first.data.startswith(b"started")
    stream.close()
    killed = client.kill(exec_id)
    assert killed.status is ExecutionStatus.KILLED
    assert killed.reason == "killed"
    assert client.kill(exec_id).status is ExecutionStatus.KILLED  # idempotent
    assert client.get_execution(exec_id).status is ExecutionStatus.KILLED


def test_wait_for_completion_times_out(client):
    exec_id = client.execute_async(files={"main.py": "import time; time.sleep(300)"})
    with pytest.raises(TimeoutError):
        client.wait_for_completion(exec_id, timeout=1)
    client.kill(exec_id)


def test_errors_carry_the_status_code(client):
    with pytest.raises(PythonExecutorError) as e:
        client.get_execution(UNKNOWN_ID)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.method == "GetExecution"
    with pytest.raises(PythonExecutorError) as e:
        client.get_execution("not-an-id")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(PythonExecutorError) as e:
        client.kill(UNKNOWN_ID)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(PythonExecutorError) as e:
        client.execute_sync(files={"main.py": "print(1)"}, entrypoint="missing.py")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(PythonExecutorError) as e:
        client.execute_sync(files={"../escape.py": "print(1)"})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_stream_output_errors(client):
    with pytest.raises(PythonExecutorError) as e:
        list(client.stream_output(UNKNOWN_ID))
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    exec_id = client.execute_async(files={"main.py": "print('x')"})
    client.wait_for_completion(exec_id, timeout=120)
    with pytest.raises(PythonExecutorError) as e:
        list(client.stream_output(exec_id, offset=1000))
    assert e.value.code == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(PythonExecutorError) as e:
        list(client.stream_output(exec_id, offset=-1))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unreachable_server_is_unavailable():
    with PythonExecutorClient("127.0.0.1:1", call_timeout=10) as c:
        with pytest.raises(PythonExecutorError) as e:
            c.health()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        assert "server 127.0.0.1:1: " in str(e.value)


def test_context_manager_closes_the_channel(server):
    with PythonExecutorClient(server.address) as c:
        assert c.health() == "SERVING"
    with pytest.raises(ValueError):
        c.health()  # grpc raises ValueError on a closed channel


def test_result_from_proto_maps_every_field():
    from python_executor_client.client import _result_from_proto

    msg = executor_pb2.ExecutionResult(
        execution_id="exe_x", status=executor_pb2.EXECUTION_STATUS_COMPLETED,
        stdout=b"o", stderr=b"e\xfe", exit_code=137, error="",
        duration_ms=12, reason=executor_pb2.TERMINATION_REASON_MEMORY_LIMIT,
        output_truncated=True,
        usage=executor_pb2.ResourceUsage(peak_memory_bytes=5, cpu_time_ms=6))
    msg.started_at.FromDatetime(datetime(2024, 1, 1, 0, 0, 0))
    r = _result_from_proto(msg)
    assert r.status is ExecutionStatus.COMPLETED
    assert (r.stdout, r.stderr, r.stderr_bytes) == ("o", "e\ufffd", b"e\xfe")
    assert r.exit_code == 137 and r.reason == "memory_limit" and r.output_truncated
    assert r.started_at == datetime(2024, 1, 1) and r.finished_at is None
    assert r.usage == ResourceUsage(5, 6)
    running = _result_from_proto(executor_pb2.ExecutionResult(
        execution_id="exe_y", status=executor_pb2.EXECUTION_STATUS_RUNNING))
    assert running.exit_code is None and running.reason is None


def test_readme_says_where_the_client_differs_from_the_original():
    """client/python/README.md matches the code: the signature of
    wait_for_completion as written there, eval, https://."""
    import inspect
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.search(r"`wait_for_completion\((.*?)\)`", readme, re.S)
    assert shown, "the README shows wait_for_completion's signature"
    params = [p for p in inspect.signature(PythonExecutorClient.wait_for_completion).parameters.values()
              if p.name != "self" and p.kind != inspect.Parameter.KEYWORD_ONLY]
    actual = ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default}"
                       for p in params)
    assert " ".join(shown.group(1).split()) == actual
    assert "`eval(code" in readme and hasattr(PythonExecutorClient, "eval")
    assert "`https://`" in readme and "TLS channel" in readme
