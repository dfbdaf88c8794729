# The sandbox bootstrap: the container's command, run as `python3 -I -S -c`,
# as the container's PID 1 (the container has no other init).
#
# Protocol on standard input (see docs/sandbox.md):
#   "PYX1 " + 10 decimal digits (header length N) + "\n"
#   N bytes of JSON header: tar_len, entrypoint, args, env ("KEY=value"
#       strings for every step), pre_commands, deps (the run's dependency
#       layer directory, or null), network (bool), nonce
#   tar_len bytes of a tar archive (the project)
#   the user's stdin, up to EOF (left unread here: the program inherits fd 0)
# The bootstrap unpacks the project into /work, runs the pre_commands, puts
# the dependency layer (built outside the sandbox) on PYTHONPATH, then runs
# the program, and exits with the first failing step's exit code
# (128+N for signal N). Last, it writes one end marker to stdout and one
# usage trailer (with that exit code) to stderr:
#   "\x1ePYX" + nonce + "\x1e" + JSON + "\x1ePYX" + nonce + "\x1e\n"
# (JSON on stdout is "{}", or for an Eval, whose header has "eval": the
# wrapper's source, the report the wrapper left: see run() and
# eval_wrapper.py). The program has exited by then, so whatever it
# wrote is ahead of them on each pipe: once the server has both, the run's
# output and result are complete.
# Every read of stdin is an unbuffered os.read of at most the bytes still
# due, so not one byte of the user's stdin is consumed here. Until the header
# arrives the bootstrap only waits, which is what lets a warm pool start
# containers before their jobs exist: all that is job-specific (files,
# environment, arguments) comes through stdin.
#
# The nonce must stay secret from everything the request runs (pre-commands,
# pip, the program and whatever they start), all of which run as the same
# user as the bootstrap. So, before it reads the header, the bootstrap makes
# itself non-dumpable (prctl): no process without CAP_SYS_PTRACE may ptrace
# it or open its /proc/<pid>/mem, environ, fd/..., and as PID 1 of its PID
# namespace it receives no signal from inside the container that it has no
# handler for (SIGKILL included). Children never get the container's own
# stdout and stderr: they write into pipes that the bootstrap relays, since a
# process holding a pipe can reopen it for reading through /proc/self/fd and
# would read the last words (under gVisor a child can open them for writing
# through /proc/1/fd/1 and 2, not for reading: see below). The nonce is in
# no argument, no environment and no inherited descriptor. Before the last words the bootstrap kills every
# other process in the container and reaps them: no process of the request
# exists while the nonce is on the wire.
#
# Where the runtime lets an unprivileged process create namespaces (gVisor:
# runsc; runc and crun refuse it through pyexec's seccomp profile), those
# defences are not enough: gVisor lets a process of the same user open a
# non-dumpable process's /proc/<pid>/fd/*, environ, cmdline and maps, and
# send it any signal, PID 1 included. There the bootstrap first moves itself
# into a user namespace of its own (65534 mapped to 65534, before it becomes
# non-dumpable, as writing the maps needs), and starts every child as PID 2
# of a fresh PID namespace under a small init (see spawn_isolated): a child
# can name no process outside its namespace, so it can signal and ptrace
# neither the bootstrap nor anything else that holds the nonce, and the init
# is not dumpable. gVisor refuses a fresh /proc mount in a user namespace, so
# /proc stays the container's: a child can still read the bootstrap's
# environ and cmdline, and open its descriptors (the relay pipes, and the
# container's stdout and stderr, which read EBADF there but can be written).
# None holds the nonce: a child can write markers, not forge them.
#
# In the namespace mode (--isolation namespace, argv "ns <fd>") the bootstrap
# runs as PID 1 of an execution's own namespaces, started by the host
# supervisor (host.py) through bubblewrap under the program's seccomp filter.
# There the header has no nonce and the bootstrap writes no last words: it
# reports {"exit_code", "report"} on fd <fd> (closed to its children) and
# the host, outside the namespaces, writes the last words; the cgroup files
# are the host's business too.
#
# Start-up cost is paid by every cold run, so the bootstrap imports only
# built-in or C modules: `json` (which compiles regular expressions),
# `subprocess` and `tarfile` together took ~35 ms of CPU per run. The JSON
# header is parsed with `_json`'s C scanner, children are started with
# posix_spawn, and the archive (ustar with pax extended headers, as the
# server's repacking writes it) is read by the small reader below.
import _signal
import fcntl
import os
import select
import sys
import time

