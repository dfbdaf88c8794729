#!/usr/bin/python3
"""Summarises the results scripts/test collected and prints, as its very last
line, `N passed, N failed` (then `, N skipped` when some were skipped).

Usage: test_summary.py RESULTS_DIR

RESULTS_DIR holds what scripts/test wrote:
  stages.tsv             one line per stage: name, ok|failed|skipped, note
  bazel-NAME.labels      the test targets a Bazel stage asked for
  bazel-NAME.bep.json    Bazel's build event log (JSON lines) for that stage
  pytest-*.xml           pytest --junitxml output
  node-*.xml, node-*.tap node --test output (junit reporter, or TAP)
  junit-*.xml            any other JUnit report (e.g. scripts/fuzz)

Every individual test case counts once: googletest cases from each target's
test.xml, pytest and node cases from their reports. A Bazel target that ran
no test.xml-producing test (crash, build failure, timeout) counts as one
failure, and so does a stage that failed without any failing case on record.
Exit status: 0 when nothing failed, else 1. Standard library only.
"""

import json
import os
import re
import sys
import urllib.parse
import xml.etree.ElementTree as ET


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []  # names of failed cases

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures

    def fail(self, name):
        self.failed += 1
        self.failures.append(name)


def junit_tally(path, prefix=""):
    """Counts <testcase> elements of a JUnit XML file (googletest, pytest,
    node). Returns a Tally, or None if the file is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    t = Tally()
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        cls = case.get("classname")
        full = prefix + (f"{cls}.{name}" if cls else name)
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            t.fail(full)
        elif ("skipped" in tags or case.get("result") in ("skipped", "suppressed")
              or case.get("status") == "notrun"):
            t.skipped += 1
        else:
            t.passed += 1
    return t


TAP_POINT = re.compile(r"^(\s*)(not ok|ok)\s+\d+(?:\s*-\s*(.*?))?(\s+#\s*(\w+).*)?$")


def tap_tally(path, prefix=""):
    """Counts the leaf test points of a TAP stream (node's tap reporter nests
    subtests, indented, before their parent's own line)."""
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return None
    t = Tally()
    has_child = {}
    for line in lines:
        m = TAP_POINT.match(line)
        if not m:
            continue
        level = len(m.group(1).expandtabs(4))
        is_parent = has_child.get(level, False)
        has_child[level] = False
        for lvl in list(has_child):
            if lvl > level:
                has_child[lvl] = False
        for lvl in range(0, level):
            has_child[lvl] = True
        if is_parent:
            continue
        directive = (m.group(5) or "").upper()
        name = prefix + (m.group(3) or "?")
        if directive in ("SKIP", "TODO"):
            t.skipped += 1
        elif m.group(2) == "not ok":
            t.fail(name)
        else:
            t.passed += 1
    return t


def uri_path(uri):
    if uri.startswith("file://"):
        return urllib.parse.unquote(uri[len("file://"):])
    return None


def bazel_tally(results, name):
    """Counts the cases of one Bazel stage from its build event log."""
    t = Tally()
    labels_path = os.path.join(results, f"bazel-{name}.labels")
    try:
        expected = [l.strip() for l in open(labels_path) if l.strip()]
    except OSError:
        return t
    # The last attempt of each (label, run, shard).
    attempts = {}
    try:
        with open(os.path.join(results, f"bazel-{name}.bep.json")) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                tid = ev.get("id", {}).get("testResult")
                if tid is None or "testResult" not in ev:
                    continue
                key = (tid.get("label"), tid.get("run", 1), tid.get("shard", 1))
                if key not in attempts or tid.get("attempt", 1) >= attempts[key][0]:
                    attempts[key] = (tid.get("attempt", 1), ev["testResult"])
    except OSError:
        pass
    seen = set()
    for (label, run, shard), (_, res) in sorted(attempts.items()):
        seen.add(label)
        status = res.get("status", "NO_STATUS")
        ok = status in ("PASSED", "FLAKY")
        xml = None
        for out in res.get("testActionOutput", []):
            if out.get("name") == "test.xml":
                xml = uri_path(out.get("uri", ""))
        sub = junit_tally(xml, f"{label} ") if xml else None
        if sub is None:
            if ok:
                t.passed += 1
            else:
                t.fail(f"{label} ({status}, no test.xml)")
            continue
        if not ok and sub.failed == 0:
            sub.fail(f"{label} ({status})")
        t.add(sub)
    for label in expected:
        if label not in seen:
            t.fail(f"{label} (not run: build failed or interrupted)")
    return t


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = sys.argv[1]
    stages = []
    try:
        for line in open(os.path.join(results, "stages.tsv")):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                stages.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    except OSError:
        pass

    total = Tally()
    rows = []
    for name, status, note in stages:
        if name.startswith(("pytest-", "node-", "junit-")):
            xml = os.path.join(results, f"{name}.xml")
            tap = os.path.join(results, f"{name}.tap")
            t = junit_tally(xml) if os.path.exists(xml) else tap_tally(tap)
            t = t or Tally()
            for i, f in enumerate(t.failures):
                t.failures[i] = f"{name}: {f}"
        elif name in ("setup", "build"):
            t = Tally()
        else:
            t = bazel_tally(results, name)
        if status == "failed" and t.failed == 0:
            t.fail(f"{name}: {note or 'stage failed'}")
        total.add(t)
        rows.append((name, status, t, note))

    print("=" * 72)
    print(f"{'stage':34} {'status':8} {'passed':>7} {'failed':>7} {'skipped':>7}")
    for name, status, t, note in rows:
        print(f"{name:34} {status:8} {t.passed:7} {t.failed:7} {t.skipped:7}"
              + (f"  ({note})" if note and status != "ok" else ""))
    if total.failures:
        print("\nfailed:")
        for f in total.failures[:100]:
            print(f"  {f}")
        if len(total.failures) > 100:
            print(f"  ... and {len(total.failures) - 100} more")
    print("=" * 72)
    line = f"{total.passed} passed, {total.failed} failed"
    if total.skipped:
        line += f", {total.skipped} skipped"
    print(line, flush=True)
    return 1 if total.failed or any(s == "failed" for _, s, _, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
