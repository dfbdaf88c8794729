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
    /usr/bin/python3 bench/redis_commands.py [--n 200] [--binary PATH]
"""

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pyexecd  # noqa: E402
import redis_server  # noqa: E402

# Commands a node sends itself (everything else runs inside its scripts).
# (XACK, XREVRANGE, PUBLISH and XADD are sent directly only at start-up,
# shutdown or on rare paths; counted here as script work.)
CLIENT_COMMANDS = {"evalsha", "eval", "xreadgroup", "xread", "ping", "script", "xgroup",
                   "subscribe", "auth", "select"}


def commandstats(sock):
    out = subprocess.run(["redis-cli", "-s", sock, "INFO", "commandstats"],
                         capture_output=True, text=True, check=True).stdout
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line.split(":", 1)
            stats[name[len("cmdstat_"):]] = int(rest.split(",")[0].split("=")[1])
    return stats


def measure(binary, n):
    """Runs `n` executions of each shape on one node of `binary` over a
    private redis-server; returns one dict per shape: shape, round_trips and
    commands (per execution), detail (round trips by command) and rate
    (executions/s, one client)."""
    rows = []
    with redis_server.RedisServer() as redis:
        server = pyexecd.Server("--store", redis.url, "--store-namespace", "bench",
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
    args = ap.parse_args()
    print("| shape | round trips / execution | commands / execution | executions/s "
          "(one client) |")
    print("|---|---|---|---|")
    for r in measure(args.binary, args.n):
        print(f"| {r['shape']} | {r['round_trips']:.1f} ({r['detail']}) | {r['commands']:.1f} | "
              f"{r['rate']:.0f} |")


if __name__ == "__main__":
    main()
