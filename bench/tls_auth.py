#!/usr/bin/python3
"""What TLS and tenants cost: one pyexecd, four ways, measured in one run.

    PYEXECD_BIN=bazel-bin/server/pyexecd /usr/bin/python3 bench/tls_auth.py
        [--iterations 30] [--seconds 3] [--image pyexec/python:3.11]

Configurations (the same binary, flags only): plaintext; plaintext with
--auth-tokens (a bearer token on every call); TLS (--tls-cert/--tls-key,
certificates made by openssl for the run); TLS with --auth-tokens. For each:

  hello p50   a sync Execute of print('Hello, World!') on the warm pool,
              over a channel opened (and handshaken) beforehand: ms, p50/p90
  Get p50     one GetExecution of a finished execution: ms per call
  Get QPS     GetExecution calls a second, one client thread, `--seconds` long

"auth adds" is the difference of the GetExecution p50s with and without
--auth-tokens (the lookup: a SHA-256 of the token and a binary search).
Prints a Markdown table and writes bench/results/<date>-tls-auth.json
(every sample) and .md. Only 127.0.0.1 and the Docker engine are used.
"""

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import certs  # noqa: E402
import pyexecd  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run_config(name, args, pki, tokens, tls, auth):
    flags = ["--default-image", args.image, "--instance", f"bench-tls-{os.getpid()}",
             "--log-level", "warn"]
    if tls:
        flags += ["--tls-cert", pki[0], "--tls-key", pki[1]]
    if auth:
        flags += ["--auth-tokens", tokens]
    stubs = pyexecd.stubs()
    pb = stubs.executor
    with pyexecd.Server(*flags) as srv:
        opts = [("grpc.max_receive_message_length", 64 << 20)]
        if tls:
            creds = grpc.ssl_channel_credentials(certs.read(pki[2]))
            ch = grpc.secure_channel(srv.address, creds, options=opts)
        else:
            ch = grpc.insecure_channel(srv.address, options=opts)
        md = [("authorization", f"Bearer {TOKEN}")] if auth else []
        stub = stubs.executor_grpc.ExecutorServiceStub(ch)
        hello = pb.ExecuteRequest(
            metadata=pb.Metadata(entrypoint="main.py"),
            files=[pb.File(path="main.py", content=b"print('Hello, World!')\n")])
        for _ in range(3):  # warm: connection, pool, image
            stub.Execute(hello, timeout=120, metadata=md)
        hello_ms = []
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            res = stub.Execute(hello, timeout=120, metadata=md)
            hello_ms.append((time.perf_counter() - t0) * 1000)
            assert res.stdout == b"Hello, World!\n", res
        get = pb.GetExecutionRequest(execution_id=res.execution_id)
        for _ in range(200):
            stub.GetExecution(get, timeout=10, metadata=md)
        get_ms, n = [], 0
        end = time.monotonic() + args.seconds
        t_start = time.monotonic()
        while time.monotonic() < end:
            t0 = time.perf_counter()
            stub.GetExecution(get, timeout=10, metadata=md)
            get_ms.append((time.perf_counter() - t0) * 1000)
            n += 1
        qps = n / (time.monotonic() - t_start)
        ch.close()
    return {"name": name, "tls": tls, "auth": auth, "hello_ms": hello_ms, "get_ms": get_ms,
            "get_qps": qps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--image", default=os.environ.get("PYEXEC_TEST_IMAGE", "pyexec/python:3.11"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyexec-bench-tls-") as tmp:
        ca = certs.Authority(tmp, "bench-ca")
        cert, key = ca.issue("server", "localhost", server=True)
        pki = (cert, key, ca.cert)
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            # A realistic table: the bench tenant among 999 others.
            for i in range(999):
                f.write(f"t{i} {hashlib.sha256(f'other-{i}'.encode()).hexdigest()}\n")
            f.write(f"bench {hashlib.sha256(TOKEN.encode()).hexdigest()}\n")
        results = [run_config(name, args, pki, tokens, tls, auth)
                   for name, tls, auth in (("plaintext", False, False),
                                           ("plaintext + tokens", False, True),
                                           ("TLS", True, False),
                                           ("TLS + tokens", True, True))]
    lines = ["| configuration | hello world p50 / p90 (ms) | GetExecution p50 (ms) | "
             "GetExecution QPS (1 client) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {pct(r['hello_ms'], 50):.1f} / {pct(r['hello_ms'], 90):.1f}"
                     f" | {statistics.median(r['get_ms']):.3f} | {r['get_qps']:.0f} |")
    by = {(r["tls"], r["auth"]): r for r in results}
    for tls in (False, True):
        d = statistics.median(by[(tls, True)]["get_ms"]) - statistics.median(
            by[(tls, False)]["get_ms"])
        lines.append("")
        lines.append(f"auth adds {d * 1000:+.0f} µs per GetExecution "
                     f"({'TLS' if tls else 'plaintext'}, p50 difference, 1000 tokens)")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(HERE, "results", f"{stamp}-tls-auth")
    with open(base + ".json", "w") as f:
        json.dump({"iterations": args.iterations, "seconds": args.seconds, "image": args.image,
                   "results": results}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(text + "\n")
    print(f"\nwrote {base}.json and .md")


if __name__ == "__main__":
    main()
