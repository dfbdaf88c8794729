#!/usr/bin/python3
"""Soak test: many executions of every kind against one pyexecd, then a
check for leaks.

    scripts/soak [--count 1000] [--concurrency 8] [--json FILE]

Starts its own pyexecd (a unique --instance, the real Docker engine), warms
it up, then runs COUNT executions from CONCURRENCY client threads, cycling
through these kinds (each checks its expected answer):

    normal   prints and exits 0                  COMPLETED / EXITED, exact stdout
    stdin    echoes stdin, exits 3               COMPLETED / EXITED, exit 3
    timeout  sleeps past a 1 s timeout           COMPLETED / TIMEOUT
    kill     async, Kill once it printed         KILLED / KILLED
    oom      allocates past 64 MiB               COMPLETED / MEMORY_LIMIT
    flood    writes past the 1 MiB output cap    COMPLETED / OUTPUT_LIMIT

It reports: wrong answers, executions stuck non-terminal, containers left
behind (the server's instance, executions' containers), the server's RSS
and open descriptors (/proc/<pid>/status, /proc/<pid>/fd) before, right
after, and once the finished executions' retention has passed, the wall
time and the rate. Exit status 0 only when there are no wrong answers, no
stuck executions, no leaked containers and the server exits cleanly.

Runs with /usr/bin/python3 (python3-grpcio). Talks to 127.0.0.1 only; the
containers have no network. Environment: PYEXECD_BIN (default
bazel-bin/server/pyexecd), PYEXEC_TEST_IMAGE (default pyexec/python:3.11).
"""

import argparse
import collections
import concurrent.futures
import json
import os
import pathlib
import sys
import threading
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402

import grpc  # noqa: E402

IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"
OUTPUT_LIMIT = 1 << 20
RETENTION_S = 20

KINDS = ["normal", "stdin", "timeout", "normal", "kill", "oom", "normal", "flood"]


