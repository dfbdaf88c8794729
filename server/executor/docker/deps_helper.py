# The dependency cache's helper: run as `python3 -I -S -c <this> MODE ARGS...`
# as root without capabilities in a short-lived container that mounts the
# cache's volume read-write at /deps (and, for a build, the wheelhouse
# read-only at /wheelhouse). See docs/sandbox.md, "Dependencies".
#
#   build DIR PIP_ARG...  pip-installs into /deps/DIR (wheels only), then
#                         indexes it in /deps/.index/DIR.json; pip's output goes
#                         to stderr, each line marked "pyexec: install: "
#   list                  removes what no index entry names (a crashed build's
#                         leftovers) and prints the index
#   remove DIR...         un-indexes each DIR, then deletes it
#
# Each mode prints its result on stdout as JSON lines: build one
# {"ok": true, "dir", "key", "size", "built_at"} or {"ok": false, "exit_code",
# "error"}; list one {"dir", "key", "size", "built_at"} per layer; remove
# nothing.
import json
import os
import shutil
import subprocess
import sys
import time

DEPS = "/deps"
INDEX = DEPS + "/.index"
TAIL_LINES = 30


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def plain(name):
    return name and "/" not in name and name not in (".", "..") and not name.startswith(".")


def size_of(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def error_text(tail):
    """pip's own ERROR lines if it printed any, else its last lines."""
    errors = [line for line in tail if line.startswith("ERROR:")]
    text = "\n".join(errors or [line for line in tail if line.strip()])
    return text[-2000:]


def build(name, key, pip_args):
    work = DEPS + "/.build-" + name
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work + "/tmp")
    env = dict(os.environ, TMPDIR=work + "/tmp", HOME=work + "/tmp", PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
    cmd = [sys.executable, "-m", "pip", "install", "--no-input", "--only-binary=:all:",
           "--target", work + "/out", "--break-system-packages"] + pip_args
    os.write(2, b"pyexec: install: building the requirements' layer (wheels only)\n")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, cwd=work + "/tmp")
    tail = []
    for raw in p.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        os.write(2, ("pyexec: install: " + line + "\n").encode("utf-8", "replace"))
        tail = (tail + [line])[-TAIL_LINES:]
    rc = p.wait()
    if rc != 0:
        shutil.rmtree(work, ignore_errors=True)
        say({"ok": False, "exit_code": rc, "error": error_text(tail)})
        return
    dest = DEPS + "/" + name
    os.rename(work + "/out", dest)
    shutil.rmtree(work, ignore_errors=True)
    record = {"dir": name, "key": key, "size": size_of(dest), "built_at": int(time.time())}
    os.makedirs(INDEX, exist_ok=True)
    tmp = INDEX + "/." + name + ".json"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.rename(tmp, INDEX + "/" + name + ".json")
    say(dict(record, ok=True))


def list_layers():
    os.makedirs(INDEX, exist_ok=True)
    layers = {}
    for n in os.listdir(INDEX):
        path = INDEX + "/" + n
        rec = None
        if n.endswith(".json") and not n.startswith("."):
            try:
                with open(path) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                rec = None
        if (type(rec) is dict and plain(rec.get("dir")) and n == rec["dir"] + ".json"
                and os.path.isdir(DEPS + "/" + rec["dir"])):
            layers[rec["dir"]] = rec
        else:
            os.unlink(path)
    for n in os.listdir(DEPS):
        if n != ".index" and n not in layers:
            shutil.rmtree(DEPS + "/" + n, ignore_errors=True)
    for rec in layers.values():
        say(rec)


def remove(names):
    for name in names:
        if not plain(name):
            continue
        try:
            os.unlink(INDEX + "/" + name + ".json")
        except FileNotFoundError:
            pass
        shutil.rmtree(DEPS + "/" + name, ignore_errors=True)


def main():
    mode = sys.argv[1]
    if mode == "build":
        build(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif mode == "list":
        list_layers()
    elif mode == "remove":
        remove(sys.argv[2:])
    else:
        raise SystemExit("unknown mode %r" % mode)


main()
