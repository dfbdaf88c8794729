# The sandbox bootstrap: the container's command, run as `python3 -I -c`.
#
# Protocol on standard input (see docs/sandbox.md):
#   "PYX1 " + 10 decimal digits (header length N) + "\n"
#   N bytes of JSON header: tar_len, entrypoint, args, env ("KEY=value"
#       strings for every step), pre_commands, requirements (string or
#       null), network (bool), nonce
#   tar_len bytes of a tar archive (the project)
#   the user's stdin, up to EOF (left unread here: the program inherits fd 0)
# The bootstrap unpacks the project into /work, runs the pre_commands and
# pip, then the program, and exits with the first failing step's exit code
# (128+N for signal N). Last, it writes one end marker to stdout and one
# usage trailer (with that exit code) to stderr:
#   "\x1ePYX" + nonce + "\x1e" + JSON + "\x1ePYX" + nonce + "\x1e\n"
# (JSON is "{}" on stdout). The program has exited by then, so whatever it
# wrote is ahead of them on each pipe: once the server has both, the run's
# output and result are complete and it need not wait for the container.
# Every read of stdin is an unbuffered os.read of at most the bytes still
# due, so not one byte of the user's stdin is consumed here. Until the header
# arrives the bootstrap only waits, which is what lets a warm pool start
# containers before their jobs exist: all that is job-specific (files,
# environment, arguments) comes through stdin.
import json
import os
import subprocess
import sys
import tarfile

WORK = "/work"
SETUP_FAILED = 1


def say(msg):
    os.write(2, ("pyexec: " + msg + "\n").encode("utf-8", "replace"))


def read_exact(n):
    parts = []
    while n > 0:
        b = os.read(0, min(n, 1 << 16))
        if not b:
            raise EOFError("standard input ended early")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


class Limited:
    """A file object over the next `left` bytes of fd 0."""

    def __init__(self, left):
        self.left = left

    def read(self, size=-1):
        if size is None or size < 0 or size > self.left:
            size = self.left
        if size == 0:
            return b""
        b = os.read(0, size)
        if not b:
            raise EOFError("standard input ended inside the project archive")
        self.left -= len(b)
        return b


def inside(path):
    return path == WORK or path.startswith(WORK + "/")


def unpack(tar_len):
    src = Limited(tar_len)
    dirs = []
    with tarfile.open(fileobj=src, mode="r|") as tf:
        for m in tf:
            name = m.name
            if not name or name.startswith("/") or "\0" in name:
                raise ValueError("bad member name %r" % name)
            dest = os.path.normpath(os.path.join(WORK, name))
            if not inside(dest):
                raise ValueError("member %r escapes %s" % (name, WORK))
            if dest == WORK:
                continue
            parent = os.path.dirname(dest)
            os.makedirs(parent, exist_ok=True)
            if not inside(os.path.realpath(parent)):
                raise ValueError("member %r escapes %s" % (name, WORK))
            if m.isdir():
                os.makedirs(dest, exist_ok=True)
                dirs.append((dest, m.mode))
            elif m.isreg():
                f = tf.extractfile(m)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while True:
                        b = f.read(1 << 16)
                        if not b:
                            break
                        out.write(b)
                os.chmod(dest, m.mode & 0o777)
            elif m.issym():
                target = m.linkname
                resolved = os.path.normpath(os.path.join(parent, target))
                if target.startswith("/") or not inside(resolved):
                    raise ValueError("symlink %r escapes %s" % (name, WORK))
                os.symlink(target, dest)
            else:
                raise ValueError("member %r has an unsupported type" % name)
    for d, mode in reversed(dirs):
        os.chmod(d, (mode & 0o777) | 0o700)
    while src.left > 0:
        src.read(src.left)