try:
    from _json import make_scanner
except ImportError:  # an interpreter without the C accelerator
    make_scanner = None

WORK = "/work"
SETUP_FAILED = 1
BLOCK = 512
SIGPIPE, SIGXFSZ = 13, 25  # Linux; what subprocess resets for its children
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
CLONE_NEWUSER, CLONE_NEWPID = 0x10000000, 0x20000000
EPERM, EINVAL, ENOSYS = 1, 22, 38
SIGKILL = 9
RESERVE_BYTES = 2 << 20


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


def read_all(src, n):
    parts = []
    while n > 0:
        b = src.read(min(n, 1 << 16))
        if not b:
            raise EOFError("standard input ended inside the project archive")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def parse_json(text):
    if make_scanner is None:
        import json
        return json.loads(text)
    try:
        obj, end = make_scanner(JsonContext())(text, 0)
    except StopIteration:
        raise ValueError("the header is not JSON") from None
    if text[end:].strip():
        raise ValueError("extra data after the JSON header")
    return obj


class JsonContext:
    """What _json.make_scanner reads from json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None  # NaN/Infinity: the header never has them


def octal(field):
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def pax_records(data):
    """The key=value records of a pax extended header."""
    out = {}
    i = 0
    while i < len(data):
        sp = data.index(b" ", i)
        n = int(data[i:sp])
        if n <= sp - i + 1 or i + n > len(data) or data[i + n - 1:i + n] != b"\n":
            raise ValueError("bad pax record")
        key, eq, value = data[sp + 1:i + n - 1].partition(b"=")
        if not eq:
            raise ValueError("bad pax record")
        out[key] = value
        i += n
    return out


def members(src):
    """Yields (name, type, mode, size, linkname) for each member of a ustar
    archive with optional pax extended headers ('x' applies to the next
    member, 'g' is ignored). After a regular file the caller reads exactly
    `size` bytes, then calls skip_padding(src, size)."""
    pax = {}
    while True:
        h = read_all(src, BLOCK)
        if h == bytes(BLOCK):
            return
        if h[257:262] != b"ustar":
            raise ValueError("not a ustar header")
        chk = octal(h[148:156])
        if chk != sum(h[:148]) + 8 * 32 + sum(h[156:]):
            raise ValueError("bad header checksum")
        typ = h[156:157]
        size = octal(h[124:136])
        if typ in (b"x", b"g"):
            data = read_all(src, size)
            skip_padding(src, size)
            if typ == b"x":
                pax = pax_records(data)
            continue
        name = h[0:100].split(b"\0", 1)[0]
        prefix = h[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
        name = pax.get(b"path", name)
        link = pax.get(b"linkpath", h[157:257].split(b"\0", 1)[0])
        size = int(pax[b"size"]) if b"size" in pax else size
        pax = {}
        yield os.fsdecode(name), typ, octal(h[100:108]), size, os.fsdecode(link)


def skip_padding(src, size):
    pad = -size % BLOCK
    if pad:
        read_all(src, pad)


def inside(path):
    return path == WORK or path.startswith(WORK + "/")


def unpack(tar_len):
    src = Limited(tar_len)
    dirs = []
    for name, typ, mode, size, link in members(src):
        name = name.rstrip("/") if name != "/" else name
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
        if typ == b"5":
            os.makedirs(dest, exist_ok=True)
            dirs.append((dest, mode))
        elif typ in (b"0", b"\0", b"7"):
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                left = size
                while left > 0:
                    b = src.read(min(left, 1 << 16))
                    if not b:
                        raise EOFError("standard input ended inside the project archive")
                    left -= len(b)
                    while b:
                        b = b[os.write(fd, b):]
            finally:
                os.close(fd)
            skip_padding(src, size)
            os.chmod(dest, mode & 0o777)
        elif typ == b"2":
            resolved = os.path.normpath(os.path.join(parent, link))
            if link.startswith("/") or not inside(resolved):
                raise ValueError("symlink %r escapes %s" % (name, WORK))
            os.symlink(link, dest)
        else:
            raise ValueError("member %r has an unsupported type" % name)
    for d, mode in reversed(dirs):
        os.chmod(d, (mode & 0o777) | 0o700)
    while src.left > 0:
        src.read(src.left)


class Relay:
    """The children's stdout and stderr: two pipes whose other ends only the
    bootstrap holds, copied to the container's own stdout and stderr, and the
    SIGCHLD wake-up that reaps every child (as PID 1, orphans are ours)."""

    def __init__(self):
        self.out_r, self.out_w = os.pipe()  # close-on-exec, as every fd here
        self.err_r, self.err_w = os.pipe()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.out_r, self.err_r, self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.dest = {self.out_r: 1, self.err_r: 2}
        self.buf = bytearray(b"\1" * (1 << 16))
        self.poller = select.poll()
        for fd in (self.out_r, self.err_r, self.wake_r):
            self.poller.register(fd, select.POLLIN)
        _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)
        _signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def copy(self, fd, limit):
        """Copies what the pipe `fd` holds now, at most `limit` bytes, through
        one buffer: no allocation, so this works with the memory full."""
        while limit > 0:
            try:
                n = os.readv(fd, [self.buf])
            except BlockingIOError:
                return
            if n == 0:
                return
            limit -= n
            b = memoryview(self.buf)[:n]
            try:
                while b:
                    b = b[os.write(self.dest[fd], b):]
            except OSError:  # nobody reads the container's stream any more
                pass

    def wait(self, pid):
        """Relays output until child `pid` has exited, reaping every child
        that ends meanwhile; returns its wait status."""
        status = None
        while status is None:
            for fd, _ in self.poller.poll():
                if fd != self.wake_r:
                    self.copy(fd, len(self.buf))
                    continue
                try:
                    while os.read(self.wake_r, 64):
                        pass
                except BlockingIOError:
                    pass
                while True:
                    try:
                        p, st = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if p == 0:
                        break
                    if p == pid:
                        status = st
        # It has exited: all it wrote is in the pipes. Copy that much, not
        # what processes it left behind keep writing.
        for fd in (self.out_r, self.err_r):
            self.copy(fd, fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))
        return status


def prefer_for_oom_kill(pid):
    """Sets the child's oom_score_adj to 1000: when memory runs out the
    child, not the bootstrap, is the one to go, so that the usage trailer is
    still written (a child may lower it again, down to 0: then the kernel
    picks by size). posix_spawn returns once the child's exec has replaced
    its memory, a moment before the exec makes it dumpable, and until then
    its /proc files are root's: retry for up to ~50 ms."""
    for _ in range(100):
        try:
            with open("/proc/%d/oom_score_adj" % pid, "w") as f:
                f.write("1000")
            return
        except PermissionError:
            time.sleep(0.0005)
        except OSError:  # it is gone already
            return


