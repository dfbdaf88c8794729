#!/usr/bin/python3
"""Redis store mode against memory mode, side by side in one run.

    bench/run --redis [--quick] [--phases hello,capacity,get,chunks,commands]
    (or: PYEXECD_BIN=... PYEXEC_FAKE_BIN=... /usr/bin/python3 bench/redis_mode.py ...)

Every phase starts its own private redis-server (unix socket in a temporary
directory, AOF on with fsync always, as the tests run it) and its own nodes,
each with its own --instance, and stops them (by pid) before the next phase.

  hello     sync Execute of print('Hello, World!') on the warm pool, real
            Docker: one node --store memory against one node on Redis with
            appendfsync always and one with everysec, interleaved (the order
            rotates) in the same run, each run started on a full pool.
            p50/p90 and the difference of the p50s (target: Redis adds
            <= 5 ms). Then the same three ways with the
            no-op back-end, one call at a time: the store's share without
            Docker's noise.
  capacity  control-plane capacity with the no-op back-end
            (tests/server/rpc:fake_pyexecd: the real RPC layer, executor and
            store; the "run" prints one line and exits 0): executions/s
            completed by sync Execute calls spread over 2 Redis nodes, against
            1 memory node, for --seconds each. The load comes from
            --load-procs processes of grpc.aio with --load-concurrency calls
            in flight each; the CPU each process used (pyexecd nodes,
            redis-server, the load processes, the rest of the machine) is
            reported so the figure can be read (target: >= 1000/s).
  get       GetExecution of a finished execution on one node (the same
            fake_pyexecd), memory against Redis: calls/s and p50/p99 with
            the same load processes.
  chunks    chunk-to-client delay across nodes, real Docker: a program
            writes time.time() every 50 ms; each line's delay is the client's
            time.time() at receipt minus that value. Redis: Execute and
            StreamOutput on a --role frontend node, the run on another node;
            memory: one node. p50/p99 (target: Redis p99 <= 20 ms).
  commands  Redis round trips and commands per execution (INFO
            commandstats), as bench/redis_commands.py (target: <= 12 round
            trips per sync execution).

Prints a Markdown table per phase (with the command line and the load
average) and writes bench/results/<date>-redis[-quick].json (every sample)
and .md. Only 127.0.0.1, the private Redis socket and the Docker engine are
used; every container of the run's instances is removed at the end.
"""

import argparse
import asyncio
import contextlib
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
sys.path.insert(0, HERE)
import pyexecd  # noqa: E402
import redis_server  # noqa: E402

PHASES = ("hello", "capacity", "get", "chunks", "commands")
TAG = uuid.uuid4().hex[:8]
HELLO = b"print('Hello, World!')\n"
CHUNK_LINES = 20
TIMESTAMPS = ("import sys, time\n"
              "sys.stdout.write('start\\n')\n"
              "time.sleep(0.1)\n"
              f"for _ in range({CHUNK_LINES}):\n"
              "    sys.stdout.write(repr(time.time()) + '\\n')\n"
              "    time.sleep(0.05)\n")
