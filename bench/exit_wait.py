"""When the engine answers `wait` for a container that ends, and whether
opening the wait earlier makes it answer sooner.

A run's answer waits for the engine's exit code after the bootstrap's last
words (docs/sandbox.md). This measures where that time goes, with the Engine
API alone. Each run: a container of the sandbox image (`NetworkMode: none`)
whose program reads its stdin to the end, writes one line and exits 3, as
the bootstrap writes its last words and exits. The container is created,
attached and started; then its `POST /containers/{id}/wait?condition=
not-running` is opened on a connection of its own either

  early  before stdin is closed (the engine has answered the wait's head,
         so the wait is registered before the program can end), or
  late   after the line arrived, as pyexecd asks.

Per run, in ms after the line arrived at the client:

  exit    State.FinishedAt: the runtime reaped the process;
  die     the engine's `die` event (after it deleted the runtime's task and
          cleaned up the container, before it lets waiters go);
  answer  the wait's answer.

Run with /usr/bin/python3 bench/exit_wait.py [--iterations N] [--image I].
Loopback only: the Docker socket; every container is labelled
pyexec.bench=<run id> and removed at the end, also after an error or
Ctrl-C.
"""

import argparse
import datetime
import json
import os
import re
import socket
import statistics
import threading
import time
import urllib.parse
import uuid

SOCKET = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
PROGRAM = "import os, sys; sys.stdin.read(); os.write(1, b'done\\n'); os._exit(3)"


def send(method, path, body=b""):
    """Sends one HTTP/1.0 request on a fresh connection; returns the socket.
    HTTP/1.0: the engine ends the answer by closing the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCKET)
    head = (f"{method} /v1.41{path} HTTP/1.0\r\nHost: docker\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    s.sendall(head.encode() + body)
    return s


def read_head(s):
    """Reads up to the end of the answer's head; returns (status, the rest)."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            raise RuntimeError(f"connection closed in the head: {data!r}")
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


def read_rest(s, rest):
    while True:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    s.close()
    return rest


def call(method, path, body=None):
    """One call; returns (status, JSON body or None)."""
    s = send(method, path, json.dumps(body).encode() if body is not None else b"")
    status, rest = read_head(s)
    raw = read_rest(s, rest)
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, None


def unix_time(rfc3339):
    """Docker's nanosecond RFC 3339 UTC time as Unix seconds."""
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(?:\.(\d+))?Z$", rfc3339)
    if not m:
        raise ValueError(f"not a time: {rfc3339}")
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (m.group(2) or "0"))


class DieEvents:
    """The engine's `die` events of this run's containers, followed live."""

    def __init__(self, run_id):
        self.lock = threading.Lock()
        self.at = {}  # container id -> Unix time
        filters = urllib.parse.quote(json.dumps(
            {"type": ["container"], "event": ["die"], "label": [f"pyexec.bench={run_id}"]}))
        self.sock = send("GET", f"/events?filters={filters}")
        status, self.rest = read_head(self.sock)
        if status != 200:
            raise RuntimeError(f"GET /events: HTTP {status}")
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        buf = self.rest  # one JSON object per line (HTTP/1.0: no chunk framing)
        while True:
            *lines, buf = buf.split(b"\n")
            for line in lines:
                ev = json.loads(line) if line.strip() else {}
                if ev.get("status") == "die":
                    with self.lock:
                        self.at[ev["id"]] = ev["timeNano"] / 1e9
            try:
                d = self.sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d

    def get(self, cid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if cid in self.at:
                    return self.at[cid]
            time.sleep(0.01)
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=10)
        self.sock.close()


def one(image, run_id, mode, events):
    name = f"pxbench-{run_id}-{uuid.uuid4().hex[:8]}"
    body = {"Image": image, "Cmd": ["python3", "-I", "-S", "-c", PROGRAM], "User": "65534:65534",
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
            "OpenStdin": True, "StdinOnce": True, "Labels": {"pyexec.bench": run_id},
            "HostConfig": {"NetworkMode": "none", "LogConfig": {"Type": "none", "Config": {}}}}
    st, created = call("POST", f"/containers/create?name={name}", body)
    if st != 201:
        raise RuntimeError(f"create: HTTP {st}: {created}")
    cid = created["Id"]
    attach = send("POST", f"/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1")
    st, out = read_head(attach)
    if st not in (101, 200):
        raise RuntimeError(f"attach: HTTP {st}")
    st, _ = call("POST", f"/containers/{cid}/start")
    if st != 204:
        raise RuntimeError(f"start: HTTP {st}")
    wait = None
    if mode == "early":
        wait = send("POST", f"/containers/{cid}/wait?condition=not-running")
        st, early_rest = read_head(wait)  # the engine answers the head once registered
    attach.shutdown(socket.SHUT_WR)  # the program's EOF: it ends now
    while b"done" not in out:
        d = attach.recv(4096)
        if not d:
            raise RuntimeError(f"attach stream ended without the line: {out!r}")
        out += d
    t_line = time.time()
    if mode == "late":
        wait = send("POST", f"/containers/{cid}/wait?condition=not-running")
        st, early_rest = read_head(wait)
    answer = read_rest(wait, early_rest)
    t_answer = time.time()
    attach.close()
    if st != 200 or json.loads(answer).get("StatusCode") != 3:
        raise RuntimeError(f"wait: HTTP {st}: {answer!r}")
    st, info = call("GET", f"/containers/{cid}/json")
    exited = unix_time(info["State"]["FinishedAt"])
    died = events.get(cid)
    call("DELETE", f"/containers/{cid}?force=1")
    ms = lambda t: (t - t_line) * 1000 if t is not None else float("nan")
    return {"exit": ms(exited), "die": ms(died), "answer": ms(t_answer)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=15, help="runs per mode (default 15)")
    ap.add_argument("--image", default="pyexec/python:3.11")
    args = ap.parse_args()
    run_id = uuid.uuid4().hex[:10]
    events = DieEvents(run_id)
    samples = {"early": [], "late": []}
    try:
        for i in range(args.iterations):
            for mode in (("early", "late") if i % 2 == 0 else ("late", "early")):
                samples[mode].append(one(args.image, run_id, mode, events))
    finally:
        events.close()
        filters = urllib.parse.quote(json.dumps({"label": [f"pyexec.bench={run_id}"]}))
        _, left = call("GET", f"/containers/json?all=1&filters={filters}")
        for c in left or []:
            call("DELETE", f"/containers/{c['Id']}?force=1")
    print(f"load average {os.getloadavg()[0]:.1f}; ms after the program's last output, "
          f"{args.iterations} runs per mode, interleaved")
    print("| wait opened | exit p50 | die p50 | answer p50 | answer p90 |")
    print("|---|---:|---:|---:|---:|")
    for mode, rows in samples.items():
        col = {k: sorted(r[k] for r in rows) for k in ("exit", "die", "answer")}
        p90 = col["answer"][min(len(rows) - 1, int(round(0.9 * (len(rows) - 1))))]
        print(f"| {mode} | {statistics.median(col['exit']):.1f} | "
              f"{statistics.median(col['die']):.1f} | {statistics.median(col['answer']):.1f} | "
              f"{p90:.1f} |")


if __name__ == "__main__":
    main()
