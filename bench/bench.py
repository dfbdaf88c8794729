#!/usr/bin/python3
"""pyexec benchmark suite: pyexecd against `docker run --rm`, side by side.

Run it with bench/run (see docs/benchmarks.md). It starts its own pyexecd
(instance label `bench`), measures every case against the baseline
`docker run --rm` of the same program in the same image, interleaving the
two in each iteration (rotating the order) so that drift in the machine's
load hits both alike, prints Markdown tables and writes the raw samples as
JSON under bench/results/.

Only 127.0.0.1 (the server) and the Docker socket are ever talked to; every
container runs with networking disabled. Every baseline container carries
the label pyexec.bench=<run id> and is removed at the end, whatever happens;
the server is stopped by its pid.

Runs with /usr/bin/python3 (the interpreter that has python3-grpcio).
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def repo_relative(path):
    """`path` relative to the repository when it lies inside it (results
    are committed: they must not name this machine's checkout)."""
    if os.path.isabs(path) and os.path.commonpath([path, REPO]) == REPO:
        return os.path.relpath(path, REPO)
    return path


def recorded_argv(argv):
    """argv with every path inside the repository (alone or as --flag=PATH)
    made repo-relative."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        out.append(flag + eq + repo_relative(value) if eq and arg.startswith("--")
                   else repo_relative(arg))
    return out
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pyexecd  # noqa: E402  (tests/support/pyexecd.py)

DOCKER = "/usr/bin/docker"
# The bench server's --instance: one per run, so that two runs on one machine
# (and their start-up reaps and cleanups) never touch each other's containers.
INSTANCE = f"bench-{uuid.uuid4().hex[:8]}"
MB = 1024 * 1024

# ---------------------------------------------------------------------------
# The programs. Each is run as main.py by pyexec and as `python3 -c` by the
# baseline (multi-file projects: a read-only bind mount, see below).

HELLO = 'print("Hello, World!")\n'
EVAL_CASE = "Eval 1 + 1 vs Execute hello world"
COMPUTE = "print(sum(i * i for i in range(10**6)))\n"
COMPUTE_OUT = str(sum(i * i for i in range(10**6))) + "\n"
MEMORY = ('data = b"\\x01" * (50 * 1024 * 1024)\n'
          'print(len(data))\n')
EMPTY = ""
STDIN_ECHO = ("import sys\n"
              "data = sys.stdin.read()\n"
              "print(len(data), data.count(chr(10)))\n")
STDIN_DATA = "".join(f"line {i}: the quick brown fox\n" for i in range(40))  # ~1.2 KB
# Prints once, then blocks (pyexec closes stdin after delivering it, so the
# sleep is what keeps the pyexec run alive; docker's stdin stays open).
READY_THEN_BLOCK = ("import sys, time\n"
                    "sys.stdout.write('ready\\n')\n"
                    "sys.stdin.read()\n"
                    "time.sleep(300)\n")
CHUNK_LINES = 20
# One write per line.
TIMESTAMPS = ("import sys, time\n"
              "sys.stdout.write('start\\n')\n"
              "time.sleep(0.1)\n"
              f"for _ in range({CHUNK_LINES}):\n"
              "    sys.stdout.write(repr(time.time()) + '\\n')\n"
              "    time.sleep(0.02)\n")
# print(): the value and the newline are separate writes, which the server
# coalesces into one chunk (docs/sandbox.md#output-chunks).
TIMESTAMPS_PRINT = ("import time\n"
                    "print('start')\n"
                    "time.sleep(0.1)\n"
                    f"for _ in range({CHUNK_LINES}):\n"
                    "    print(repr(time.time()))\n"
                    "    time.sleep(0.02)\n")
CHUNK_VARIANTS = ("pyexec StreamOutput", "pyexec StreamOutput, print()")


def big_stdout(nbytes):
    lines = nbytes // 1024
    return ("import sys\n"
            "line = b'x' * 1023 + b'\\n'\n"
            "w = sys.stdout.buffer.write\n"
            f"for _ in range({lines}):\n"
            "    w(line)\n"), lines * 1024


def project(nfiles):
    """A project of `nfiles` files: main.py importing nfiles-1 modules."""
    files = {}
    mods = [f"mod{i}" for i in range(1, nfiles)]
    for i, m in enumerate(mods, 1):
        files[f"{m}.py"] = f"def value():\n    return {i}\n"
    main = "".join(f"import {m}\n" for m in mods)
    main += "print(sum([" + ", ".join(f"{m}.value()" for m in mods) + "]))\n"
    files = {"main.py": main, **files}
    return files, f"{sum(range(1, nfiles))}\n"


PRESETS = {  # name: (memory_mb, cpu_shares)
    "small": (256, 512),
    "medium": (1024, 1024),
    "large": (4096, 2048),
}

# ---------------------------------------------------------------------------
# The baseline: docker run --rm with the hardening pyexecd applies, where it
# is cheap (everything but the bootstrap's tar delivery over stdin).


def hardening(memory_mb=1024, cpu_shares=1024, work_tmpfs=True):
    flags = ["--network", "none", "--read-only", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges", "--pids-limit", "256",
             "--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m",
             "--cpu-shares", str(cpu_shares), "--user", "65534:65534", "--init",
             "--log-driver", "none",
             "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=64m,mode=1777",
             "--shm-size", "64m",
             "--ulimit", "nofile=1024:1024", "--ulimit", "core=0:0",
             "--ulimit", "fsize=2147483648:2147483648",
             "-w", "/work",
             "-e", "PYTHONUNBUFFERED=1", "-e", "PYTHONDONTWRITEBYTECODE=1",
             "-e", "HOME=/tmp"]
    if work_tmpfs:
        flags += ["--tmpfs",
                  "/work:rw,exec,nosuid,nodev,size=2048m,mode=1777,uid=65534,gid=65534"]
    return flags


class Bench:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self.seq_lock = threading.Lock()
        self.server = None
        self.stub = None
        self.pb = None
        self.tmp = os.path.join("/tmp", f"pyexec-bench-{self.run_id}")
        os.makedirs(self.tmp, exist_ok=True)
        self.results = {}
        self.resources = {}
        self.events = EventLog()

    # -- naming --

    def name(self):
        with self.seq_lock:
            self.seq += 1
            return f"pxbench-{self.run_id}-{self.seq}"

    # -- baseline --

    def docker_argv(self, name, cmd, memory_mb=1024, cpu_shares=1024, stdin=False,
                    mount=None):
        argv = [DOCKER, "run", "--rm", "--name", name, "--label",
                f"pyexec.bench={self.run_id}"]
        if stdin:
            argv.append("-i")
        if self.args.baseline_runtime:
            argv += ["--runtime", self.args.baseline_runtime]
        argv += hardening(memory_mb, cpu_shares, work_tmpfs=mount is None)
        if mount:
            argv += ["-v", f"{mount}:/work:ro"]
        return argv + [self.args.image] + cmd

    def docker_run(self, code, stdin=None, memory_mb=1024, cpu_shares=1024, mount=None,
                   cmd=None):
        """Runs one baseline container; returns (ms, stdout bytes)."""
        argv = self.docker_argv(self.name(), cmd or ["python3", "-c", code], memory_mb,
                                cpu_shares, stdin=stdin is not None, mount=mount)
        t0 = time.monotonic()
        p = subprocess.run(argv, input=stdin.encode() if stdin is not None else None,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           timeout=120)
        ms = (time.monotonic() - t0) * 1000
        if p.returncode != 0:
            raise RuntimeError(f"docker run exited {p.returncode}: "
                               f"{p.stderr.decode(errors='replace')[-300:]}")
        return ms, p.stdout

    # -- pyexec --

    def request(self, code=None, files=None, stdin=None, memory_mb=0, cpu_shares=0,
                async_=False):
        pb = self.pb
        files = files if files is not None else {"main.py": code}
        cfg = pb.ExecutionConfig(timeout_seconds=120, memory_mb=memory_mb,
                                 cpu_shares=cpu_shares)
        md = pb.Metadata(entrypoint="main.py", config=cfg,
                         stdin=stdin.encode() if stdin is not None else b"")
        # `async` is a Python keyword, hence the keyword-argument dict.
        return pb.ExecuteRequest(metadata=md, files=pyexecd.make_files(files),
                                 **{"async": async_})

    def check(self, res):
        if pyexecd.status_name(res) != "EXECUTION_STATUS_COMPLETED" or res.exit_code != 0:
            raise RuntimeError(f"{res.execution_id}: {pyexecd.status_name(res)} "
                               f"{pyexecd.reason_name(res)} exit {res.exit_code} "
                               f"{res.error!r} {res.stderr[-300:]!r}")
        return res

    def pyexec_sync(self, **kw):
        """One sync Execute; returns (ms, result)."""
        req = self.request(**kw)
        t0 = time.monotonic()
        res = self.stub.Execute(req, timeout=180)
        ms = (time.monotonic() - t0) * 1000
        return ms, self.check(res)

    def pyexec_eval(self, code):
        """One sync Eval; returns (ms, result)."""
        req = self.pb.EvalRequest(code=code,
                                  config=self.pb.ExecutionConfig(timeout_seconds=120))
        t0 = time.monotonic()
        res = self.stub.Eval(req, timeout=180)
        ms = (time.monotonic() - t0) * 1000
        return ms, self.check(res)

    def pyexec_poll(self, code):
        pb = self.pb
        t0 = time.monotonic()
        res = self.stub.Execute(self.request(code=code, async_=True), timeout=60)
        eid = res.execution_id
        while not pyexecd.is_terminal(res):
            time.sleep(0.05)
            res = self.stub.GetExecution(pb.GetExecutionRequest(execution_id=eid), timeout=60)
        ms = (time.monotonic() - t0) * 1000
        return ms, self.check(res)

    def pyexec_stream(self, code):
        pb = self.pb
        t0 = time.monotonic()
        res = self.stub.Execute(self.request(code=code, async_=True), timeout=60)
        out = bytearray()
        final = None
        for chunk in self.stub.StreamOutput(
                pb.StreamOutputRequest(execution_id=res.execution_id), timeout=180):
            if chunk.data and chunk.stream == pb.STREAM_STDOUT:
                out += chunk.data
            if chunk.HasField("result"):
                final = chunk.result
                break
        ms = (time.monotonic() - t0) * 1000
        if final is None:
            raise RuntimeError("stream ended without a result")
        self.check(final)
        return ms, bytes(out)

    # -- server --

    def start_server(self, extra):
        args = ["--instance", INSTANCE, "--max-concurrent", str(self.args.max_concurrent),
                *(["--runtime", self.args.runtime] if self.args.runtime else []),
                "--max-queue", "256", "--log-level", "warn", "--reaper-interval-s", "0"]
        self.server = pyexecd.Server(*(args + extra), binary=self.args.binary).start()
        s = pyexecd.stubs()
        self.pb = s.executor
        self.stub = s.executor_grpc.ExecutorServiceStub(self.server.channel())
        self.server_argv = args + extra

    def stop_server(self):
        if self.server is not None:
            self.server.close()
            self.server = None
            self.stub = None

    def server_proc(self):
        return proc_usage(self.server.proc.pid)

    # -- cleanup --

    def cleanup(self):
        self.stop_server()
        self.events.close()
        left = []
        for label in (f"pyexec.bench={self.run_id}", f"pyexec.instance={INSTANCE}"):
            try:
                for c in pyexecd.containers(label):
                    left.append(c["Id"])
                    print(f"bench: leftover container {' '.join(c.get('Names') or [])} "
                          f"({c.get('State')}, {label})", file=sys.stderr)
                    pyexecd.docker_api("DELETE", f"/containers/{c['Id']}?force=1&v=1")
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                print(f"bench: cleanup of {label}: {e}", file=sys.stderr)
        for root, dirs, files in os.walk(self.tmp, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        if os.path.isdir(self.tmp):
            os.rmdir(self.tmp)
        return left


# ---------------------------------------------------------------------------
# /proc readings


def proc_usage(pid):
    """CPU seconds (user+system) and RSS/HWM kB of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return {"cpu_s": cpu, "rss_kb": rss, "hwm_kb": hwm}


def pids_named(comm):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == comm:
                        out.append(int(d))
            except OSError:
                pass
    return out


def machine_busy_s():
    """CPU seconds the whole machine spent busy (every process, the kernel,
    interrupts: all of /proc/stat's cpu line but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def engine_cpu():
    """CPU seconds of dockerd + containerd (shared with anyone else using the engine)."""
    total = 0.0
    for comm in ("dockerd", "containerd"):
        for pid in pids_named(comm):
            try:
                total += proc_usage(pid)["cpu_s"]
            except OSError:
                pass
    return total


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------
# Statistics


def pct(values, p):
    """Percentile with linear interpolation between closest ranks."""
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "mean": statistics.fmean(values),
            "min": min(values), "max": max(values)}


# ---------------------------------------------------------------------------
# Measuring


class Recorder:
    """Samples of one phase: case -> variant -> list of sample dicts."""

    def __init__(self, phase, bench, pool=0):
        self.phase = phase
        self.bench = bench
        self.pool = pool
        self.cases = {}
        self.meta = {}

    def run_case(self, case, variants, iterations, unit="ms", note=""):
        """Runs `variants` ([(name, fn)], fn returns a sample dict with at
        least `value`, or a list of such dicts) `iterations` times each,
        rotating their order every iteration."""
        only = self.bench.args.only
        if only and not any(o in case for o in only):
            return
        store = self.cases.setdefault(case, {"unit": unit, "note": note, "variants": {}})
        for name, _ in variants:
            store["variants"].setdefault(name, {"samples": [], "failures": []})
        if self.pool:
            # Every case starts with a full pool (the server fills it after
            # start-up, and a previous case may have drained it); untimed.
            if not pyexecd.wait_until(lambda: pool_ready() >= self.pool, timeout=60,
                                      interval=0.05):
                log(f"bench: [{self.phase}] {case}: pool not full after 60 s")
        t_case = time.monotonic()
        wall0 = time.time()
        for i in range(iterations):
            k = i % len(variants)
            for name, fn in variants[k:] + variants[:k]:
                slot = store["variants"][name]
                try:
                    got = fn()
                except Exception as e:  # noqa: BLE001 - a failure is data too
                    slot["failures"].append(f"{type(e).__name__}: {e}"[:500])
                    continue
                slot["samples"].extend(got if isinstance(got, list) else [got])
        elapsed = time.monotonic() - t_case
        # Which path served the server's runs: pool hand-overs vs cold
        # creations, from the engine's event log over the case's span.
        try:
            use = self.bench.events.pool_use(wall0)
            prev = store.get("pool_use", {"pooled": 0, "cold": 0})
            store["pool_use"] = {k: prev[k] + use[k] for k in prev}
        except Exception as e:  # noqa: BLE001 - a missing count is not fatal
            log(f"bench: engine events for {case}: {e}")
        parts = []
        for name, _ in variants:
            slot = store["variants"][name]
            vals = [s["value"] for s in slot["samples"]]
            p50 = pct(vals, 50)
            parts.append(f"{name} p50 {p50:.1f}" if p50 is not None else f"{name} -")
            if slot["failures"]:
                parts[-1] += f" ({len(slot['failures'])} failed: {slot['failures'][-1][:120]})"
        use = store.get("pool_use")
        if use:
            parts.append(f"server runs: {use['pooled']} pooled, {use['cold']} cold")
        log(f"[{self.phase}] {case}: " + "; ".join(parts) + f"  [{elapsed:.0f} s]")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sample(ms, **extra):
    d = {"value": ms}
    d.update(extra)
    return d


def pool_ready():
    """Idle pooled containers (namespace mode: hosts) of the bench server
    that are running."""
    n = 0
    for c in pyexecd.containers("pyexec.pool=1"):
        if (c.get("Labels") or {}).get("pyexec.instance") != INSTANCE:
            continue
        if c.get("State") == "running" and \
                any(x.startswith(("/pyexec-pool-", "/pyexec-host-"))
                    for x in c.get("Names") or []):
            n += 1
    return n


def latency_cases(b, rec, iters, full, pool=0):
    """The original service's cases, each against its docker baseline."""

    def expect(out, want):
        if out != want.encode():
            raise RuntimeError(f"unexpected output {out[:100]!r}")

    def simple(code, want, stdin=None, memory_mb=0, cpu_shares=0):
        def px():
            ms, res = b.pyexec_sync(code=code, stdin=stdin, memory_mb=memory_mb,
                                    cpu_shares=cpu_shares)
            expect(res.stdout, want)
            return sample(ms, server_duration_ms=res.duration_ms)

        def dk():
            ms, out = b.docker_run(code, stdin=stdin, memory_mb=memory_mb or 1024,
                                   cpu_shares=cpu_shares or 1024)
            expect(out, want)
            return sample(ms)
        return [("pyexec", px), ("docker run", dk)]

    rec.run_case("basic print", simple(HELLO, "Hello, World!\n") +
                 [("Engine API floor (create+start+wait+remove, no I/O)",
                   lambda: engine_floor(b, HELLO))], iters)
    if full:
        rec.run_case("computation (sum of squares to 10^6)", simple(COMPUTE, COMPUTE_OUT),
                     iters)
        rec.run_case("memory (allocate 50 MB)", simple(MEMORY, f"{50 * MB}\n"), iters)
    rec.run_case("empty program", simple(EMPTY, ""), iters)

    # Eval of `1 + 1` next to a hello-world Execute (each sample also keeps
    # the sandbox's own CPU time from its cgroup: the difference is what the
    # Eval wrapper adds) and `docker run --rm ... python3 -c`.
    def ev():
        ms, res = b.pyexec_eval("1 + 1")
        if not res.HasField("result") or res.result.value != "2":
            raise RuntimeError(f"unexpected result {res.result!r}")
        return sample(ms, sandbox_cpu_ms=res.usage.cpu_time_ms)

    def ex_hello():
        ms, res = b.pyexec_sync(code=HELLO)
        expect(res.stdout, "Hello, World!\n")
        return sample(ms, sandbox_cpu_ms=res.usage.cpu_time_ms)

    def dk_eval():
        ms, out = b.docker_run("print(1 + 1)")
        expect(out, "2\n")
        return sample(ms)
    rec.run_case(EVAL_CASE, [("pyexec Eval 1 + 1", ev), ("pyexec Execute hello world", ex_hello),
                             ("docker run python3 -c 'print(1 + 1)'", dk_eval)], iters,
                 note="sandbox_cpu_ms: the container's CPU time (bootstrap, wrapper, program) "
                      "from its cgroup")

    if pool:
        # How a sequential client sees the pool: runs back to back (the pool
        # refills only while runs are going on) vs one run once the pool is
        # full again (a client that pauses between runs).
        burst = 3 * pool + 4

        def spaced():
            t0 = time.monotonic()
            pyexecd.wait_until(lambda: pool_ready() >= pool, timeout=15, interval=0.02)
            wait = (time.monotonic() - t0) * 1000
            ms, res = b.pyexec_sync(code=HELLO)
            expect(res.stdout, "Hello, World!\n")
            return sample(ms, refill_wait_ms=wait)

        def back_to_back():
            out = []
            for i in range(burst):
                ms, res = b.pyexec_sync(code=HELLO)
                expect(res.stdout, "Hello, World!\n")
                extra = {"burst_after_pool_ms": ms} if i >= pool else {}
                out.append(sample(ms, position=i, **extra))
            return out

        def dk():
            ms, out = b.docker_run(HELLO)
            expect(out, "Hello, World!\n")
            return sample(ms)
        rec.run_case("hello world, spaced vs back to back",
                     [("pyexec spaced (pool full before each run)", spaced),
                      (f"pyexec back to back (bursts of {burst})", back_to_back),
                      ("docker run", dk)], max(3, iters // 2),
                     note=f"spaced: waits (untimed) until {pool} pooled containers are "
                          f"running; back to back: {burst} sync runs in a row, "
                          f"burst_after_pool_ms = the runs after the first {pool}")

    # Sync vs async with polling vs async with StreamOutput.
    def sync():
        ms, res = b.pyexec_sync(code=HELLO)
        expect(res.stdout, "Hello, World!\n")
        return sample(ms)

    def poll():
        ms, res = b.pyexec_poll(HELLO)
        expect(res.stdout, "Hello, World!\n")
        return sample(ms)

    def stream():
        ms, out = b.pyexec_stream(HELLO)
        expect(out, "Hello, World!\n")
        return sample(ms)

    def dk_hello():
        ms, out = b.docker_run(HELLO)
        expect(out, "Hello, World!\n")
        return sample(ms)
    if not full:
        return
    rec.run_case("sync vs async (hello world)",
                 [("pyexec sync", sync), ("pyexec async + GetExecution every 50 ms", poll),
                  ("pyexec async + StreamOutput", stream), ("docker run", dk_hello)], iters)

    # Multi-file projects: pyexec gets the files in the request; the baseline
    # bind-mounts a directory holding them read-only at /work.
    for n in (2, 5, 10):
        files, want = project(n)
        d = os.path.join(b.tmp, f"project{n}")
        os.makedirs(d, exist_ok=True)
        for path, text in files.items():
            with open(os.path.join(d, path), "w") as f:
                f.write(text)
        os.chmod(d, 0o755)

        def px(files=files, want=want):
            ms, res = b.pyexec_sync(files=files)
            expect(res.stdout, want)
            return sample(ms)

        def dk(d=d, want=want):
            ms, out = b.docker_run(None, mount=d, cmd=["python3", "main.py"])
            expect(out, want)
            return sample(ms)
        rec.run_case(f"multi-file project, {n} files", [("pyexec", px), ("docker run", dk)],
                     iters, note="baseline: read-only bind mount of the files at /work")

    rec.run_case("small stdin (1.2 KB)",
                 simple(STDIN_ECHO, f"{len(STDIN_DATA)} {STDIN_DATA.count(chr(10))}\n",
                        stdin=STDIN_DATA), iters)

    for size in (1 * MB, 10 * MB):
        code, nbytes = big_stdout(size)

        def px(code=code, nbytes=nbytes):
            ms, res = b.pyexec_sync(code=code)
            if len(res.stdout) != nbytes:
                raise RuntimeError(f"got {len(res.stdout)} bytes of stdout, not {nbytes}")
            return sample(ms)

        def dk(code=code, nbytes=nbytes):
            ms, out = b.docker_run(code)
            if len(out) != nbytes:
                raise RuntimeError(f"got {len(out)} bytes of stdout, not {nbytes}")
            return sample(ms)
        rec.run_case(f"large stdout ({size // MB} MB)", [("pyexec", px), ("docker run", dk)],
                     iters)

    # k executions started together; the figure is the wall time of the batch.
    for k in (2, 5):
        def batch(one, k=k):
            lat = [None] * k
            errs = []
            gate = threading.Barrier(k + 1)

            def worker(i):
                gate.wait()
                try:
                    lat[i] = one()
                except Exception as e:  # noqa: BLE001
                    errs.append(e)
            ts = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
            for t in ts:
                t.start()
            gate.wait()
            t0 = time.monotonic()
            for t in ts:
                t.join()
            ms = (time.monotonic() - t0) * 1000
            if errs:
                raise errs[0]
            return sample(ms, each_ms=lat)

        def px1():
            ms, res = b.pyexec_sync(code=HELLO)
            expect(res.stdout, "Hello, World!\n")
            return ms

        def dk1():
            ms, out = b.docker_run(HELLO)
            expect(out, "Hello, World!\n")
            return ms
        rec.run_case(f"concurrent {k} (hello world, batch wall time)",
                     [("pyexec", lambda px1=px1, k=k: batch(px1, k)),
                      ("docker run", lambda dk1=dk1, k=k: batch(dk1, k))], iters)

    for preset, (mem, cpu) in PRESETS.items():
        rec.run_case(f"preset {preset} ({mem} MB, cpu_shares {cpu}; computation)",
                     simple(COMPUTE, COMPUTE_OUT, memory_mb=mem, cpu_shares=cpu), iters)


def stream_cases(b, rec, iters):
    """First byte, chunk-to-client delay, Kill."""
    pb = b.pb

    # First byte and Kill, in one run each: the program writes a line, then
    # blocks; we time Execute(async) -> first chunk, then Kill.
    def px():
        t0 = time.monotonic()
        res = b.stub.Execute(b.request(code=READY_THEN_BLOCK, async_=True), timeout=60)
        eid = res.execution_id
        it = b.stub.StreamOutput(pb.StreamOutputRequest(execution_id=eid), timeout=120)
        try:
            t1 = None
            for chunk in it:
                if chunk.data:
                    t1 = time.monotonic()
                    break
                if chunk.HasField("result"):
                    raise RuntimeError(f"ended before output: {chunk.result}")
            # By name: a pooled container never gets the pyexec.execution
            # label, but both paths name it pyexec-<execution id>. Namespace
            # mode's hosts keep their names; a Kill retires the busy one, so
            # "gone" is the first of the instance's hosts to go.
            st, info = pyexecd.docker_api("GET", f"/containers/pyexec-{eid}/json")
            if st == 200:
                cids = [info["Id"]]
                pooled = "pyexec.pool" in (info.get("Config", {}).get("Labels") or {})
            elif st == 404 and rec.phase == "namespace":
                cids = [c["Id"] for c in pyexecd.containers(f"pyexec.instance={INSTANCE}")
                        if c["State"] == "running"]
                pooled = True
            else:
                raise RuntimeError(f"inspect pyexec-{eid}: HTTP {st}")
            t2 = time.monotonic()
            killed = b.stub.Kill(pb.KillRequest(execution_id=eid), timeout=60)
            t3 = time.monotonic()
            t4 = wait_gone(cids)
        finally:
            it.cancel()
        if pyexecd.status_name(killed) != "EXECUTION_STATUS_KILLED":
            raise RuntimeError(f"Kill returned {pyexecd.status_name(killed)}")
        return sample((t1 - t0) * 1000, pooled=pooled, kill_rpc_ms=(t3 - t2) * 1000,
                      kill_return_to_gone_ms=(t4 - t3) * 1000,
                      kill_to_gone_ms=(t4 - t2) * 1000)

    def dk():
        name = b.name()
        argv = b.docker_argv(name, ["python3", "-c", READY_THEN_BLOCK], stdin=True)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        try:
            first = p.stdout.read(1)
            t1 = time.monotonic()
            if not first:
                raise RuntimeError("docker run ended before output")
            st, info = pyexecd.docker_api("GET", f"/containers/{name}/json")
            if st != 200:
                raise RuntimeError(f"inspect {name}: HTTP {st}")
            cid = info["Id"]
            t2 = time.monotonic()
            subprocess.run([DOCKER, "rm", "-f", name], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            t3 = time.monotonic()
            t4 = wait_gone(cid)
        finally:
            p.stdin.close()
            p.stdout.close()
            p.wait(timeout=60)
        return sample((t1 - t0) * 1000, kill_rpc_ms=(t3 - t2) * 1000,
                      kill_return_to_gone_ms=(t4 - t3) * 1000,
                      kill_to_gone_ms=(t4 - t2) * 1000)
    rec.run_case("first byte + kill", [("pyexec", px), ("docker run", dk)], iters,
                 note="value: start -> first output byte at the client; kill fields: "
                      "Kill RPC (pyexec) or `docker rm -f` (baseline)")

    # Chunk-to-client delay: the program writes time.time() every 20 ms; each
    # line's delay is the client's time.time() at receipt minus that value.
    def delays(lines_with_recv):
        out = []
        for line, recv in lines_with_recv:
            if line and line != b"start":
                out.append(sample((recv - float(line)) * 1000))
        if len(out) != CHUNK_LINES:
            raise RuntimeError(f"{len(out)} timestamp lines, not {CHUNK_LINES}")
        return out

    def split(buf, data, recv, got):
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            got.append((line, recv))
            buf[:] = rest

    def px_chunks(code=TIMESTAMPS):
        res = b.stub.Execute(b.request(code=code, async_=True), timeout=60)
        buf, got, final, n_chunks = bytearray(), [], None, 0
        for chunk in b.stub.StreamOutput(
                pb.StreamOutputRequest(execution_id=res.execution_id), timeout=120):
            recv = time.time()
            if chunk.data:
                n_chunks += 1
                split(buf, chunk.data, recv, got)
            if chunk.HasField("result"):
                final = chunk.result
                break
        if final is None:
            raise RuntimeError("stream ended without a result")
        b.check(final)
        samples = delays(got)
        # Chunks that carried the run's lines ("start" and the timestamps).
        for s in samples:
            s["chunks_per_line"] = n_chunks / (CHUNK_LINES + 1)
        return samples

    def dk_chunks():
        argv = b.docker_argv(b.name(), ["python3", "-c", TIMESTAMPS])
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        buf, got = bytearray(), []
        fd = p.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            recv = time.time()
            if not data:
                break
            split(buf, data, recv, got)
        p.stdout.close()
        if p.wait(timeout=60) != 0:
            raise RuntimeError(f"docker run exited {p.returncode}")
        return delays(got)
    rec.run_case("output chunk to client (per line)",
                 [(CHUNK_VARIANTS[0], px_chunks),
                  (CHUNK_VARIANTS[1], lambda: px_chunks(TIMESTAMPS_PRINT)),
                  ("docker run (stdout pipe)", dk_chunks)],
                 iters, note=f"{CHUNK_LINES} lines per run, 20 ms apart; print(): two "
                             "writes per line")


def wait_gone(cids, timeout=30.0):
    """Polls the Engine API until one of the containers `cids` (an id or a
    list of them) no longer exists; returns the monotonic time it was first
    seen gone. The engine has no cheaper way to ask, and a destroy event
    would arrive no sooner."""
    cids = [cids] if isinstance(cids, str) else list(cids)
    if not cids:
        raise RuntimeError("no container to wait for")
    deadline = time.monotonic() + timeout
    while True:
        for cid in cids:
            st, _ = pyexecd.docker_api("GET", f"/containers/{cid}/json")
            now = time.monotonic()
            if st == 404:
                return now
        if now > deadline:
            names = ", ".join(c[:12] for c in cids)
            raise RuntimeError(f"containers {names} still there after {timeout} s")
        time.sleep(0.002)


class EventLog:
    """The engine's create and rename events of the bench server's
    containers, followed live on one streaming GET /events connection (the
    engine keeps only its last 256 events for a `since` query, too few with
    the baseline's containers in between)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []  # (unix time, action, pooled container?, name)
        filters = urllib.parse.quote(json.dumps(
            {"type": ["container"], "label": [f"pyexec.instance={INSTANCE}"],
             "event": ["create", "rename"]}))
        self.conn = pyexecd._UnixHTTPConnection(
            os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"), timeout=None)
        self.conn.request("GET", f"/events?filters={filters}")
        # Ours to shut down at the end (the connection may hand it to the
        # response and forget it).
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError(f"GET /events: HTTP {self.resp.status}")
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        try:
            for line in iter(self.resp.readline, b""):
                if not line.strip():
                    continue
                ev = json.loads(line)
                attrs = ev.get("Actor", {}).get("Attributes", {})
                with self.lock:
                    self.events.append((ev.get("timeNano", 0) / 1e9, ev.get("Action"),
                                        "pyexec.pool" in attrs, attrs.get("name", "")))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed at the end of the run

    def close(self):
        """Ends the stream: the shutdown makes the pump's read see the end,
        and the response is closed only once the pump has returned (closing
        it under a read in progress crashed the pump in http.client)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=10)
        self.resp.close()
        self.conn.close()

    def pool_use(self, since):
        """How the server's runs since wall-clock time `since` got their
        containers: `pooled` = hand-overs (a pooled container renamed to
        pyexec-<execution id>), `cold` = containers created for one execution."""
        time.sleep(0.2)  # let the last events of the span arrive
        pooled = cold = 0
        with self.lock:
            for t, action, is_pool, name in self.events:
                if t < since:
                    continue
                if action == "create" and not is_pool:
                    cold += 1
                elif action == "rename" and is_pool and \
                        not name.startswith(("pyexec-pool-", "pyexec-host-")):
                    pooled += 1
        return {"pooled": pooled, "cold": cold}


def engine_call(method, path, body=None, timeout=60):
    """One Engine API call with an optional JSON body; returns (status, JSON or bytes)."""
    conn = pyexecd._UnixHTTPConnection(os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"),
                                       timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw


def engine_floor(b, code):
    """The engine's own cost of one fresh container: create, start, wait,
    remove through the Engine API with pyexecd's HostConfig, no attach and no
    output. Any server that starts a container per run pays at least this."""
    mib = 1024 * 1024
    body = {
        "Image": b.args.image, "Cmd": ["python3", "-c", code],
        "Env": ["PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp"],
        "WorkingDir": "/work", "User": "65534:65534",
        "Labels": {"pyexec.bench": b.run_id},
        "HostConfig": {
            "NetworkMode": "none", "ReadonlyRootfs": True, "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"], "PidsLimit": 256,
            "Memory": 1024 * mib, "MemorySwap": 1024 * mib, "CpuShares": 1024,
            "Tmpfs": {"/work": "rw,exec,nosuid,nodev,size=2048m,mode=1777,uid=65534,gid=65534",
                      "/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777"},
            "ShmSize": 64 * mib,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024},
                        {"Name": "fsize", "Soft": 2048 * mib, "Hard": 2048 * mib},
                        {"Name": "core", "Soft": 0, "Hard": 0}],
            "Init": True, "LogConfig": {"Type": "none", "Config": {}}}}
    if b.args.runtime:
        body["HostConfig"]["Runtime"] = b.args.runtime
    t0 = time.monotonic()
    st, j = engine_call("POST", f"/containers/create?name={b.name()}", body)
    if st != 201:
        raise RuntimeError(f"create: HTTP {st}: {j!r}")
    cid = j["Id"]
    try:
        t1 = time.monotonic()
        st, j = engine_call("POST", f"/containers/{cid}/start")
        if st != 204:
            raise RuntimeError(f"start: HTTP {st}: {j!r}")
        t2 = time.monotonic()
        st, j = engine_call("POST", f"/containers/{cid}/wait?condition=not-running")
        if st != 200 or j.get("StatusCode") != 0:
            raise RuntimeError(f"wait: HTTP {st}: {j!r}")
        t3 = time.monotonic()
    finally:
        st, j = engine_call("DELETE", f"/containers/{cid}?force=1&v=1")
    t4 = time.monotonic()
    if st != 204:
        raise RuntimeError(f"remove: HTTP {st}: {j!r}")
    return sample((t4 - t0) * 1000, create_ms=(t1 - t0) * 1000, start_ms=(t2 - t1) * 1000,
                  run_ms=(t3 - t2) * 1000, remove_ms=(t4 - t3) * 1000)