def spawn(relay, argv, env, stdin_null=False, stdout_to_stderr=False, fd3=None):
    """Runs argv (PATH-searched) in WORK, the bootstrap's working directory,
    with stdout and stderr into the relay (stdout into the stderr one if
    `stdout_to_stderr`), SIGPIPE and SIGXFSZ at their defaults, the OOM
    killer's preference, and `fd3` (if set) as its fd 3; returns its exit
    code, as exit_code() writes it."""
    out_w = relay.err_w if stdout_to_stderr else relay.out_w
    if ISOLATED[0]:
        pid = spawn_isolated(argv, env, [(out_w, 1), (relay.err_w, 2)]
                             + ([(fd3, 3)] if fd3 is not None else []), stdin_null)
        return exit_code(os.waitstatus_to_exitcode(relay.wait(pid)))
    actions = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, relay.err_w, 2)]
    if stdin_null:
        actions.append((os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0))
    if fd3 is not None:
        actions.append((os.POSIX_SPAWN_DUP2, fd3, 3))
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions,
                          setsigdef=(SIGPIPE, SIGXFSZ))
    prefer_for_oom_kill(pid)
    return exit_code(os.waitstatus_to_exitcode(relay.wait(pid)))


def spawn_isolated(argv, env, dups, stdin_null):
    """Starts argv in a fresh PID namespace (the bootstrap is in a user
    namespace of its own: see own_user_namespace) and returns the pid of the
    process to wait for: an intermediate process in the bootstrap's
    namespace that exits with the child's exit code (128+N for signal N).
    Inside, PID 1 is a small init forked from the intermediate (see
    namespace_init) and the child is PID 2, so that the child's signals to
    itself and its orphans behave as under runc: the bootstrap, the
    intermediate and every other process outside have no pid the child could
    signal or ptrace. When the child exits, the init exits and the kernel
    kills whatever is left in the namespace. `dups` are (fd, target) pairs.
    Raises OSError, as posix_spawnp would, if the program cannot be started.

    The child's oom_score_adj is left alone: under gVisor the memory limit
    is the sandbox's as a whole and the OOM killer of the host, not of the
    sandbox, acts on it."""
    err_r, err_w = os.pipe()  # close-on-exec: EOF means the exec happened
    pid = os.fork()
    if pid == 0:
        code = 127
        try:
            os.close(err_r)
            _signal.set_wakeup_fd(-1)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            if LIBC.unshare(CLONE_NEWPID) != 0:
                raise OSError(LIBC.errno(), "unshare(CLONE_NEWPID) failed")
            init = os.fork()
            if init == 0:
                namespace_init(argv, env, dups, stdin_null, err_w)
            os.close(err_w)
            while True:
                st = os.waitpid(init, os.WUNTRACED)[1]
                # Under gVisor a process may stop its namespace's init
                # (SIGSTOP is not kept from PID 1 there): resume it, or
                # the run would hang until its timeout.
                if not os.WIFSTOPPED(st):
                    break
                os.kill(init, _signal.SIGCONT)
            code = exit_code(os.waitstatus_to_exitcode(st))
        except BaseException as e:
            report_failure(err_w, e, None)
        os._exit(code)
    os.close(err_w)
    try:
        failure = read_to_end(err_r)
    finally:
        os.close(err_r)
    if failure:
        os.waitpid(pid, 0)
        raise start_failure(failure)
    return pid


