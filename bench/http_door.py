#!/usr/bin/python3
"""The HTTP door's two speed targets (issue: "Speed"), measured:

  1. POST /api/v1/eval of `1 + 1` (eval_last_expr) against the gRPC Eval
     of the same code, on one pyexecd with the real Docker back-end,
     interleaved (alternating which goes first) so that machine drift hits
     both alike; p50 of each and their ratio (target <= 1.1).
  2. GET /metrics with 10 000 retained executions: the scrape's p50/p99
     (target <= 10 ms). The executions are made on the fake back-end
     (tests/server/rpc:fake_pyexecd, the real RPC layer, executor, store and
     HTTP door), since what is measured is the scrape, not the sandboxes.

    /usr/bin/python3 bench/http_door.py [--iterations N] [--records N]

Prints a Markdown table and writes it with the raw samples to
bench/results/<time>-http-door.{md,json}. Talks to 127.0.0.1 and the
Docker socket only; stops the servers it starts by their pids.
"""

import argparse
import datetime
import http.client
import json
import os
import statistics
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pyexecd  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def http_request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def eval_case(iterations, image):
    stubs = pyexecd.stubs()
    pb = stubs.executor
    with pyexecd.Server("--default-image", image, "--instance", f"bench-http-{uuid.uuid4().hex[:6]}",
                        "--http-listen", "127.0.0.1:0", "--warm-pool", "2",
                        "--log-level", "warn") as srv:
        host, port = srv.http_address().rsplit(":", 1)
        stub = stubs.executor_grpc.ExecutorServiceStub(srv.channel())
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        body = json.dumps({"code": "1 + 1", "eval_last_expr": True})

        def via_http():
            t0 = time.perf_counter()
            status, data = http_request(conn, "POST", "/api/v1/eval", body,
                                        {"Content-Type": "application/json"})
            ms = (time.perf_counter() - t0) * 1000
            assert status == 200 and json.loads(data)["result"] == "2", data
            return ms

        def via_grpc():
            t0 = time.perf_counter()
            res = stub.Eval(pb.EvalRequest(code="1 + 1"), timeout=120)
            ms = (time.perf_counter() - t0) * 1000
            assert res.result.value == "2", res
            return ms

        for _ in range(3):  # warm-up: images cached, pool full
            via_http()
            via_grpc()
        samples = {"http": [], "grpc": []}
        for i in range(iterations):
            order = (("http", via_http), ("grpc", via_grpc))
            for name, fn in (order if i % 2 == 0 else order[::-1]):
                samples[name].append(fn())
        conn.close()
        assert srv.stop(timeout=60) == 0
    return samples


def metrics_case(records, scrapes):
    stubs = pyexecd.stubs()
    pb = stubs.executor
    fake = os.environ.get("FAKE_PYEXECD_BIN") or os.path.join(
        REPO, "bazel-bin", "tests", "server", "rpc", "fake_pyexecd")
    with pyexecd.Server("--http-listen", "127.0.0.1:0", "--max-records", str(records + 100),
                        "--max-queue", "1000", "--max-concurrent", "8", "--log-level", "warn",
                        binary=fake) as srv:
        stub = stubs.executor_grpc.ExecutorServiceStub(srv.channel())
        req = pb.ExecuteRequest(metadata=pb.Metadata(script_args=["print:x", "exit:0"]),
                                files=[pb.File(path="main.py", content=b"")])
        t0 = time.perf_counter()
        futures = []
        for i in range(records):
            futures.append(stub.Execute.future(req, timeout=300))
            if len(futures) >= 256:
                for f in futures:
                    f.result()
                futures = []
        for f in futures:
            f.result()
        fill_s = time.perf_counter() - t0
        host, port = srv.http_address().rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        status, data = http_request(conn, "GET", "/metrics")
        assert status == 200
        retained = [l for l in data.decode().splitlines()
                    if l.startswith("pyexec_executions_retained ")]
        samples = []
        for _ in range(scrapes):
            t0 = time.perf_counter()
            status, data = http_request(conn, "GET", "/metrics")
            samples.append((time.perf_counter() - t0) * 1000)
            assert status == 200
        conn.close()
        assert srv.stop(timeout=60) == 0
    return samples, retained[0] if retained else "?", fill_s, len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=30, help="evals per door (default 30)")
    ap.add_argument("--records", type=int, default=10000,
                    help="retained executions for the scrape (default 10000)")
    ap.add_argument("--scrapes", type=int, default=200, help="scrapes timed (default 200)")
    ap.add_argument("--image", default=os.environ.get("PYEXEC_TEST_IMAGE") or "pyexec/python:3.11")
    args = ap.parse_args()

    ev = eval_case(args.iterations, args.image)
    sc, retained, fill_s, size = metrics_case(args.records, args.scrapes)
    h50, g50 = statistics.median(ev["http"]), statistics.median(ev["grpc"])
    lines = [
        "# The HTTP door: speed",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')}, {os.cpu_count()} cores",
        "",
        "| Case | p50 | p90 | Target |",
        "|---|---|---|---|",
        f"| POST /api/v1/eval `1 + 1` (n={len(ev['http'])}) | {h50:.1f} ms | "
        f"{pct(ev['http'], 90):.1f} ms | |",
        f"| gRPC Eval `1 + 1` (n={len(ev['grpc'])}) | {g50:.1f} ms | "
        f"{pct(ev['grpc'], 90):.1f} ms | |",
        f"| HTTP / gRPC, p50 | {h50 / g50:.3f} | | <= 1.1 |",
        f"| GET /metrics, {retained.split()[-1]} retained (n={len(sc)}, {size} bytes) | "
        f"{statistics.median(sc):.2f} ms | {pct(sc, 90):.2f} ms (p99 {pct(sc, 99):.2f}) | "
        f"<= 10 ms |",
        "",
        f"Filling the store with {args.records} executions over gRPC took {fill_s:.1f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join(HERE, "results", f"{stamp}-http-door")
    with open(out + ".md", "w") as f:
        f.write(text)
    with open(out + ".json", "w") as f:
        json.dump({"eval_ms": ev, "metrics_scrape_ms": sc, "retained": retained,
                   "records": args.records}, f)


if __name__ == "__main__":
    main()
