"""A client of the HTTP door written the way the original python-executor's
users wrote theirs: `requests`, the original client's types
(python_executor_client.types: ExecutionStatus, ExecutionConfig, Metadata,
ExecutionResult, imported from client/python) and its JSON shapes; nothing
pyexec-specific. The tests run it unchanged against the door.

    client = HttpClient("http://127.0.0.1:8080")
    result = client.execute_sync({"main.py": "print('hi')"}, Metadata(entrypoint="main.py"))
"""

import io
import json
import tarfile
import time

import requests

import pyexecd

# The client package imports its generated stubs: pyexecd.stubs() makes them
# (and puts client/python on sys.path).
pyexecd.stubs()
from python_executor_client.types import (  # noqa: E402,F401 - re-exported for the tests
    ExecutionConfig,
    ExecutionResult,
    ExecutionStatus,
    Metadata,
)


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class HttpClient:
    def __init__(self, base_url, timeout=120):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _upload(self, path, files, metadata):
        r = self.session.post(
            self.base_url + path, timeout=self.timeout,
            files={"tar": ("code.tar", tar_of(files), "application/x-tar")},
            data={"metadata": json.dumps(metadata.to_dict())})
        r.raise_for_status()
        return r.json()

    def execute_sync(self, files, metadata):
        return ExecutionResult.from_dict(self._upload("/api/v1/exec/sync", files, metadata))

    def execute_async(self, files, metadata):
        return self._upload("/api/v1/exec/async", files, metadata)["execution_id"]

    def get_execution(self, execution_id):
        r = self.session.get(f"{self.base_url}/api/v1/executions/{execution_id}",
                             timeout=self.timeout)
        r.raise_for_status()
        return ExecutionResult.from_dict(r.json())

    def kill(self, execution_id):
        r = self.session.delete(f"{self.base_url}/api/v1/executions/{execution_id}",
                                timeout=self.timeout)
        r.raise_for_status()
        return r.json()["status"]

    def wait_for_completion(self, execution_id, poll_interval=0.2, timeout=120):
        """The original client's polling loop."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.get_execution(execution_id)
            if result.status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(execution_id)
            time.sleep(poll_interval)

    def eval(self, code, **fields):
        r = self.session.post(self.base_url + "/api/v1/eval", timeout=self.timeout,
                              json={"code": code, **fields})
        r.raise_for_status()
        return r.json()
