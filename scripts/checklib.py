"""Shared by the source checks (scripts/check_layering, check_banned,
check_format); imported, not run. Standard library only.

A check collects findings ("path:line: message") per case (a module, a
banned function, a directory), prints them, optionally writes one JUnit test
case per case for scripts/test, and exits 1 when there was any finding.
"""

import os
import subprocess
import sys
import xml.sax.saxutils

# The tree to check: this repository, or PYEXEC_CHECK_ROOT (the checks' own
# tests point it at a scratch git repository with planted violations).
REPO = os.environ.get("PYEXEC_CHECK_ROOT") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))

C_EXTS = (".c", ".h")
CXX_EXTS = (".cc", ".cpp", ".hpp")


def source_files(dirs, exts):
    """Repository-relative paths of the files under `dirs` ending in one of
    `exts`: tracked files and new ones not ignored by .gitignore, sorted. Files
    deleted in the work tree are left out."""
    out = subprocess.run(
        ["git", "-C", REPO, "ls-files", "--cached", "--others", "--exclude-standard", "--", *dirs],
        check=True, capture_output=True, text=True).stdout
    files = sorted({f for f in out.splitlines() if f.endswith(exts)})
    return [f for f in files if os.path.isfile(os.path.join(REPO, f))]


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_c(text, keep_strings=False):
    """`text` with C comments (and, unless keep_strings, the contents of
    string and character literals) replaced by spaces; newlines are kept, so
    line numbers stay right."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            if keep_strings:
                out.append(text[i:j])
            else:
                out.append(c + " " * max(0, j - i - 2) + (c if j - i >= 2 else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Report:
    """Findings grouped by case; `finish` prints them and ends the process."""

    def __init__(self, tool):
        self.tool = tool
        self.cases = {}  # name -> [finding, ...], in insertion order

    def case(self, name):
        self.cases.setdefault(name, [])

    def add(self, name, finding):
        self.cases.setdefault(name, []).append(finding)

    def finish(self, junit=None, hint=""):
        bad = sum(len(v) for v in self.cases.values())
        for name, findings in self.cases.items():
            for f in findings:
                print(f"{f}", file=sys.stderr)
        if junit:
            write_junit(junit, self.tool, self.cases)
        if bad:
            print(f"{self.tool}: {bad} problem(s)" + (f"; {hint}" if hint else ""),
                  file=sys.stderr)
            sys.exit(1)
        print(f"{self.tool}: ok ({len(self.cases)} checked)")
        sys.exit(0)


def write_junit(path, suite, cases):
    q = xml.sax.saxutils.quoteattr
    failures = sum(1 for v in cases.values() if v)
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write(f"<testsuites><testsuite name={q(suite)} tests=\"{len(cases)}\" "
                f"failures=\"{failures}\">\n")
        for name, findings in cases.items():
            f.write(f"<testcase classname={q(suite)} name={q(name)}>")
            if findings:
                body = xml.sax.saxutils.escape("\n".join(findings))
                f.write(f"<failure message={q(findings[0])}>{body}</failure>")
            f.write("</testcase>\n")
        f.write("</testsuite></testsuites>\n")


def parse_args(argv, usage):
    """Accepts [--junit FILE] [PATHS...]; returns (junit, paths)."""
    junit, paths = None, []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--junit" and args:
            junit = args.pop(0)
        elif a.startswith("--junit="):
            junit = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print(usage)
            sys.exit(0)
        elif a.startswith("-"):
            print(usage, file=sys.stderr)
            sys.exit(2)
        else:
            paths.append(a)
    return junit, paths
