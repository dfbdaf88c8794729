# The dependency cache's helper: run as `python3 -I -S -c <this> MODE ARGS...`
# as root without capabilities in a short-lived container that mounts the
# cache's volume read-write at /deps (and, for a build, the wheelhouse
# read-only at /wheelhouse). See docs/sandbox.md, "Dependencies".
#
#   build DIR PIP_ARG...  pip-installs into /deps/DIR (wheels only), then
#                         indexes it in /deps/.index/DIR.json; pip's output goes
#                         to stderr, each line marked "pyexec: install: "
#   list clean|keep       prints the index; with clean (at start-up, when no
#                         build runs) first removes what no index entry names
#                         (a crashed build's leftovers)
#   remove DIR...         un-indexes each DIR, then deletes it
#   detect                reads the project (a tar) from stdin and prints the
#                         distributions its .py files import (see detect())
#
# Each mode prints its result on stdout as JSON lines: build one
# {"ok": true, "dir", "key", "size", "built_at"} or {"ok": false, "exit_code",
# "error"}; list one {"dir", "key", "size", "built_at"} per layer; remove
# nothing; detect one {"requirements": [...], "modules": [...]}.
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


def list_layers(clean):
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
        elif clean:
            os.unlink(path)
    for n in os.listdir(DEPS) if clean else ():
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


# Import names whose distribution is called something else. A name not
# here is its own distribution's name (requests -> requests). Documented in
# docs/sandbox.md ("Import detection"); keep the two in step.
DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "PyJWT",
    "serial": "pyserial",
    "usb": "pyusb",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyOpenSSL",
    "attr": "attrs",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "PyMuPDF",
    "zmq": "pyzmq",
    "git": "GitPython",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "Levenshtein": "python-Levenshtein",
    "google": None,  # a namespace shared by many distributions: not guessed
}
SOURCE_MAX = 1 << 20  # a larger .py file is not parsed


def optional(handler):
    """Whether an except clause catches a failed import."""
    import ast
    names = []
    t = handler.type
    for e in (t.elts if isinstance(t, ast.Tuple) else [t]):
        if isinstance(e, ast.Name):
            names.append(e.id)
        elif isinstance(e, ast.Attribute):
            names.append(e.attr)
    return t is None or bool({"ImportError", "ModuleNotFoundError", "Exception",
                              "BaseException"} & set(names))


def top_level_imports(tree):
    """Names of the top-level modules `tree` imports absolutely, anywhere in
    the file (in functions and classes too), except in the body of a `try`
    whose handlers catch the ImportError: such an import is optional, and
    the program copes without it."""
    import ast
    names = set()

    def visit(node):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        try_star = getattr(ast, "TryStar", ast.Try)
        if isinstance(node, (ast.Try, try_star)) and any(optional(h) for h in node.handlers):
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def detect():
    """The project's third-party imports: top-level modules its .py files
    import that are neither the standard library of this image's Python
    (sys.stdlib_module_names, sys.builtin_module_names) nor the project's own
    modules (the name of any .py file or directory in it, at any depth, so
    that a src/ layout or a scripts/ directory counts as its own), mapped to
    distributions."""
    import ast
    import tarfile
    imported, own = set(), set()
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for m in tar:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if not last or m.isdir():
                    own.add(part)  # a directory: a package, or a path entry
                elif part.endswith(".py"):
                    own.add(part[:-3])
            if not (m.isfile() and parts[-1].endswith(".py")) or m.size > SOURCE_MAX:
                continue
            source = tar.extractfile(m).read()
            try:
                imported |= top_level_imports(ast.parse(source, filename=m.name))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue  # the program will report it when it runs
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    modules = sorted(n for n in imported if n and n not in stdlib and n not in own)
    reqs = sorted({DISTRIBUTIONS.get(n, n) for n in modules} - {None})
    say({"requirements": reqs, "modules": modules})


def main():
    mode = sys.argv[1]
    if mode == "build":
        build(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif mode == "list":
        list_layers(sys.argv[2] == "clean")
    elif mode == "remove":
        remove(sys.argv[2:])
    elif mode == "detect":
        detect()
    else:
        raise SystemExit("unknown mode %r" % mode)


main()