# What the no-op back-end does per execution (tests/server/executor/fake_sandbox.h).
NOOP_STEPS = ["print:hello"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------
# CPU accounting, from /proc (clock ticks)

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    """CPU seconds (user + system) process `pid` used so far, its threads
    included; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_s():
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / TICK


class CpuMeter:
    """CPU used by named processes (and the machine) between start() and stop()."""

    def __init__(self, procs):
        self.procs = procs  # name -> list of pids

    def start(self):
        self.t0 = time.monotonic()
        self.m0 = machine_busy_s()
        self.p0 = {k: sum(proc_cpu_s(p) for p in pids) for k, pids in self.procs.items()}

    def stop(self):
        wall = time.monotonic() - self.t0
        used = {k: sum(proc_cpu_s(p) for p in pids) - self.p0[k]
                for k, pids in self.procs.items()}
        used["rest of the machine"] = max(0.0, machine_busy_s() - self.m0 - sum(used.values()))
        return wall, used


# ---------------------------------------------------------------------------
# The load processes: grpc.aio, several calls in flight each. Run as
# `redis_mode.py --load-worker JSON`; they connect and warm up, print
# "ready", wait for a line on stdin, run for the given seconds and print one
# JSON line of results.


async def load_worker(cfg):
    import grpc
    stubs = pyexecd.stubs()
    pb = stubs.executor
    opts = [("grpc.max_receive_message_length", 64 << 20)]
    channels = [grpc.aio.insecure_channel(a, options=opts) for a in cfg["targets"]]
    svc = [stubs.executor_grpc.ExecutorServiceStub(ch) for ch in channels]
    if cfg["kind"] == "execute":
        req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=NOOP_STEPS),
                                files=[pb.File(path="main.py", content=b"")])

        async def call(stub):
            res = await stub.Execute(req, timeout=60)
            return pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED"
    else:
        req = pb.GetExecutionRequest(execution_id=cfg["execution_id"])

        async def call(stub):
            res = await stub.GetExecution(req, timeout=60)
            return res.execution_id == cfg["execution_id"]

    for stub in svc:  # connect, warm up
        for _ in range(5):
            if not await call(stub):
                raise RuntimeError("warm-up call failed")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    lat, errors, stop = [], [0], time.monotonic() + cfg["seconds"]

    async def loop(stub):
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                ok = await call(stub)
            except grpc.aio.AioRpcError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                errors[0] += 1
    t0 = time.monotonic()
    await asyncio.gather(*(loop(svc[i % len(svc)]) for i in range(cfg["concurrency"])))
    elapsed = time.monotonic() - t0
    for ch in channels:
        await ch.close()
    print(json.dumps({"n": len(lat), "errors": errors[0], "elapsed": elapsed,
                      "lat_ms": lat}), flush=True)


def run_load(targets, kind, args, extra_procs, execution_id=None):
    """Runs --load-procs load processes against `targets` for --seconds;
    returns completed calls/s, latency percentiles, errors and the CPU
    seconds of each group of processes (`extra_procs`, the load processes,
    the rest of the machine) over the window."""
    cfg = {"targets": targets, "kind": kind, "seconds": args.seconds,
           "concurrency": args.load_concurrency, "execution_id": execution_id}
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--load-worker",
                               json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(args.load_procs)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a load process failed to start")
        meter = CpuMeter({**extra_procs, "load processes (python grpc.aio)":
                          [p.pid for p in procs]})
        meter.start()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.stdout.readline()) for p in procs]
        wall, cpu = meter.stop()
    finally:
        for p in procs:
            if p.poll() is None:
                p.stdin.close()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    n = sum(o["n"] for o in outs)
    lat = [x for o in outs for x in o["lat_ms"]]
    errors = sum(o["errors"] for o in outs)
    elapsed = max(o["elapsed"] for o in outs)
    return {"rate": n / elapsed, "n": n, "errors": errors, "elapsed_s": elapsed,
            "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
            "max_ms": max(lat, default=float("nan")), "cpu_s": cpu, "wall_s": wall}


# ---------------------------------------------------------------------------
# The nodes' own counts (their HTTP door's /metrics)


def metrics(server):
    """The node's /metrics as {series name with labels: value}."""
    host, port = server.http_address().rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def store_round_trips(nodes):
    """(count, seconds) of pyexec_store_round_trip_seconds summed over the
    nodes: the Redis commands they sent (blocking reads excepted) and the
    time they waited for the answers."""
    count = total = 0.0
    for server in nodes:
        m = metrics(server)
        count += m.get("pyexec_store_round_trip_seconds_count", 0.0)
        total += m.get("pyexec_store_round_trip_seconds_sum", 0.0)
    return count, total


def wait_pool_full(server, size=2, timeout=60.0):
    """Waits until the node's warm pool has `size` containers ready (its
    pyexec_warm_pool_ready gauge; the pool has no event to wait on), so that
    a timed run is a pool hit, not a race with the refill."""
    if not pyexecd.wait_until(lambda: metrics(server).get("pyexec_warm_pool_ready", 0) >= size,
                              timeout=timeout, interval=0.02):
        raise RuntimeError(f"the warm pool of {server.address} did not fill in {timeout:g} s")


# ---------------------------------------------------------------------------
# Nodes


class Run:
    """The processes of one phase; close() ends them by pid and removes the
    containers of their instances."""

    def __init__(self, args, appendfsync="always"):
        self.args = args
        self.appendfsync = appendfsync
        self.stack = contextlib.ExitStack()
        self.instances = []
        self.redis = None

    def start_redis(self):
        self.redis = self.stack.enter_context(
            redis_server.RedisServer("--appendfsync", self.appendfsync))
        return self.redis

    def node(self, name, binary, store, *extra):
        instance = f"bench-redis-{TAG}-{name}"
        self.instances.append(instance)
        flags = ["--instance", instance, "--log-level", "warn", "--reaper-interval-s", "0",
                 "--default-image", self.args.image]
        if store == "redis":
            flags += ["--store", self.redis.url, "--store-namespace", f"b{TAG}",
                      "--node-name", name]
        server = pyexecd.Server(*flags, *extra, binary=binary)
        self.stack.callback(server.close)
        server.start()
        return server

    def close(self):
        self.stack.close()
        for instance in self.instances:
            for c in pyexecd.containers(f"pyexec.instance={instance}"):
                log(f"removing leftover container {c['Id'][:12]} ({instance})")
                pyexecd.docker_api("DELETE", f"/containers/{c['Id']}?force=1&v=1")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stub_of(server):
    s = pyexecd.stubs()
    return s.executor, s.executor_grpc.ExecutorServiceStub(server.channel())


def redis_pid(run):
    return run.redis.proc.pid


# ---------------------------------------------------------------------------
# Phases


def phase_hello(args):
    with contextlib.ExitStack() as stack:
        always = stack.enter_context(Run(args))
        everysec = stack.enter_context(Run(args, appendfsync="everysec"))
        always.start_redis()
        everysec.start_redis()
        door = ["--http-listen", "127.0.0.1:0"]
        nodes = {"memory": always.node("m", args.binary, "memory", *door),
                 "redis (appendfsync always)": always.node("r", args.binary, "redis", *door),
                 "redis (appendfsync everysec)": everysec.node("e", args.binary, "redis",
                                                               *door)}
        stubs = {k: stub_of(v) for k, v in nodes.items()}
        samples = {k: [] for k in nodes}

        def one(mode):
            pb, stub = stubs[mode]
            req = pb.ExecuteRequest(metadata=pb.Metadata(entrypoint="main.py"),
                                    files=[pb.File(path="main.py", content=HELLO)])
            wait_pool_full(nodes[mode])
            t0 = time.perf_counter()
            res = stub.Execute(req, timeout=120)
            ms = (time.perf_counter() - t0) * 1000
            if res.stdout != b"Hello, World!\n" or res.exit_code != 0:
                raise RuntimeError(f"{mode}: unexpected result {res}")
            return ms
        for mode in nodes:  # warm: channel, pool
            for _ in range(3):
                one(mode)
        modes = list(nodes)
        for i in range(args.iterations):
            for mode in modes[i % 3:] + modes[:i % 3]:  # the order rotates
                samples[mode].append(one(mode))
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    return {"samples_ms": samples, "p50_ms": p50,
            "p90_ms": {k: pct(v, 90) for k, v in samples.items()},
            "redis_adds_ms": {k: v - p50["memory"] for k, v in p50.items() if k != "memory"},
            "noop": noop_latency(args)}


def noop_latency(args):
    """The store's share of a sync Execute without Docker: the no-op
    back-end, one client, one call at a time, the same three ways."""
    with contextlib.ExitStack() as stack:
        always = stack.enter_context(Run(args))
        everysec = stack.enter_context(Run(args, appendfsync="everysec"))
        always.start_redis()
        everysec.start_redis()
        flags = ["--warm-pool", "0"]
        nodes = {"memory": always.node("fm", args.fake_binary, "memory", *flags),
                 "redis (appendfsync always)": always.node("fr", args.fake_binary, "redis",
                                                           *flags),
                 "redis (appendfsync everysec)": everysec.node("fe", args.fake_binary, "redis",
                                                               *flags)}
        stubs = {k: stub_of(v) for k, v in nodes.items()}
        samples = {k: [] for k in nodes}

        def one(mode):
            pb, stub = stubs[mode]
            req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=NOOP_STEPS),
                                    files=[pb.File(path="main.py", content=b"")])
            t0 = time.perf_counter()
            res = stub.Execute(req, timeout=30)
            ms = (time.perf_counter() - t0) * 1000
            if pyexecd.status_name(res) != "EXECUTION_STATUS_COMPLETED":
                raise RuntimeError(f"{mode}: unexpected result {res}")
            return ms
        modes = list(nodes)
        for mode in modes:
            for _ in range(5):
                one(mode)
        for i in range(args.iterations * 5):
            for mode in modes[i % 3:] + modes[:i % 3]:
                samples[mode].append(one(mode))
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    return {"samples_ms": samples, "p50_ms": p50,
            "p90_ms": {k: pct(v, 90) for k, v in samples.items()},
            "redis_adds_ms": {k: v - p50["memory"] for k, v in p50.items() if k != "memory"}}


