#!/usr/bin/python3
"""Redis commands and round trips per execution in the Redis store mode.

Starts a private redis-server and one pyexecd node on it (by default the
fake back-end, tests/server/rpc:fake_pyexecd, so Docker's cost does not
hide the store's), runs N executions in two shapes, and reads
`INFO commandstats` before and after:

  sync       one sync Execute per execution
  async      async Execute, StreamOutput to the end, one GetExecution

Round trips are the commands the node sends (EVALSHA, XREADGROUP, the
follower's XREAD...); commands run inside scripts count in `commands` but
are not round trips.

    bazel build //tests/server/rpc:fake_pyexecd
    /usr/bin/python3 bench/redis_commands.py [--n 200] [--binary PATH] [--min-replicas N]

With --min-replicas N the redis-server gets N replicas (loopback TCP) and
the node --store-min-replicas N: each create and claim is followed by a
WAIT, one round trip more each.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pyexecd  # noqa: E402
import redis_sentinel  # noqa: E402
import redis_server  # noqa: E402

# Commands a node sends itself (everything else runs inside its scripts).
# (XACK, XREVRANGE, PUBLISH and XADD are sent directly only at start-up,
# shutdown or on rare paths; counted here as script work.)
CLIENT_COMMANDS = {"evalsha", "eval", "xreadgroup", "xread", "ping", "script", "xgroup",
                   "subscribe", "auth", "select", "wait"}


def commandstats(sock):
    out = subprocess.run(["redis-cli", "-s", sock, "INFO", "commandstats"],
                         capture_output=True, text=True, check=True).stdout
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line.split(":", 1)
            stats[name[len("cmdstat_"):]] = int(rest.split(",")[0].split("=")[1])
    return stats


def start_replicas(stack, n):
    """A primary on a loopback port (and its unix socket) with `n` replicas,
    each synced before this returns."""
    def start(port, *extra):
        s = redis_server.RedisServer("--port", str(port), "--bind", "127.0.0.1", *extra)
        try:
            s.start()
        except BaseException:
            s.close()
            raise
        s.port = port
        return stack.enter_context(contextlib.closing(s))
    primary = redis_sentinel.start_on_free_port(start)
    for _ in range(n):
        redis_sentinel.start_on_free_port(
            lambda p: start(p, "--replicaof", "127.0.0.1", str(primary.port)))
    addr = ("127.0.0.1", primary.port)
    redis_sentinel.command(addr, "SET", "pyexec-bench:fence", "1")
    if redis_sentinel.command(addr, "WAIT", str(n), "20000") < n:
        raise RuntimeError("the replicas did not sync in 20 s")
    return primary


def measure(binary, n, min_replicas=0):
    """Runs `n` executions of each shape on one node of `binary` over a
    private redis-server (with `min_replicas` replicas and
    --store-min-replicas); returns one dict per shape: shape, round_trips
    and commands (per execution), detail (round trips by command) and rate
    (executions/s, one client)."""
    rows = []
    with contextlib.ExitStack() as stack:
        if min_replicas:
            redis = start_replicas(stack, min_replicas)
        else:
            redis = stack.enter_context(redis_server.RedisServer())
        server = pyexecd.Server("--store", redis.url, "--store-namespace", "bench",
                                "--store-min-replicas", str(min_replicas),
                                "--log-level", "warn", binary=binary)
        server.start()
        try:
            stubs = pyexecd.stubs()
            pb = stubs.executor
            stub = stubs.executor_grpc.ExecutorServiceStub(server.channel())

            def request(sync):
                return pb.ExecuteRequest(
                    metadata=pb.Metadata(script_args=["print:hello", "exit:0"]),
                    files=[pb.File(path="main.py", content=b"")], **{"async": not sync})

            for _ in range(5):
                stub.Execute(request(True), timeout=30)
            for shape in ("sync", "async"):
                before = commandstats(redis.socket_path)
                t0 = time.monotonic()
                for _ in range(n):
                    res = stub.Execute(request(shape == "sync"), timeout=30)
                    if shape == "async":
                        for _ in stub.StreamOutput(pb.StreamOutputRequest(
                                execution_id=res.execution_id), timeout=30):
                            pass
                        stub.GetExecution(pb.GetExecutionRequest(
                            execution_id=res.execution_id), timeout=30)
                elapsed = time.monotonic() - t0
                after = commandstats(redis.socket_path)
                diff = {k: after[k] - before.get(k, 0) for k in after if k != "info"}
                trips = sum(v for k, v in diff.items() if k in CLIENT_COMMANDS)
                detail = ", ".join(f"{k} {diff[k] / n:.1f}" for k in sorted(diff)
                                   if k in CLIENT_COMMANDS and diff[k])
                rows.append({"shape": shape, "round_trips": trips / n,
                             "commands": sum(diff.values()) / n, "detail": detail,
                             "by_command": {k: v / n for k, v in diff.items() if v},
                             "rate": n / elapsed})
        finally:
            server.stop()
            server.close()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--binary", default=os.path.join(REPO, "bazel-bin", "tests", "server",
                                                     "rpc", "fake_pyexecd"))
    ap.add_argument("--min-replicas", type=int, default=0)
    args = ap.parse_args()
    print("| shape | round trips / execution | commands / execution | executions/s "
          "(one client) |")
    print("|---|---|---|---|")
    for r in measure(args.binary, args.n, args.min_replicas):
        print(f"| {r['shape']} | {r['round_trips']:.1f} ({r['detail']}) | {r['commands']:.1f} | "
              f"{r['rate']:.0f} |")


if __name__ == "__main__":
    main()