def namespace_init(argv, env, dups, stdin_null, err_w):
    """PID 1 of a child's PID namespace (in spawn_isolated): forks the child,
    which execs argv as PID 2, keeps no descriptor, reaps every process that
    ends in the namespace (the child's orphans are its children) and exits
    with the child's exit code once the child has exited. It ignores every
    signal it can (gVisor gives a namespace's init no protection from them):
    SIGKILL and SIGSTOP still reach it, so the child can end its own
    namespace, as it can end itself, and spawn_isolated resumes a stopped
    init. It is a fork of the bootstrap and as such not dumpable: its memory
    is closed to the child."""
    code = 127
    try:
        child = os.fork()
        if child == 0:
            try:
                for fd, target in dups:
                    if fd == target:
                        os.set_inheritable(fd, True)
                    else:
                        os.dup2(fd, target)
                if stdin_null:
                    null = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(null, 0)
                    os.close(null)
                for sig in (SIGPIPE, SIGXFSZ, _signal.SIGINT):
                    _signal.signal(sig, _signal.SIG_DFL)
                os.execvpe(argv[0], argv, env)
            except BaseException as e:
                report_failure(err_w, e, argv[0])
            os._exit(127)
        # Nothing of the bootstrap's stays open in the child's namespace.
        os.closerange(0, os.sysconf("SC_OPEN_MAX"))
        for sig in _signal.valid_signals():
            if sig not in (SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD):
                try:
                    _signal.signal(sig, _signal.SIG_IGN)
                except (OSError, ValueError):  # one the interpreter reserves
                    pass
        while True:
            p, st = os.wait()
            if p == child:
                code = exit_code(os.waitstatus_to_exitcode(st))
                break
    except BaseException as e:
        report_failure(err_w, e, None)
    os._exit(code)


def report_failure(fd, e, name):
    """Writes why a child could not be started as "errno\\0message\\0name"
    (what spawn_isolated raises again as an OSError)."""
    num = getattr(e, "errno", None) or 0
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    try:
        os.write(fd, ("%d\0%s\0%s" % (num, msg, name or "")).encode("utf-8", "replace"))
    except OSError:
        pass


def start_failure(data):
    """The OSError that report_failure's `data` describes; for anything else
    (it was cut short, say) an OSError with the text as its message."""
    text = data.decode("utf-8", "replace")
    num, _, rest = text.partition("\0")
    msg, sep, name = rest.partition("\0")
    if not (num.isdigit() and msg and sep):
        return OSError(0, text)
    return OSError(int(num), msg, name or None)