def fake_flags(args):
    return ["--http-listen", "127.0.0.1:0",
            "--max-concurrent", str(args.fake_slots), "--max-queue", "100000",
            "--max-records", "1000000", "--retention-s", "60", "--warm-pool", "0"]


def phase_capacity(args):
    out = {}
    for fsync in ("always", "everysec"):
        with Run(args, appendfsync=fsync) as run:
            run.start_redis()
            nodes = [run.node(f"n{i}", args.fake_binary, "redis", *fake_flags(args))
                     for i in range(args.capacity_nodes)]
            n = len(nodes)
            log(f"capacity: {n} Redis nodes, appendfsync {fsync}, {args.seconds:g} s")
            rt0 = store_round_trips(nodes)
            r = run_load([s.address for s in nodes], "execute", args,
                         {"pyexecd nodes" if n > 1 else "pyexecd node":
                          [s.proc.pid for s in nodes], "redis-server": [redis_pid(run)]})
            rt1 = store_round_trips(nodes)
            # Includes the load processes' warm-up calls (5 per process and node).
            calls = r["n"] + 5 * args.load_procs * n
            r["store_round_trips_per_execution"] = (rt1[0] - rt0[0]) / calls
            r["store_round_trip_mean_ms"] = (rt1[1] - rt0[1]) / max(1.0, rt1[0] - rt0[0]) * 1e3
            out[f"redis (appendfsync {fsync}), {n} node{'s' if n > 1 else ''}"] = r
    with Run(args) as run:
        m = run.node("m", args.fake_binary, "memory", *fake_flags(args))
        log(f"capacity: 1 memory node, {args.seconds:g} s")
        out["memory, 1 node"] = run_load([m.address], "execute", args,
                                         {"pyexecd node": [m.proc.pid]})
    return out


