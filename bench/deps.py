#!/usr/bin/python3
"""What requirements cost: a warm-pool hello world with no requirements,
with one small requirement whose layer is cached, and with one that must
be built first (docs/sandbox.md, "Dependencies").

    PYEXECD_BIN=bazel-bin/server/pyexecd /usr/bin/python3 bench/deps.py [--iterations N]

Starts its own pyexecd (a fresh instance, so an empty cache volume, removed
at the end; --warm-pool 2; a wheelhouse of one tiny wheel made here), waits
for the pool before each measured run, and interleaves the three variants in
every iteration so drift in the machine's load hits them alike. "first run"
uses requirements no run asked for before (a new version pin each time), so
each of its samples is a build. Prints a Markdown table and writes the raw
samples to bench/results/<date>-deps.json (and the table as .md). Only 127.0.0.1 and the Docker
socket are talked to.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
sys.path.insert(0, HERE)
import pyexecd  # noqa: E402
import wheels  # noqa: E402
from bench import pct  # noqa: E402

IMAGE = os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11"
HELLO = 'print("Hello, World!")\n'
WITH_REQ = 'import benchpkg\nprint("Hello, World!")\n'


def pool_ready(instance):
    return sum(1 for c in pyexecd.containers("pyexec.pool=1")
               if (c.get("Labels") or {}).get("pyexec.instance") == instance
               and c.get("State") == "running"
               and any(n.startswith("/pyexec-pool-") for n in c.get("Names") or []))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--builds", type=int, default=5, help="first-run samples (each a build)")
    args = ap.parse_args()

    instance = f"bench-deps-{uuid.uuid4().hex[:8]}"
    wheelhouse = tempfile.mkdtemp(prefix="pyexec-bench-wheels-")
    for v in range(1, args.builds + 2):
        wheels.make_wheel(wheelhouse, "benchpkg", version=f"1.{v}",
                          modules={"benchpkg.py": f"V = '1.{v}'\n"})
    srv = pyexecd.Server("--instance", instance, "--default-image", IMAGE, "--warm-pool", "2",
                         "--max-concurrent", "2", "--log-level", "warn", "--reaper-interval-s",
                         "0", "--wheelhouse", wheelhouse).start()
    pb = pyexecd.stubs().executor
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
    samples = {"none": [], "cached": [], "first run": []}
    server_ms = {"none": [], "cached": [], "first run": []}  # the result's duration_ms

    def run(code, reqs):
        if not pyexecd.wait_until(lambda: pool_ready(instance) >= 2, 60):
            raise RuntimeError("the warm pool did not fill within 60 s")
        req = pb.ExecuteRequest(metadata=pb.Metadata(requirements_txt=reqs),
                                files=pyexecd.make_files({"main.py": code}))
        t0 = time.monotonic()
        res = stub.Execute(req, timeout=180)
        ms = (time.monotonic() - t0) * 1000
        if res.stdout != b"Hello, World!\n":
            raise RuntimeError(f"{pyexecd.status_name(res)} {res.error!r} {res.stderr[-500:]!r}")
        return ms, res.duration_ms

    try:
        run(WITH_REQ, "benchpkg==1.1\n")  # builds the layer the "cached" runs use
        builds = iter(range(2, args.builds + 2))
        for i in range(args.iterations):
            order = [("none", HELLO, ""), ("cached", WITH_REQ, "benchpkg==1.1\n")]
            if i < args.builds:
                order.append(("first run", WITH_REQ, f"benchpkg=={'1.%d' % next(builds)}\n"))
            order = order[i % len(order):] + order[:i % len(order)]
            for name, code, reqs in order:
                ms, dur = run(code, reqs)
                samples[name].append(ms)
                server_ms[name].append(dur)
    finally:
        srv.close()
        pyexecd.docker_api("DELETE", f"/volumes/pyexec-deps-{instance}")
        for f in os.listdir(wheelhouse):
            os.unlink(os.path.join(wheelhouse, f))
        os.rmdir(wheelhouse)

    lines = ["| variant | n | p50 ms | p90 ms | max ms | server duration_ms p50 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in samples.items():
        lines.append(f"| {name} | {len(v)} | {pct(v, 50):.1f} | {pct(v, 90):.1f} | "
                     f"{max(v):.1f} | {pct(server_ms[name], 50):.0f} |")
    added = pct(samples["cached"], 50) - pct(samples["none"], 50)
    # The two ran in the same iterations: their differences, pair by pair,
    # cancel most of the machine's drift.
    paired = pct([c - n for n, c in zip(samples["none"], samples["cached"])], 50)
    lines += ["", f"cached layer adds {added:+.1f} ms at p50, {paired:+.1f} ms as the median of "
              f"the paired differences (target: at most 20 ms); load average at the end "
              f"{os.getloadavg()[0]:.1f}"]
    print("\n".join(lines))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = os.path.join(HERE, "results", f"{stamp}-deps")
    with open(base + ".json", "w") as f:
        json.dump({"image": IMAGE, "iterations": args.iterations, "samples_ms": samples,
                   "duration_ms": server_ms}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"raw samples: {base}.json")


if __name__ == "__main__":
    main()