def read_to_end(fd):
    parts = []
    while True:
        b = os.read(fd, 4096)
        if not b:
            return b"".join(parts)
        parts.append(b)


def quote(s):
    """s in double quotes, backslash escapes for anything unprintable."""
    return '"' + s.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


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


def run(hdr, relay):
    try:
        os.chdir(WORK)
        unpack(hdr["tar_len"])
    except (OSError, ValueError, EOFError) as e:
        say("cannot unpack the project into %s: %s" % (WORK, e))
        return SETUP_FAILED
    env = dict(os.environ)
    for kv in hdr["env"]:
        k, _, v = kv.partition("=")
        env[k] = v
    for cmd in hdr["pre_commands"]:
        try:
            rc = spawn(relay, ["sh", "-c", cmd], env, stdin_null=True)
        except OSError as e:
            say("cannot run pre-command %s: %s" % (quote(cmd), e))
            return SETUP_FAILED
        if rc != 0:
            say("pre-command %s failed with exit code %d" % (quote(cmd), rc))
            return rc
    deps = hdr.get("deps")
    if deps:
        # The run's dependency layer, built outside the sandbox and mounted
        # read-only (docs/sandbox.md, "Dependencies").
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = deps + (":" + old if old else "")
    argv = [sys.executable, hdr["entrypoint"]] + list(hdr["args"])
    wrapper = hdr.get("eval")
    try:
        if not wrapper:
            return spawn(relay, argv, env)
        # Eval: the wrapper runs the entrypoint and leaves its report in
        # a memory file only the program's process gets (as its fd 3).
        report = os.memfd_create("pyexec-eval")
        try:
            rc = spawn(relay, argv[:1] + ["-c", wrapper] + argv[1:], env, fd3=report)
            REPORT[0] = eval_report(os.pread(report, REPORT_MAX + 1, 0))
        finally:
            os.close(report)
        return rc
    except OSError as e:
        say("cannot start the program: %s" % e)
        return SETUP_FAILED


REPORT_MAX = 65536
REPORT = [b"{}"]  # the body of the end marker on stdout


def eval_report(data):
    """The Eval wrapper's report, checked and re-encoded: only the known
    fields, with their types; b"{}" for anything else (the program can write
    the file too)."""
    try:
        if len(data) > REPORT_MAX:
            raise ValueError("too long")
        obj = parse_json(data.decode("utf-8")) if data else {}
        if type(obj) is not dict:
            raise ValueError("not an object")
        from _json import encode_basestring_ascii as q
        if type(obj.get("error_type")) is str:  # a result only if nothing was raised
            obj.pop("result", None)
        out = []
        for k, t in (("result", str), ("error_type", str), ("error_line", int),
                     ("error_message", str)):
            v = obj.get(k)
            if type(v) is t:
                out.append(q(k) + ": " + (str(v) if t is int else q(v)))
        body = ("{" + ", ".join(out) + "}").encode()
        if len(body) > REPORT_MAX:
            raise ValueError("too long")
        return body
    except (ValueError, UnicodeDecodeError):
        return b"{}"


class Libc:
    """prctl and unshare through _ctypes (ctypes itself costs 2 ms more to
    import), with errno."""

    def __init__(self):
        import _ctypes

        class Int(_ctypes._SimpleCData):
            _type_ = "i"

        class ULong(_ctypes._SimpleCData):
            _type_ = "L"

        class Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        libc = _ctypes.dlopen(None)
        self._prctl = Func(_ctypes.dlsym(libc, "prctl"))
        self._unshare = Func(_ctypes.dlsym(libc, "unshare"))
        self._int, self._ulong = Int, ULong
        self.errno = _ctypes.get_errno

    def prctl(self, option):
        z = self._ulong(0)
        return self._prctl(self._int(option), z, z, z, z)

    def unshare(self, flags):
        return self._unshare(self._int(flags))


def make_undumpable():
    """prctl(PR_SET_DUMPABLE, 0). Raises OSError if it did not take."""
    LIBC.prctl(PR_SET_DUMPABLE)
    if LIBC.prctl(PR_GET_DUMPABLE) != 0:
        raise OSError("prctl(PR_SET_DUMPABLE, 0) did not take")


