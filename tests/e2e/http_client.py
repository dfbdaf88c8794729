"""A client of the HTTP door written the way the original python-executor's
users wrote theirs: `requests`, the original client's types
(python_executor_client.types: ExecutionStatus, ExecutionConfig, Metadata,
ExecutionResult) and its JSON shapes; nothing pyexec-specific. The tests
run it unchanged against the door.

    client = HttpClient("http://127.0.0.1:8080")
    result = client.execute_sync({"main.py": "print('hi')"}, Metadata(entrypoint="main.py"))
"""

import dataclasses
import enum
import io
import json
import tarfile
import time
from datetime import datetime
from typing import Optional

import requests


class ExecutionStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"


@dataclasses.dataclass
class ExecutionConfig:
    timeout_seconds: int = 300
    network_disabled: bool = True
    memory_mb: int = 1024
    disk_mb: int = 2048
    cpu_shares: int = 1024

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Metadata:
    entrypoint: str
    docker_image: Optional[str] = None
    requirements_txt: Optional[str] = None
    pre_commands: Optional[list] = None
    stdin: Optional[str] = None
    config: Optional[ExecutionConfig] = None
    env_vars: Optional[list] = None
    script_args: Optional[list] = None

    def to_dict(self):
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.config is not None:
            d["config"] = self.config.to_dict()
        return d


def _time(value):
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclasses.dataclass
class ExecutionResult:
    execution_id: str
    status: ExecutionStatus
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    exit_code: Optional[int] = None
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    duration_ms: Optional[int] = None

    @classmethod
    def from_dict(cls, data):
        return cls(execution_id=data["execution_id"], status=ExecutionStatus(data["status"]),
                   stdout=data.get("stdout"), stderr=data.get("stderr"),
                   exit_code=data.get("exit_code"), error=data.get("error"),
                   started_at=_time(data.get("started_at")),
                   finished_at=_time(data.get("finished_at")),
                   duration_ms=data.get("duration_ms"))


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
