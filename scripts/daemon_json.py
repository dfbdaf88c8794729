#!/usr/bin/python3
"""Registers pyexec's OCI runtimes in the Docker engine's daemon.json
(scripts/setup --with-gvisor; docs/operations.md, "gVisor (runsc)").

Usage: daemon_json.py PATH

Merges into PATH (created if absent):
  runsc  /usr/bin/runsc with --network=none --platform=ptrace (gVisor
         without KVM, and without a network stack of its own)
  crun   /usr/bin/crun, when it is installed: dockerd refuses runtimes both
         in the file and as --add-runtime flags, so the file carries it too
Every other setting, and any other runtime, is kept. The file is replaced
atomically (write, then rename). Prints "changed" when it changed, nothing
when it already said all this. Exit status 0, or 1 with a message when PATH
is not a JSON object. Standard library only.
"""

import json
import os
import sys

RUNSC = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--platform=ptrace"]}
CRUN = {"path": "/usr/bin/crun"}


def wanted(crun_installed):
    want = {"runsc": RUNSC}
    if crun_installed:
        want["crun"] = CRUN
    return want


def merge(path, crun_installed):
    """Returns True if the file changed."""
    try:
        with open(path) as f:
            conf = json.load(f)
    except FileNotFoundError:
        conf = {}
    if not isinstance(conf, dict) or not isinstance(conf.get("runtimes", {}), dict):
        raise ValueError(f"{path}: not a JSON object with an object 'runtimes'")
    runtimes = conf.setdefault("runtimes", {})
    want = wanted(crun_installed)
    if all(runtimes.get(k) == v for k, v in want.items()):
        return False
    runtimes.update(want)
    tmp = path + ".pyexec-tmp"
    with open(tmp, "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    os.rename(tmp, path)
    return True


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        changed = merge(path, os.access(CRUN["path"], os.X_OK))
    except (ValueError, json.JSONDecodeError) as e:
        print(f"daemon_json: {e}", file=sys.stderr)
        return 1
    if changed:
        print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