def throughput_cases(b, rec, levels, rounds, per_slot):
    """Sustained executions/s at each concurrency level, fresh containers,
    plus pyexecd's CPU and RSS per execution and the engine's CPU per run."""
    def drive(one, c, n):
        lock = threading.Lock()
        left = [n]
        errs = []
        lat = []

        def worker():
            while True:
                with lock:
                    if left[0] == 0 or errs:
                        return
                    left[0] -= 1
                try:
                    ms = one()
                except Exception as e:  # noqa: BLE001
                    errs.append(e)
                    return
                with lock:
                    lat.append(ms)
        ts = [threading.Thread(target=worker) for _ in range(c)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        if errs:
            raise errs[0]
        return wall, lat

    def px1():
        ms, res = b.pyexec_sync(code=HELLO)
        if res.stdout != b"Hello, World!\n":
            raise RuntimeError("unexpected output")
        return ms

    def dk1():
        ms, out = b.docker_run(HELLO)
        if out != b"Hello, World!\n":
            raise RuntimeError("unexpected output")
        return ms

    for c in levels:
        n = per_slot * c

        def px(c=c, n=n):
            before = b.server_proc()
            e0 = engine_cpu()
            m0 = machine_busy_s()
            wall, lat = drive(px1, c, n)
            m1 = machine_busy_s()
            e1 = engine_cpu()
            after = b.server_proc()
            return sample(n / wall, n=n, wall_s=wall, latencies_ms=lat,
                          server_cpu_ms=(after["cpu_s"] - before["cpu_s"]) * 1000,
                          server_cpu_ms_per_exec=(after["cpu_s"] - before["cpu_s"]) * 1000 / n,
                          server_rss_kb_per_exec=(after["rss_kb"] - before["rss_kb"]) / n,
                          server_rss_kb_before=before["rss_kb"],
                          server_rss_kb_after=after["rss_kb"],
                          server_hwm_kb=after["hwm_kb"],
                          engine_cpu_ms_per_exec=(e1 - e0) * 1000 / n,
                          machine_cpu_ms_per_exec=(m1 - m0) * 1000 / n)

        def dk(c=c, n=n):
            c0 = children_cpu()
            e0 = engine_cpu()
            m0 = machine_busy_s()
            wall, lat = drive(dk1, c, n)
            m1 = machine_busy_s()
            e1 = engine_cpu()
            c1 = children_cpu()
            return sample(n / wall, n=n, wall_s=wall, latencies_ms=lat,
                          client_cpu_ms=(c1 - c0) * 1000,
                          client_cpu_ms_per_exec=(c1 - c0) * 1000 / n,
                          engine_cpu_ms_per_exec=(e1 - e0) * 1000 / n,
                          machine_cpu_ms_per_exec=(m1 - m0) * 1000 / n)
        rec.run_case(f"throughput, concurrency {c}", [("pyexec", px), ("docker run", dk)],
                     rounds, unit="exec/s",
                     note=f"{n} hello-world executions per round, {c} at a time")


# ---------------------------------------------------------------------------
# Reporting


def fmt(v, unit="ms"):
    if v is None:
        return "-"
    if unit == "exec/s":
        return f"{v:.2f}"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def summarise(phases):
    """Adds summaries (and ratios to the docker variant) to every case."""
    for phase in phases.values():
        for case in phase["cases"].values():
            base = None
            for name, slot in case["variants"].items():
                slot["summary"] = summary([s["value"] for s in slot["samples"]])
                if name.startswith("docker"):
                    base = slot["summary"]
            for name, slot in case["variants"].items():
                s = slot["summary"]
                if base and not name.startswith("docker") and s["n"] and base["n"]:
                    slot["ratio"] = {k: s[k] / base[k] for k in ("p50", "p95", "p99")
                                     if base[k]}
            extra = {}
            for name, slot in case["variants"].items():
                for field in ("create_ms", "start_ms", "run_ms", "remove_ms", "kill_rpc_ms",
                              "kill_return_to_gone_ms", "kill_to_gone_ms", "refill_wait_ms",
                              "burst_after_pool_ms",
                              "server_cpu_ms_per_exec", "client_cpu_ms_per_exec",
                              "engine_cpu_ms_per_exec", "machine_cpu_ms_per_exec",
                              "server_rss_kb_per_exec",
                              "server_duration_ms", "chunks_per_line", "sandbox_cpu_ms"):
                    vals = [s[field] for s in slot["samples"] if field in s]
                    if vals:
                        extra.setdefault(name, {})[field] = summary(vals)
                # CPU is read in clock ticks (10 ms): the total over all
                # rounds divided by all their executions is the precise figure.
                for field in ("server_cpu_ms", "client_cpu_ms"):
                    tot = [s for s in slot["samples"] if field in s]
                    if tot:
                        n = sum(s["n"] for s in tot)
                        per = sum(s[field] for s in tot) / n
                        extra.setdefault(name, {})[field + "_per_exec_all_rounds"] = {
                            "n": n, "p50": per, "p95": None, "p99": None}
                lat = [x for s in slot["samples"] for x in s.get("latencies_ms", [])]
                if lat:
                    extra.setdefault(name, {})["latency_ms"] = summary(lat)
            case["extra"] = extra


def markdown(phases):
    out = []
    for pname, phase in phases.items():
        out.append(f"### {phase['title']}\n")
        out.append("Times in ms (lower is better; a ratio below 1 means pyexec is faster) "
                   "unless the case says exec/s (higher is better). The ratio compares each "
                   "variant with the case's `docker run` variant measured in the same "
                   "iterations.\n")
        out.append("| case | variant | n | p50 | p95 | p99 | pyexec/docker p50 | p95 | p99 |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for cname, case in phase["cases"].items():
            unit = case["unit"]
            for vname, slot in case["variants"].items():
                s = slot["summary"]
                r = slot.get("ratio", {})
                fails = f" ({len(slot['failures'])} failed)" if slot["failures"] else ""
                label = cname + (f" [{unit}]" if unit != "ms" else "")
                out.append(f"| {label} | {vname}{fails} | {s['n']} | {fmt(s.get('p50'), unit)} | "
                           f"{fmt(s.get('p95'), unit)} | {fmt(s.get('p99'), unit)} | "
                           f"{ratio(r.get('p50'))} | {ratio(r.get('p95'))} | "
                           f"{ratio(r.get('p99'))} |")
        out.append("")
        notes = [f"- {c}: {case['note']}" for c, case in phase["cases"].items() if case["note"]]
        if notes:
            out += notes + [""]
        # Kill, step and resource details.
        rows = []
        for cname, case in phase["cases"].items():
            for vname, fields in case.get("extra", {}).items():
                for field, s in fields.items():
                    rows.append(f"| {cname} | {vname} | {field} | {s['n']} | {fmt(s['p50'])} | "
                                f"{fmt(s['p95'])} | {fmt(s['p99'])} |")
        if rows:
            out.append("| case | variant | figure | n | p50 | p95 | p99 |")
            out.append("|---|---|---|---:|---:|---:|---:|")
            out += rows
            out.append("")
        use = [(c, case["pool_use"]) for c, case in phase["cases"].items()
               if "pool_use" in case]
        if use:
            out.append("How the server's runs got their containers (engine events: hand-overs "
                       "of a pooled container vs containers created for one run):\n")
            out.append("| case | pooled | cold |")
            out.append("|---|---:|---:|")
            out += [f"| {c} | {u['pooled']} | {u['cold']} |" for c, u in use]
            out.append("")
        res = phase.get("server_resources")
        if res:
            out.append(f"pyexecd over the whole phase: {res['executions']} executions, "
                       f"CPU {res['cpu_ms']:.0f} ms ({res['cpu_ms_per_exec']:.1f} ms per "
                       f"execution, idle work included), RSS {res['rss_kb_start']} kB at start, "
                       f"{res['rss_kb_end']} kB at end, peak {res['hwm_kb']} kB.\n")
    return "\n".join(out)


def ratio(v):
    return "-" if v is None else f"{v:.2f}"


def targets(phases):
    """The project's targets, for information, for each phase measured."""
    rows = []
    for key, label, hello in (("warm_pool_off", "warm pool off", 0.8),
                              ("warm_pool_on", "warm pool on", 0.25)):
        if key in phases:
            rows += phase_targets(phases[key].get("cases", {}), label, hello)
    if "namespace" in phases:
        rows += namespace_targets(phases["namespace"].get("cases", {}))
    return rows


def namespace_targets(cases):
    """Issue 12's targets for --isolation namespace."""
    rows = []

    def get(case, variant, key="p50"):
        c = cases.get(case)
        return c and c["variants"].get(variant, {}).get("summary", {}).get(key)

    def add(name, value, target, ok):
        rows.append({"target": f"{name} (namespace mode)", "value": value, "limit": target,
                     "met": ok})

    px, dk = get("basic print", "pyexec"), get("basic print", "docker run")
    if px and dk:
        add("hello world p50 <= 0.1 x docker run --rm p50",
            f"{px:.0f} ms vs {dk:.0f} ms = {px / dk:.2f} x", "0.10 x", px <= 0.1 * dk)
    px = get("throughput, concurrency 8", "pyexec")
    dk = get("throughput, concurrency 8", "docker run")
    if px and dk:
        add("throughput at concurrency 8 >= 5 x eight parallel docker run --rm",
            f"{px:.2f} vs {dk:.2f} exec/s = {px / dk:.2f} x", "5.00 x", px >= 5 * dk)
    c = cases.get("throughput, concurrency 8")
    if c:
        per = [s.get("machine_cpu_ms_per_exec") for s in c["variants"]["pyexec"]["samples"]]
        per = [v for v in per if v is not None]
        if per:
            v = statistics.median(per)
            add("whole-machine CPU per hello-world execution <= 60 ms (concurrency 8)",
                f"{v:.0f} ms", "60 ms", v <= 60)
    c = cases.get("first byte + kill")
    kill = c and c.get("extra", {}).get("pyexec", {}).get("kill_rpc_ms", {}).get("p99")
    if kill is not None:
        # A Kill answers once the engine has killed the host: the
        # execution's processes are gone then.
        add("Kill -> the execution's processes gone p99 <= 500 ms (the Kill RPC)",
            f"{kill:.0f} ms", "500 ms", kill <= 500)
    return rows


def phase_targets(off, label, hello_ratio):
    rows = []

    def get(case, variant, key="p50", field=None):
        c = off.get(case)
        if not c:
            return None
        if field:
            return c.get("extra", {}).get(variant, {}).get(field, {}).get(key)
        return c["variants"].get(variant, {}).get("summary", {}).get(key)

    def add(name, value, target, ok):
        rows.append({"target": f"{name} ({label})", "value": value, "limit": target,
                     "met": ok})

    px, dk = get("basic print", "pyexec"), get("basic print", "docker run")
    if px and dk:
        add(f"hello world p50 <= {hello_ratio} x docker run --rm p50",
            f"{px:.0f} ms vs {dk:.0f} ms = {px / dk:.2f} x", f"{hello_ratio:.2f} x",
            px <= hello_ratio * dk)
    for variant in CHUNK_VARIANTS:
        v = get("output chunk to client (per line)", variant, "p99")
        if v is not None:
            add(f"output chunk to client p99 <= 20 ms ({variant})", f"{v:.1f} ms", "20 ms",
                v <= 20)
    v = get("first byte + kill", "pyexec", "p99", "kill_to_gone_ms")
    if v is not None:
        add("Kill -> container gone p99 <= 500 ms (from Kill sent)", f"{v:.0f} ms", "500 ms",
            v <= 500)
    ev = get(EVAL_CASE, "pyexec Eval 1 + 1")
    hello = get(EVAL_CASE, "pyexec Execute hello world")
    if ev and hello:
        add("Eval 1 + 1 p50 <= 1.2 x Execute hello world p50",
            f"{ev:.0f} ms vs {hello:.0f} ms = {ev / hello:.2f} x", "1.20 x", ev <= 1.2 * hello)
    cpu_ev = get(EVAL_CASE, "pyexec Eval 1 + 1", "p50", "sandbox_cpu_ms")
    cpu_hello = get(EVAL_CASE, "pyexec Execute hello world", "p50", "sandbox_cpu_ms")
    if cpu_ev is not None and cpu_hello is not None:
        add("Eval wrapper's added sandbox CPU (p50 Eval - p50 Execute), reported",
            f"{cpu_ev:.0f} - {cpu_hello:.0f} = {cpu_ev - cpu_hello:.0f} ms", "-", True)
    px = get("throughput, concurrency 8", "pyexec")
    dk = get("throughput, concurrency 8", "docker run")
    if px and dk:
        add("throughput at concurrency 8 >= 1.5 x eight parallel docker run --rm",
            f"{px:.2f} vs {dk:.2f} exec/s = {px / dk:.2f} x", "1.50 x", px >= 1.5 * dk)
    return rows


def machine():
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""
    st, ver = pyexecd.docker_api("GET", "/version")
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
    except OSError:
        load = []
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else ""
    except OSError:
        pass
    return {"nproc": sh("nproc"), "free_g": sh("free", "-g"), "kernel": sh("uname", "-r"),
            "cpu": cpu, "engine_version": ver.get("Version") if st == 200 else None,
            "engine_api": ver.get("ApiVersion") if st == 200 else None,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "loadavg": load, "python": platform.python_version(),
            "git": sh("git", "-C", REPO, "rev-parse", "--short", "HEAD"),
            "git_dirty": bool(sh("git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"))}


# ---------------------------------------------------------------------------


def run_phase(b, key, title, extra_server_args, full, pool=0):
    a = b.args
    log(f"== {title}: pyexecd {' '.join(['--instance', INSTANCE] + extra_server_args)}")
    b.start_server(extra_server_args)
    rec = Recorder(key, b, pool)
    start = b.server_proc()
    try:
        latency_cases(b, rec, a.iterations, full, pool)
        stream_cases(b, rec, a.stream_iterations)
        throughput_cases(b, rec, a.concurrency, a.throughput_rounds, a.per_slot)
        end = b.server_proc()
    finally:
        argv = list(b.server_argv)
        b.stop_server()
    execs = 0
    for case in rec.cases.values():
        for name, slot in case["variants"].items():
            if name.startswith("docker"):
                continue
            for s in slot["samples"]:
                execs += s.get("n", len(s.get("each_ms") or [None]))
    # Chunk samples are per line, not per execution.
    chunk = rec.cases.get("output chunk to client (per line)")
    for variant in CHUNK_VARIANTS if chunk else ():
        slot = chunk["variants"][variant]
        execs -= len(slot["samples"]) - len(slot["samples"]) // CHUNK_LINES
    cpu_ms = (end["cpu_s"] - start["cpu_s"]) * 1000
    return {"title": title, "server_args": argv, "cases": rec.cases,
            "server_resources": {"executions": execs, "cpu_ms": cpu_ms,
                                 "cpu_ms_per_exec": cpu_ms / max(execs, 1),
                                 "rss_kb_start": start["rss_kb"], "rss_kb_end": end["rss_kb"],
                                 "hwm_kb": end["hwm_kb"]}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="few iterations (about 3 minutes); explicit counts still win")
    ap.add_argument("--iterations", type=int, help="runs of each variant per latency case "
                    "(default 15, quick 3)")
    ap.add_argument("--stream-iterations", type=int,
                    help="runs per first-byte/kill and chunk-delay variant (default 20, quick 3)")
    ap.add_argument("--throughput-rounds", type=int, help="rounds per throughput level "
                    "(default 3, quick 1)")
    ap.add_argument("--per-slot", type=int, help="executions per concurrency slot in a "
                    "throughput round (default 4, quick 2)")
    ap.add_argument("--concurrency", default="1,4,8",
                    help="throughput concurrency levels (default 1,4,8)")
    ap.add_argument("--warm-pool", type=int, default=2,
                    help="pool size for the warm-pool-on phase, when pyexecd has --warm-pool "
                         "(default 2, the server's own default)")
    ap.add_argument("--no-namespace", action="store_true",
                    help="skip the --isolation namespace phase (run when pyexecd has the flag)")
    ap.add_argument("--phases", default="off,on,namespace",
                    help="the phases to run, comma-separated: off (warm pool off), on (warm "
                         "pool on), namespace (default: all three, as the binary has them)")
    ap.add_argument("--runtime", default="",
                    help="pyexecd --runtime, and the Engine API floor's runtime (default: the "
                         "engine's default)")
    ap.add_argument("--baseline-runtime", default="",
                    help="docker run --runtime for the baseline (default: the engine's default)")
    ap.add_argument("--max-concurrent", type=int, default=8,
                    help="pyexecd --max-concurrent (default 8)")
    ap.add_argument("--image", default="pyexec/python:3.11")
    ap.add_argument("--binary", default=pyexecd.server_binary(), help="the pyexecd to measure")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="directory for the JSON and Markdown results")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the cases whose name contains this text (repeatable)")
    ap.add_argument("--label", default="", help="free text stored with the results")
    a = ap.parse_args()
    quick = a.quick
    a.iterations = a.iterations or (3 if quick else 15)
    a.stream_iterations = a.stream_iterations or (3 if quick else 20)
    a.throughput_rounds = a.throughput_rounds or (1 if quick else 3)
    a.per_slot = a.per_slot or (2 if quick else 4)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x]
    a.binary = os.path.abspath(a.binary)
    a.phases = set(x.strip() for x in a.phases.split(",") if x.strip())
    if not a.phases or a.phases - {"off", "on", "namespace"}:
        ap.error("--phases: a comma-separated list of off, on, namespace")

    help_text = subprocess.run([a.binary, "--help"], capture_output=True, text=True,
                               timeout=10).stdout
    has_pool = "--warm-pool" in help_text
    has_ns = "--isolation" in help_text and not a.no_namespace and "namespace" in a.phases
    b = Bench(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    t_start = time.monotonic()
    info = machine()
    loads = []
    stop_sampling = threading.Event()

    def sample_load():
        # The machine may be shared: the 1-minute load average every 10 s
        # says how busy it was while we measured.
        while not stop_sampling.wait(10):
            with open("/proc/loadavg") as f:
                loads.append(float(f.read().split()[0]))
    threading.Thread(target=sample_load, daemon=True).start()
    log(f"bench {b.run_id}: {'quick' if quick else 'default'} mode, binary {a.binary}, "
        f"warm pool flag {'present' if has_pool else 'absent'}, load {info['loadavg']}")
    phases = {}
    left = []
    try:
        off_args = ["--warm-pool", "0"] if has_pool else []
        if "off" in a.phases:
            phases["warm_pool_off"] = run_phase(b, "warm_pool_off", "Warm pool off", off_args,
                                                full=True)
        if has_pool and "on" in a.phases:
            phases["warm_pool_on"] = run_phase(
                b, "warm_pool_on", f"Warm pool on ({a.warm_pool})",
                ["--warm-pool", str(a.warm_pool)], full=False, pool=a.warm_pool)
        if has_ns:
            phases["namespace"] = run_phase(
                b, "namespace", f"Namespace mode (--isolation namespace, warm pool {a.warm_pool})",
                ["--isolation", "namespace", "--warm-pool", str(a.warm_pool)], full=False,
                pool=a.warm_pool)
    except KeyboardInterrupt as e:
        log(f"bench: interrupted ({e}); cleaning up")
        left = b.cleanup()
        sys.exit(130)
    finally:
        if not left:
            left = b.cleanup()
    stop_sampling.set()
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().split()[:3]
    info["loadavg_1min_samples"] = loads
    summarise(phases)
    tg = targets(phases)
    doc = {"run_id": b.run_id, "mode": "quick" if quick else "default",
           "argv": recorded_argv(sys.argv[1:]), "label": a.label,
           "binary": repo_relative(a.binary),
           "image": a.image, "warm_pool_flag": has_pool,
           "iterations": {"latency": a.iterations, "stream": a.stream_iterations,
                          "throughput_rounds": a.throughput_rounds, "per_slot": a.per_slot,
                          "concurrency": a.concurrency},
           "server_runtime": a.runtime or "engine default",
           "baseline_runtime": a.baseline_runtime or "engine default",
           "baseline_command": " ".join([DOCKER, "run", "--rm"] +
                                        (["--runtime", a.baseline_runtime]
                                         if a.baseline_runtime else []) + hardening() +
                                        [a.image, "python3", "-c", "CODE"]),
           "machine": info, "elapsed_s": time.monotonic() - t_start,
           "containers_removed_at_cleanup": len(left),
           "targets": tg, "phases": phases}
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-{a.runtime}" if a.runtime else ""
    base = os.path.join(a.out, f"{stamp}-{doc['mode']}{suffix}")
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    md = (f"Runtimes: pyexecd {doc['server_runtime']}, baseline `docker run` "
          f"{doc['baseline_runtime']}.\n\n") + markdown(phases)
    md += "\n### Targets (for information)\n\n| target | measured | limit | met |\n|---|---|---|---|\n"
    md += "\n".join(f"| {t['target']} | {t['value']} | {t['limit']} | "
                    f"{'yes' if t['met'] else 'no'} |" for t in tg) + "\n"
    with open(base + ".md", "w") as f:
        f.write(md)
    if loads:
        md += (f"\nMachine load while measuring (1-minute load average, sampled every 10 s): "
               f"median {statistics.median(loads):.1f}, max {max(loads):.1f}, on "
               f"{info['nproc']} CPUs.\n")
    print(md)
    log(f"bench: {doc['elapsed_s']:.0f} s; results in {base}.json and {base}.md; "
        f"{len(left)} leftover containers removed at cleanup")


if __name__ == "__main__":
    main()
