"""Helpers for the HTTP door's tests: the real server (gRPC and HTTP doors,
executor, store) over the scripted fake back-end (fake_pyexecd; see
tests/server/executor/fake_sandbox.h for the steps a request's script_args
run), driven with the standard library's HTTP client and raw sockets.

Environment: FAKE_PYEXECD_BIN (default <repo>/bazel-bin/tests/server/rpc/
fake_pyexecd).
"""

import io
import json
import os
import pathlib
import sys
import tarfile
import uuid
import http.client


REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


def tar_of(files):
    """An uncompressed tar of {path: bytes-or-str}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in files.items():
            if isinstance(data, str):
                data = data.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def multipart(fields):
    """A multipart/form-data body of {name: (filename or None, bytes)};
    returns (content_type, body)."""
    boundary = "pyexec-" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, (filename, data) in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        disp = f'form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        out.write(f"Content-Disposition: {disp}\r\n".encode())
        if filename:
            out.write(b"Content-Type: application/octet-stream\r\n")
        out.write(b"\r\n")
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", out.getvalue()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Door:
    """A running fake server with its HTTP door, plus request helpers."""

    def __init__(self, *args):
        self.server = pyexecd.Server("--http-listen", "127.0.0.1:0", *args, "--log-level",
                                     "warn", binary=fake_binary())
        self.server.start()
        self.address = self.server.http_address()
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)

    def connection(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()

    def upload(self, path, steps=None, metadata=None, tar=None, **meta):
        """POSTs a multipart upload: `tar` (default: a main.py) and metadata
        (`metadata` as given, else {"script_args": steps, **meta})."""
        if metadata is None:
            metadata = json.dumps({"script_args": list(steps or []), **meta})
        fields = {"tar": ("code.tar", tar if tar is not None else tar_of({"main.py": ""}))}
        if metadata is not False:
            fields["metadata"] = (None, metadata.encode() if isinstance(metadata, str)
                                  else metadata)
        ctype, body = multipart(fields)
        return self.request("POST", path, body, {"Content-Type": ctype})

    def run(self, *steps, **meta):
        return self.upload("/api/v1/exec/sync", steps, **meta)

    def submit(self, *steps, **meta):
        r = self.upload("/api/v1/exec/async", steps, **meta)
        assert r.status == 202, r.body
        return r.json()["execution_id"]

    def get(self, execution_id):
        return self.request("GET", f"/api/v1/executions/{execution_id}")

    def await_status(self, execution_id, status, timeout=60):
        """Polls GET until the execution has `status` (e.g. "running": an
        execution just submitted may still be pending) or fails the test
        after `timeout` s."""
        got = pyexecd.wait_until(
            lambda: self.get(execution_id).json()["status"] == status, timeout, 0.02)
        assert got, f"{execution_id} not {status} after {timeout} s: {self.get(execution_id).body}"

    def kill(self, execution_id):
        return self.request("DELETE", f"/api/v1/executions/{execution_id}")

    def close(self):
        code = self.server.stop()
        self.server.close()
        return code