def finished_execution(server):
    pb, stub = stub_of(server)
    res = stub.Execute(pb.ExecuteRequest(metadata=pb.Metadata(script_args=NOOP_STEPS),
                                         files=[pb.File(path="main.py", content=b"")]),
                       timeout=30)
    if not pyexecd.is_terminal(res):
        raise RuntimeError(f"not finished: {res}")
    return res.execution_id


def phase_get(args):
    out = {}
    with Run(args) as run:
        m = run.node("m", args.fake_binary, "memory", *fake_flags(args))
        log(f"get: memory node, {args.seconds} s")
        out["memory"] = run_load([m.address], "get", args, {"pyexecd node": [m.proc.pid]},
                                 finished_execution(m))
    with Run(args) as run:
        run.start_redis()
        a = run.node("a", args.fake_binary, "redis", *fake_flags(args))
        b = run.node("b", args.fake_binary, "redis", *fake_flags(args))
        eid = finished_execution(b)  # run by either node; read on a
        log(f"get: Redis node, {args.seconds} s")
        out["redis"] = run_load([a.address], "get", args,
                                {"pyexecd node": [a.proc.pid], "the other node (idle)":
                                 [b.proc.pid], "redis-server": [redis_pid(run)]}, eid)
    return out


def chunk_delays(stub, pb, req, reader):
    res = stub.Execute(req, timeout=60)
    buf, got, final = bytearray(), [], None
    for msg in reader.StreamOutput(pb.StreamOutputRequest(execution_id=res.execution_id),
                                   timeout=120):
        recv = time.time()
        if msg.data:
            buf += msg.data
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                got.append((line, recv))
                buf[:] = rest
        if msg.HasField("result"):
            final = msg.result
            break
    if final is None or final.exit_code != 0:
        raise RuntimeError(f"{res.execution_id}: bad end {final}")
    delays = [(recv - float(line)) * 1000 for line, recv in got if line and line != b"start"]
    if len(delays) != CHUNK_LINES:
        raise RuntimeError(f"{len(delays)} timestamp lines, not {CHUNK_LINES}")
    return delays


def phase_chunks(args):
    with Run(args) as run:
        run.start_redis()
        m = run.node("m", args.binary, "memory")
        run.node("w", args.binary, "redis", "--role", "worker")  # runs the Redis jobs
        f = run.node("f", args.binary, "redis", "--role", "frontend")
        pb, m_stub = stub_of(m)
        _, f_stub = stub_of(f)
        req = pb.ExecuteRequest(metadata=pb.Metadata(entrypoint="main.py"),
                                files=[pb.File(path="main.py", content=TIMESTAMPS.encode())],
                                **{"async": True})
        ways = {"memory, one node": (m_stub, m_stub),
                "redis, reader on the frontend, run on the worker": (f_stub, f_stub)}
        samples = {k: [] for k in ways}
        for stub, reader in ways.values():  # warm: channels, pools
            chunk_delays(stub, pb, req, reader)
        for i in range(args.chunk_runs):
            order = list(ways) if i % 2 == 0 else list(reversed(ways))
            for way in order:
                stub, reader = ways[way]
                samples[way] += chunk_delays(stub, pb, req, reader)
    return {"samples_ms": samples,
            "p50_ms": {k: pct(v, 50) for k, v in samples.items()},
            "p99_ms": {k: pct(v, 99) for k, v in samples.items()},
            "max_ms": {k: max(v) for k, v in samples.items()}}