def exit_code(rc):
    return 128 - rc if rc < 0 else rc


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def usage():
    u = {}
    v = read_text("/sys/fs/cgroup/memory/memory.max_usage_in_bytes")
    if v is None:
        v = read_text("/sys/fs/cgroup/memory.peak")
    if v is not None and v.strip().isdigit():
        u["peak_memory_bytes"] = int(v)
    v = read_text("/sys/fs/cgroup/cpuacct/cpuacct.usage")
    if v is not None and v.strip().isdigit():
        u["cpu_time_ms"] = int(v) // 1000000
    else:
        for line in (read_text("/sys/fs/cgroup/cpu.stat") or "").splitlines():
            k, _, n = line.partition(" ")
            if k == "usage_usec" and n.strip().isdigit():
                u["cpu_time_ms"] = int(n) // 1000
    # The cgroup's own count of OOM kills (v1 memory.oom_control, v2
    # memory.events): the engine's OOMKilled flag can miss a kill that races
    # with the container's exit.
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        for line in (read_text(path) or "").splitlines():
            k, _, n = line.partition(" ")
            if k == "oom_kill" and n.strip().isdigit():
                u["oom_kills"] = int(n)
        if "oom_kills" in u:
            break
    return u


def run(hdr):
    try:
        unpack(hdr["tar_len"])
    except (OSError, ValueError, EOFError, tarfile.TarError) as e:
        say("cannot unpack the project into %s: %s" % (WORK, e))
        return SETUP_FAILED
    env = dict(os.environ)
    for kv in hdr["env"]:
        k, _, v = kv.partition("=")
        env[k] = v
    for cmd in hdr["pre_commands"]:
        rc = subprocess.call(["sh", "-c", cmd], cwd=WORK, stdin=subprocess.DEVNULL, env=env)
        if rc != 0:
            say("pre-command %s failed with exit code %d" % (json.dumps(cmd), exit_code(rc)))
            return exit_code(rc)
    req = hdr.get("requirements")
    if req:
        base = WORK + "/.pyexec"
        site = base + "/site"
        tmp = base + "/tmp"
        try:
            os.makedirs(tmp, exist_ok=True)
            path = base + "/requirements.txt"
            with open(path, "w") as f:
                f.write(req)
        except OSError as e:
            say("cannot write the requirements: %s" % e)
            return SETUP_FAILED
        cmd = [sys.executable, "-m", "pip", "install", "--no-input", "--target", site,
               "--break-system-packages", "-r", path]
        if not hdr["network"]:
            cmd += ["--no-index", "--find-links", WORK]
        pip_env = dict(env, TMPDIR=tmp)
        rc = subprocess.call(cmd, cwd=WORK, stdin=subprocess.DEVNULL, env=pip_env)
        if rc != 0:
            say("pip install failed with exit code %d" % exit_code(rc))
            return exit_code(rc)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = site + (":" + old if old else "")
    argv = [sys.executable, hdr["entrypoint"]] + list(hdr["args"])
    try:
        p = subprocess.Popen(argv, cwd=WORK, env=env)
    except OSError as e:
        say("cannot start the program: %s" % e)
        return SETUP_FAILED
    return exit_code(p.wait())


def main():
    code = SETUP_FAILED
    nonce = None
    try:
        line = read_exact(16)
        if line[:5] != b"PYX1 " or line[15:16] != b"\n":
            raise ValueError("bad protocol header")
        hdr = json.loads(read_exact(int(line[5:15])))
        nonce = hdr["nonce"]
        code = run(hdr)
    except Exception as e:  # the protocol failed: report it, keep the trailer
        say("bootstrap failed: %s: %s" % (type(e).__name__, e))
    if nonce:
        m = ("\x1ePYX" + nonce + "\x1e").encode()
        u = usage()
        u["exit_code"] = code
        try:  # the end of stdout: the program is gone, all its output is ahead
            os.write(1, m + b"{}" + m + b"\n")
        except OSError:
            pass
        os.write(2, m + json.dumps(u).encode() + m + b"\n")
    os._exit(code)


main()