def proc_bytes(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def snapshot(pid):
    return {"rss_mb": round(proc_bytes(pid, "VmRSS") / 2**20, 1),
            "peak_rss_mb": round(proc_bytes(pid, "VmHWM") / 2**20, 1),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task"))}


def execution_containers(instance):
    return [c for c in pyexecd.containers(f"pyexec.instance={instance}")
            if "pyexec.execution" in (c.get("Labels") or {})]


class Soak:
    def __init__(self, stub, pb):
        self.stub = stub
        self.pb = pb
        self.lock = threading.Lock()
        self.ids = []
        self.outcomes = collections.Counter()
        self.wrong = []

    def request(self, code, async_=False, stdin=b"", **config):
        md = self.pb.Metadata(stdin=stdin)
        if config:
            md.config.CopyFrom(self.pb.ExecutionConfig(**config))
        req = self.pb.ExecuteRequest(metadata=md)
        setattr(req, "async", async_)
        req.files.extend(pyexecd.make_files({"main.py": code}))
        return req

    def run_one(self, i):
        kind = KINDS[i % len(KINDS)]
        try:
            res, expect = getattr(self, "do_" + kind)(i)
            got = (pyexecd.status_name(res), pyexecd.reason_name(res))
            ok = got == expect
            detail = "" if ok else (f"{got} != {expect}, exit {res.exit_code}: {res.error} "
                                    f"{res.stderr[-200:]!r}")
            if ok and kind in ("normal", "stdin"):
                ok = res.stdout == f"run {i}\n".encode()
                detail = "" if ok else f"stdout {res.stdout[:80]!r}"
        except grpc.RpcError as e:
            ok, detail = False, f"RPC {e.code().name}: {e.details()}"
        except Exception as e:  # noqa: BLE001 - reported as a wrong answer
            ok, detail = False, f"{type(e).__name__}: {e}"
        with self.lock:
            self.outcomes[(kind, "ok" if ok else "wrong")] += 1
            if not ok:
                self.wrong.append(f"#{i} {kind}: {detail}")

    def execute(self, req, timeout=120):
        res = self.stub.Execute(req, timeout=timeout)
        with self.lock:
            self.ids.append(res.execution_id)
        return res

    def do_normal(self, i):
        res = self.execute(self.request(f"print('run {i}')\n", timeout_seconds=60))
        return res, ("EXECUTION_STATUS_COMPLETED", "TERMINATION_REASON_EXITED")

    def do_stdin(self, i):
        code = "import sys\nsys.stdout.write(sys.stdin.read())\nsys.exit(3)\n"
        res = self.execute(self.request(code, stdin=f"run {i}\n".encode(), timeout_seconds=60))
        if res.exit_code != 3:
            raise AssertionError(f"exit code {res.exit_code}")
        return res, ("EXECUTION_STATUS_COMPLETED", "TERMINATION_REASON_EXITED")

    def do_timeout(self, i):
        res = self.execute(self.request("import time\ntime.sleep(3600)\n", timeout_seconds=1))
        return res, ("EXECUTION_STATUS_COMPLETED", "TERMINATION_REASON_TIMEOUT")

    def do_kill(self, i):
        code = "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"
        first = self.execute(self.request(code, async_=True, timeout_seconds=120), timeout=30)
        eid = first.execution_id
        stream = self.stub.StreamOutput(self.pb.StreamOutputRequest(execution_id=eid),
                                        timeout=120)
        if pyexecd.read_until(stream, b"ready\n") != b"ready\n":
            raise AssertionError("no 'ready' before the end")
        stream.cancel()
        res = self.stub.Kill(self.pb.KillRequest(execution_id=eid), timeout=60)
        return res, ("EXECUTION_STATUS_KILLED", "TERMINATION_REASON_KILLED")

    def do_oom(self, i):
        code = "b = []\nwhile True:\n    b.append(bytearray(4 << 20))\n"
        res = self.execute(self.request(code, memory_mb=64, timeout_seconds=60))
        return res, ("EXECUTION_STATUS_COMPLETED", "TERMINATION_REASON_MEMORY_LIMIT")

    def do_flood(self, i):
        code = "import sys\nwhile True:\n    sys.stdout.buffer.write(b'f' * 65536)\n"
        res = self.execute(self.request(code, timeout_seconds=60))
        if len(res.stdout) + len(res.stderr) != OUTPUT_LIMIT:
            raise AssertionError(f"kept {len(res.stdout) + len(res.stderr)} bytes")
        return res, ("EXECUTION_STATUS_COMPLETED", "TERMINATION_REASON_OUTPUT_LIMIT")

    def stuck(self):
        """Ids whose GetExecution is not terminal (NOT_FOUND: already
        terminal and past retention)."""
        found = []
        for eid in self.ids:
            try:
                res = self.stub.GetExecution(self.pb.GetExecutionRequest(execution_id=eid),
                                             timeout=10)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    continue
                found.append(f"{eid}: {e.code().name}")
                continue
            if not pyexecd.is_terminal(res):
                found.append(f"{eid}: {pyexecd.status_name(res)}")
        return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-concurrent", type=int, default=0,
                    help="the server's --max-concurrent (default: --concurrency)")
    ap.add_argument("--json", help="also write the report as JSON to this file")
    args = ap.parse_args()
    if args.count < 1 or args.concurrency < 1:
        ap.error("--count and --concurrency must be positive")

    instance = f"soak-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    server_args = ["--default-image", IMAGE, "--instance", instance,
                   "--output-limit-bytes", str(OUTPUT_LIMIT),
                   "--retention-s", str(RETENTION_S),
                   "--max-concurrent", str(args.max_concurrent or args.concurrency),
                   "--max-queue", str(max(64, 2 * args.concurrency)),
                   "--log-level", "warn"]
    report = {"count": args.count, "concurrency": args.concurrency, "instance": instance,
              "kinds": KINDS}
    ok = True
    with pyexecd.Server(*server_args) as srv:
        pb = pyexecd.stubs().executor
        stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
        soak = Soak(stub, pb)
        pid = srv.proc.pid
        for i in range(len(KINDS)):  # warm-up: one of each kind
            soak.run_one(i)
        soak.wrong.clear()
        soak.outcomes.clear()
        soak.ids.clear()
        report["before"] = snapshot(pid)
        print(f"soak: {args.count} executions, concurrency {args.concurrency}, "
              f"instance {instance}; server before: {report['before']}", flush=True)

        started = time.monotonic()
        done = 0
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            for _ in pool.map(soak.run_one, range(args.count)):
                done += 1
                if done % 100 == 0:
                    rate = done / (time.monotonic() - started)
                    print(f"soak: {done}/{args.count} ({rate:.1f}/s), wrong so far "
                          f"{len(soak.wrong)}", flush=True)
        wall = time.monotonic() - started
        report["wall_s"] = round(wall, 1)
        report["per_second"] = round(args.count / wall, 2)
        report["after"] = snapshot(pid)
        report["outcomes"] = {f"{k}/{v}": n for (k, v), n in sorted(soak.outcomes.items())}
        report["wrong"] = soak.wrong[:50]
        report["wrong_count"] = len(soak.wrong)
        stuck = soak.stuck()
        report["stuck"] = stuck[:50]
        report["stuck_count"] = len(stuck)
        # Removal may trail an execution's end by a moment.
        pyexecd.wait_until(lambda: not execution_containers(instance), 30)
        leaked = execution_containers(instance)
        report["leaked_containers"] = [c.get("Names") for c in leaked]
        report["leaked_count"] = len(leaked)
        # Once retention has passed, the finished executions' records (and
        # their output) are gone: what is left is the server's own.
        time.sleep(RETENTION_S + 5)
        # The store drops expired records lazily, on its next call: make one.
        try:
            stub.GetExecution(pb.GetExecutionRequest(execution_id=soak.ids[0]), timeout=10)
            report["retention_check"] = "a finished execution was still retained"
            ok = False
        except grpc.RpcError as e:
            report["retention_check"] = e.code().name
        report["after_retention"] = snapshot(pid)
        rc = srv.stop(timeout=60)
        report["server_exit"] = rc
        report["containers_after_stop"] = len(pyexecd.containers(f"pyexec.instance={instance}"))
        ok = (not soak.wrong and not stuck and not leaked and rc == 0
              and report["containers_after_stop"] == 0)
    report["ok"] = ok

    print(json.dumps(report, indent=2))
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"soak: {'ok' if ok else 'FAILED'}: {args.count} executions in {report['wall_s']} s, "
          f"{report['wrong_count']} wrong, {report['stuck_count']} stuck, "
          f"{report['leaked_count']} leaked containers; RSS {report['before']['rss_mb']} -> "
          f"{report['after']['rss_mb']} -> {report['after_retention']['rss_mb']} MB, fds "
          f"{report['before']['fds']} -> {report['after']['fds']} -> "
          f"{report['after_retention']['fds']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