def phase_commands(args):
    import redis_commands
    return {"rows": redis_commands.measure(args.fake_binary, args.commands_n)}


# ---------------------------------------------------------------------------
# Report


def cpu_table(r):
    n = r["n"] or 1
    wall = r["wall_s"]
    rows = []
    for name, s in r["cpu_s"].items():
        rows.append(f"{name}: {s / wall * 100:.0f}% of a core, {s / n * 1e6:.0f} µs/call")
    return "; ".join(rows)


def markdown(res, args, argv):
    out = [f"Command: `{' '.join(argv)}`", "",
           f"Machine: {os.cpu_count()} cores, {platform.release()}; load average before the "
           f"run {res['loadavg_before']}, after {res['loadavg_after']}.", ""]
    ph = res["phases"]
    if "hello" in ph:
        h = ph["hello"]
        out += ["### Hello world, sync Execute, real Docker (warm pool)", "",
                "| store | p50 (ms) | p90 (ms) | adds to the p50 (ms) |", "|---|---|---|---|"]
        for k in h["p50_ms"]:
            adds = h["redis_adds_ms"].get(k)
            out.append(f"| {k} | {h['p50_ms'][k]:.1f} | {h['p90_ms'][k]:.1f} | "
                       f"{'' if adds is None else f'{adds:+.1f}'} |")
        out += ["", f"{args.iterations} runs each, interleaved (the order rotates), each on a "
                "full warm pool (2); one node per store, each Redis node on its own "
                "redis-server. Target: Redis adds <= 5 ms.", ""]
        n = h["noop"]
        out += ["The same without Docker (the no-op back-end, one call at a time, "
                f"{len(n['samples_ms']['memory'])} each): the store's share.", "",
                "| store | p50 (ms) | p90 (ms) | adds to the p50 (ms) |", "|---|---|---|---|"]
        for k in n["p50_ms"]:
            adds = n["redis_adds_ms"].get(k)
            out.append(f"| {k} | {n['p50_ms'][k]:.2f} | {n['p90_ms'][k]:.2f} | "
                       f"{'' if adds is None else f'{adds:+.2f}'} |")
        out.append("")
    for key, title, unit in (("capacity", "Control-plane capacity, no-op back-end, sync Execute",
                              "executions/s"),
                             ("get", "GetExecution of a finished execution, one node", "calls/s")):
        if key not in ph:
            continue
        out += [f"### {title}", "",
                f"| configuration | {unit} | p50 (ms) | p99 (ms) | errors | CPU per process |",
                "|---|---|---|---|---|---|"]
        for name, r in ph[key].items():
            out.append(f"| {name} | {r['rate']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                       f"{r['errors']} | {cpu_table(r)} |")
        out += ["", f"{args.load_procs} load processes x {args.load_concurrency} calls in "
                f"flight, {args.seconds:g} s each; CPU: user + system over the measured "
                "window (µs per completed call)."]
        ceil = []
        for name, r in ph[key].items():
            per = {k: v / r["n"] * 1e6 for k, v in r["cpu_s"].items() if r["n"] and v > 0}
            node = sum(v for k, v in per.items() if k.startswith("pyexecd"))
            red = per.get("redis-server")
            ceil.append(f"{name}: pyexecd {node:.0f} µs" + (f", redis-server {red:.0f} µs"
                                                            if red else "") + " per call")
        out.append("CPU per call, all nodes together (what bounds the rate once the cores "
                   "are free: 1 s / that per core): " + "; ".join(ceil) + ".")
        if key == "capacity":
            trips = [f"{name}: {r['store_round_trips_per_execution']:.1f} per execution, "
                     f"{r['store_round_trip_mean_ms']:.2f} ms each on average"
                     for name, r in ph[key].items() if "store_round_trip_mean_ms" in r]
            out.append("Redis round trips the nodes waited for (their "
                       "pyexec_store_round_trip_seconds; blocking reads not counted): "
                       + "; ".join(trips) + ".")
            out.append("Target: >= 1000 executions/s through 2 nodes + Redis.")
        out.append("")
    if "chunks" in ph:
        c = ph["chunks"]
        out += ["### Output chunk to client (per line, 50 ms apart), real Docker", "",
                "| configuration | p50 (ms) | p99 (ms) | max (ms) | lines |",
                "|---|---|---|---|---|"]
        for k in c["samples_ms"]:
            out.append(f"| {k} | {c['p50_ms'][k]:.1f} | {c['p99_ms'][k]:.1f} | "
                       f"{c['max_ms'][k]:.1f} | {len(c['samples_ms'][k])} |")
        out += ["", "Target: p99 <= 20 ms across nodes.", ""]
    if "commands" in ph:
        out += ["### Redis commands per execution (INFO commandstats, no-op back-end, "
                "appendfsync always)", "",
                "| shape | round trips / execution | commands / execution | executions/s "
                "(one client) |", "|---|---|---|---|"]
        for r in ph["commands"]["rows"]:
            out.append(f"| {r['shape']} | {r['round_trips']:.1f} ({r['detail']}) | "
                       f"{r['commands']:.1f} | {r['rate']:.0f} |")
        out += ["", "Target: <= 12 round trips per sync execution.", ""]
    return "\n".join(out)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--load-worker":
        asyncio.run(load_worker(json.loads(sys.argv[2])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer iterations and shorter load windows (about 2 minutes)")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--iterations", type=int, help="hello runs per store (default 40, quick 10)")
    ap.add_argument("--chunk-runs", type=int, help="chunk-delay runs per way (default 10, quick 3)")
    ap.add_argument("--seconds", type=float, help="load window (default 10, quick 4)")
    ap.add_argument("--load-procs", type=int, default=2, help="load processes (default 2)")
    ap.add_argument("--load-concurrency", type=int, default=32,
                    help="calls in flight per load process (default 32)")
    ap.add_argument("--capacity-nodes", type=int, default=2,
                    help="Redis nodes in the capacity phase (default 2)")
    ap.add_argument("--fake-slots", type=int, default=256,
                    help="--max-concurrent of the no-op nodes (default 256)")
    ap.add_argument("--commands-n", type=int, help="executions per shape (default 200, quick 50)")
    ap.add_argument("--image", default=os.environ.get("PYEXEC_TEST_IMAGE", "pyexec/python:3.11"))
    ap.add_argument("--binary", default=pyexecd.server_binary(), help="pyexecd (PYEXECD_BIN)")
    ap.add_argument("--fake-binary", default=os.environ.get("PYEXEC_FAKE_BIN") or os.path.join(
        REPO, "bazel-bin", "tests", "server", "rpc", "fake_pyexecd"),
        help="the no-op back-end's pyexecd (PYEXEC_FAKE_BIN)")
    args = ap.parse_args()
    q = args.quick
    args.iterations = args.iterations or (10 if q else 40)
    args.chunk_runs = args.chunk_runs or (3 if q else 10)
    args.seconds = args.seconds or (4.0 if q else 10.0)
    args.commands_n = args.commands_n or (50 if q else 200)
    phases = [p for p in args.phases.split(",") if p]
    for p in phases:
        if p not in PHASES:
            ap.error(f"unknown phase {p!r}")
    for b in (args.binary, args.fake_binary):
        if not os.access(b, os.X_OK):
            ap.error(f"{b} is not an executable: build //server:pyexecd and "
                     "//tests/server/rpc:fake_pyexecd (bench/run --redis does)")
    argv = ["bench/redis_mode.py", *sys.argv[1:]]
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "argv": argv, "cpus": os.cpu_count(), "kernel": platform.release(),
           "loadavg_before": loadavg(), "settings": {k: v for k, v in vars(args).items()
                                                     if k not in ("binary", "fake_binary")},
           "phases": {}}
    funcs = {"hello": phase_hello, "capacity": phase_capacity, "get": phase_get,
             "chunks": phase_chunks, "commands": phase_commands}
    for p in phases:
        log(f"phase {p} (load average {loadavg()})")
        res["phases"][p] = funcs[p](args)
    res["loadavg_after"] = loadavg()
    text = markdown(res, args, argv)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(HERE, "results", f"{stamp}-redis{'-quick' if q else ''}")
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(text + "\n")
    print(f"\nwrote {os.path.relpath(base, REPO)}.json and .md")


if __name__ == "__main__":
    main()
