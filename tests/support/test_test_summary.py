"""scripts/test_summary.py: counts every test case once, whatever wrote it,
and turns a failed stage without a failing case into one failure."""

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SUMMARY = REPO / "scripts" / "test_summary.py"

GTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1" disabled="1" errors="0" name="AllTests">
  <testsuite name="Tar" tests="4" failures="1" disabled="1" skipped="1" errors="0">
    <testcase name="ok1" status="run" result="completed" classname="Tar"/>
    <testcase name="bad" status="run" result="completed" classname="Tar">
      <failure message="x" type=""/>
    </testcase>
    <testcase name="DISABLED_x" status="notrun" result="suppressed" classname="Tar"/>
    <testcase name="skip" status="run" result="skipped" classname="Tar"><skipped/></testcase>
  </testsuite>
</testsuites>
"""

BAZEL_GENERATED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="//t:crash" tests="1" failures="0" errors="1">
<testcase name="//t:crash" status="run"><error message="exited with error code 134"/></testcase>
</testsuite></testsuites>
"""

PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="t" name="a"/><testcase classname="t" name="b"><failure message="m"/></testcase>
<testcase classname="t" name="c"><skipped message="s"/></testcase>
<testcase classname="t" name="d"><error message="e"/></testcase><testcase classname="t" name="e"/>
</testsuite></testsuites>
"""

TAP = """TAP version 13
# Subtest: suite
    # Subtest: leaf one
    ok 1 - leaf one
    # Subtest: leaf two
    not ok 2 - leaf two
    ok 3 - leaf three # SKIP not here
ok 1 - suite
ok 2 - top level leaf
1..2
# pass 1
"""


def run(tmp_path, stages, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "stages.tsv").write_text("".join("\t".join(s) + "\n" for s in stages))
    p = subprocess.run([sys.executable, str(SUMMARY), str(tmp_path)], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout.strip().splitlines()[-1], p.stdout


def bep(tmp_path, results):
    lines = []
    for label, status, xml_name in results:
        ev = {"id": {"testResult": {"label": label, "run": 1, "shard": 1, "attempt": 1}},
              "testResult": {"status": status, "testActionOutput": []}}
        if xml_name:
            ev["testResult"]["testActionOutput"].append(
                {"name": "test.xml", "uri": "file://" + str(tmp_path / xml_name)})
        lines.append(json.dumps(ev))
    return "\n".join(lines) + "\n"


def test_all_sources_are_counted(tmp_path):
    files = {
        "g.xml": GTEST_XML,
        "crash.xml": BAZEL_GENERATED_XML,
        "bazel-bazel.labels": "//t:g\n//t:crash\n//t:nobuild\n",
        "pytest-tests-e2e.xml": PYTEST_XML,
        "node-client-node.tap": TAP,
    }
    files["bazel-bazel.bep.json"] = bep(tmp_path, [("//t:g", "FAILED", "g.xml"),
                                                  ("//t:crash", "FAILED", "crash.xml")])
    rc, last, out = run(tmp_path, [("bazel", "failed", "some tests failed"),
                                   ("pytest-tests-e2e", "failed", "some tests failed"),
                                   ("node-client-node", "failed", "node --test exited 1")],
                        files)
    # gtest: 1 pass, 1 fail, 2 skipped; crash: 1 fail; nobuild: 1 fail
    # pytest: 2 pass, 2 fail, 1 skipped; tap: 2 pass, 1 fail, 1 skipped
    assert last == "5 passed, 6 failed, 4 skipped", out
    assert rc == 1
    assert "//t:nobuild" in out


def test_clean_run(tmp_path):
    files = {"g.xml": GTEST_XML.replace('<failure message="x" type=""/>', ""),
             "bazel-bazel.labels": "//t:g\n"}
    files["bazel-bazel.bep.json"] = bep(tmp_path, [("//t:g", "PASSED", "g.xml")])
    rc, last, _ = run(tmp_path, [("bazel", "ok", ""), ("pytest-x", "skipped", "none yet")],
                      files)
    assert last == "2 passed, 0 failed, 2 skipped"
    assert rc == 0


def test_failed_stage_without_cases_counts_once(tmp_path):
    rc, last, out = run(tmp_path, [("pytest-tests-e2e", "failed", "pytest exited 4")], {})
    assert last == "0 passed, 1 failed"
    assert rc == 1
    assert "pytest exited 4" in out


def test_failed_target_whose_xml_shows_no_failure_counts(tmp_path):
    files = {"g.xml": GTEST_XML.replace('<failure message="x" type=""/>', ""),
             "bazel-asan.labels": "//t:g\n"}
    files["bazel-asan.bep.json"] = bep(tmp_path, [("//t:g", "TIMEOUT", "g.xml")])
    rc, last, _ = run(tmp_path, [("asan", "failed", "some tests failed")], files)
    assert last == "2 passed, 1 failed, 2 skipped"
    assert rc == 1