def own_user_namespace():
    """Moves the bootstrap into a new user namespace with its own uid and gid
    mapped to themselves, so that it may create a PID namespace per child
    (spawn_isolated). Returns False when the runtime refuses (runc and crun:
    pyexec's seccomp profile, like Docker's, allows no namespace to a process
    without CAP_SYS_ADMIN; there, a non-dumpable PID 1 is protected by the
    kernel); raises OSError when the namespace was made but not mapped. Runs
    while the bootstrap is still dumpable: /proc/self/uid_map of a
    non-dumpable process belongs to root."""
    uid, gid = os.getuid(), os.getgid()
    if LIBC.unshare(CLONE_NEWUSER) != 0:
        e = LIBC.errno()
        if e in (EPERM, EINVAL, ENOSYS):
            return False
        raise OSError(e, "unshare(CLONE_NEWUSER) failed")
    for name, text in (("uid_map", "%d %d 1" % (uid, uid)), ("setgroups", "deny"),
                       ("gid_map", "%d %d 1" % (gid, gid))):
        try:
            fd = os.open("/proc/self/" + name, os.O_WRONLY)
        except FileNotFoundError:  # setgroups: gVisor has none
            continue
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    return True


def end_every_other_process():
    """Kills every process in the container but the bootstrap (PID 1) and
    reaps them all (as PID 1, every orphan is its child), killing again
    before each wait until none is left."""
    while True:
        # Again before each wait: a process forked while the last kill went
        # through the process list can have escaped it, and the wait would
        # block on it.
        try:
            os.kill(-1, SIGKILL)
        except ProcessLookupError:  # none left
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


LIBC = None
ISOLATED = [False]  # children start in PID namespaces of their own


def main():
    global LIBC
    code = SETUP_FAILED
    nonce = None
    reserve = None
    report_fd = None
    if sys.argv[1:2] == ["ns"]:
        report_fd = int(sys.argv[2])
        os.set_inheritable(report_fd, False)
    try:
        LIBC = Libc()
        # In the namespace mode bubblewrap made the namespaces already.
        if report_fd is None:
            ISOLATED[0] = own_user_namespace()
        # Before anything secret arrives (see the top of the file).
        make_undumpable()
        # As PID 1 no signal from inside the container reaches a default
        # disposition; Python's own SIGINT handler would let one in.
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        # Memory for the last words: when a program fills the memory with
        # what no kill frees (a full /work tmpfs), the bootstrap still needs
        # a little to read the usage and write the trailer. This and the
        # relay are made before the header arrives: a pooled container or a
        # namespace host's waiting sandbox has them ready for its job.
        import mmap
        reserve = mmap.mmap(-1, RESERVE_BYTES, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                            | mmap.MAP_POPULATE)
        relay = Relay()
        line = read_exact(16)
        if line[:5] != b"PYX1 " or line[15:16] != b"\n":
            raise ValueError("bad protocol header")
        hdr = parse_json(read_exact(int(line[5:15])).decode("utf-8"))
        nonce = hdr["nonce"] if report_fd is None else None
        code = run(hdr, relay)
    except Exception as e:  # the protocol failed: report it, keep the trailer
        say("bootstrap failed: %s: %s" % (type(e).__name__, e))
    if reserve is not None:
        reserve.close()  # munmap: its pages go back to the memory cgroup
    if report_fd is not None:
        from _json import encode_basestring_ascii as q
        try:
            os.write(report_fd, ('{"exit_code": %d, "report": %s}'
                                 % (code, q(REPORT[0].decode()))).encode())
        except OSError:
            pass
    if nonce:
        end_every_other_process()
        m = ("\x1ePYX" + nonce + "\x1e").encode()
        u = usage()
        u["exit_code"] = code
        try:  # the end of stdout: the program is gone, all its output is ahead
            os.write(1, m + REPORT[0] + m + b"\n")
        except OSError:
            pass
        body = ", ".join('"%s": %d' % kv for kv in u.items())  # names and ints only
        os.write(2, m + ("{" + body + "}").encode() + m + b"\n")
    # As PID 1, this exit ends every process left in the container (in the
    # namespace mode: in the execution's pid namespace).
    os._exit(code)


main()
