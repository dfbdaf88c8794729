# The namespace mode's host supervisor (--isolation namespace): PID 1 of a
# pooled host container, run as
# `python3 -I -S -c <this> <bootstrap source> <--host-reuse>`.
# It runs one execution at a time, each in fresh namespaces made by
# bubblewrap, and writes each execution's last words itself.
#
# Protocol on standard input, one job after another (docs/sandbox.md):
#   "PYXH " + 10 decimal digits (header length N) + "\n"
#   N bytes of JSON header: nonce, filter_len, job_len, work_mb, tmp_mb
#   filter_len bytes: the program's seccomp filter (BPF, built by the server)
#   job_len bytes: the execution's own stream, exactly what the container
#       mode's bootstrap reads (preamble, project, the user's stdin)
# or, once, before the first job, a header {"prime": true, filter_len,
# work_mb, tmp_mb} and the filter: start the first job's sandbox now.
# End of standard input ends the host.
#
# For each job it starts bubblewrap with new user (uid 65534 mapped), pid,
# mount, network, IPC, UTS and cgroup namespaces, a new session, fresh
# size-limited tmpfs /work, /tmp and /dev/shm, the image read-only, /proc of
# the new pid namespace, the filter (--seccomp) and, as the namespace's PID 1
# (--as-pid-1), the bootstrap (bootstrap.py, "ns" mode). The job's stream
# goes into the bootstrap's stdin through a pipe that closes after job_len
# bytes (the program's EOF); what the bootstrap does not read is discarded,
# so the next job's header is where it must be. The bootstrap's output goes
# straight to the container's stdout and stderr; its result (exit code and
# the Eval report) comes back on a pipe of its own.
#
# Each job's sandbox is started ahead of it: when the server primes a new
# host, and right after a job's last words, the host starts bubblewrap and
# the bootstrap for the next job with the same parameters, and the
# bootstrap waits on its empty stdin pipe. A
# job that finds it (and the same parameters) feeds it; otherwise a new one
# is started. Each sandbox, with its namespaces and interpreter, serves one
# job at most; this only moves its start-up (about half of a hello world's
# time on the host) out of the job's way.
#
# When the bootstrap has exited, its pid namespace is gone with every
# process in it (the kernel kills them all and its tmpfs mounts go with the
# last of them), and all their output is ahead on the container's streams.
# Then the host writes the last words, the end marker (stdout) and the usage
# trailer (stderr), framed by the job's nonce as bootstrap.py does in the
# container mode, with the execution's own usage: CPU as the host
# container's cgroup counter's delta, peak memory as the cgroup's
# high-water mark when the execution raised it, else the largest resident
# set among its processes (wait4), OOM kills as the cgroup's count's delta. The nonce is never in the namespaces: the program cannot
# see this process (another pid namespace), nor ptrace it (its filter), nor
# signal it.
import _signal
import os
import select
import sys

try:
    from _json import make_scanner
except ImportError:
    make_scanner = None

SETUP_FAILED = 1
REPORT_FD, FILTER_FD = 3, 4  # in bubblewrap and the bootstrap
REPORT_MAX = 1 << 20
PR_SET_DUMPABLE = 4
# What Docker masks in /proc (a fresh procfs in the execution's pid
# namespace shows them again): /dev/null over files, an empty tmpfs over
# directories, where the kernel has them.
MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/config.gz"]
MASKED_DIRS = ["/proc/acpi", "/proc/asound", "/proc/scsi"]


def read_exact(n):
    parts = []
    while n > 0:
        try:
            b = os.read(0, min(n, 1 << 16))
        except BlockingIOError:
            select.select([0], [], [])
            continue
        if not b:
            raise EOFError("standard input ended early")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


class JsonContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None


def parse_json(text):
    if make_scanner is None:
        import json
        return json.loads(text)
    obj, end = make_scanner(JsonContext())(text, 0)
    if text[end:].strip():
        raise ValueError("extra data after the JSON")
    return obj


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cgroup_peak():
    """The host container's cgroup's memory high-water mark (v1 or v2)."""
    for path in ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak"):
        v = read_text(path).strip()
        if v.isdigit():
            return int(v)
    return 0


def cgroup_counters():
    """(CPU ns, OOM kills) of the host container's cgroup (v1 or v2)."""
    cpu = read_text("/sys/fs/cgroup/cpuacct/cpuacct.usage").strip()
    if cpu.isdigit():
        cpu = int(cpu)
    else:
        cpu = 0
        for line in read_text("/sys/fs/cgroup/cpu.stat").splitlines():
            k, _, n = line.partition(" ")
            if k == "usage_usec" and n.strip().isdigit():
                cpu = int(n) * 1000
    oom = 0
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        for line in read_text(path).splitlines():
            k, _, n = line.partition(" ")
            if k == "oom_kill" and n.strip().isdigit():
                oom = int(n)
    return cpu, oom


def bwrap_argv(work_mb, tmp_mb, bootstrap):
    mib = 1 << 20
    argv = ["bwrap", "--unshare-user", "--uid", "65534", "--gid", "65534", "--unshare-pid",
            "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
            "--new-session", "--die-with-parent", "--as-pid-1",
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        try:
            argv += ["--symlink", os.readlink("/" + name), "/" + name]
        except OSError:
            if os.path.isdir("/" + name):
                argv += ["--ro-bind", "/" + name, "/" + name]
    if os.path.isdir("/deps"):
        argv += ["--ro-bind", "/deps", "/deps"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    for path in MASKED_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    for path in MASKED_DIRS:
        if os.path.isdir(path):
            argv += ["--tmpfs", path, "--remount-ro", path]
    argv += ["--perms", "1777", "--size", str(work_mb * mib), "--tmpfs", "/work",
             "--perms", "1777", "--size", str(tmp_mb * mib), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(tmp_mb * mib), "--tmpfs", "/dev/shm",
             "--remount-ro", "/", "--chdir", "/work", "--seccomp", str(FILTER_FD),
             "--", sys.executable, "-I", "-S", "-c", bootstrap, "ns", str(REPORT_FD)]
    return argv


class Sandbox:
    """One execution's bubblewrap and bootstrap, started for the sandbox
    parameters `key` (work_mb, tmp_mb, the filter's bytes), waiting on its
    stdin pipe for its job. Each is used for one job at most."""

    def __init__(self, key, bootstrap):
        self.key = key
        filt = os.memfd_create("pyexec-filter")
        try:
            data = key[2]
            while data:
                data = data[os.write(filt, data):]
            os.lseek(filt, 0, os.SEEK_SET)
            in_r, self.in_w = os.pipe()
            self.rep_r, rep_w = os.pipe()
        except OSError:
            os.close(filt)
            raise
        try:
            actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, rep_w, REPORT_FD),
                       (os.POSIX_SPAWN_DUP2, filt, FILTER_FD)]
            self.pid = os.posix_spawnp("bwrap", bwrap_argv(key[0], key[1], bootstrap),
                                       os.environ, file_actions=actions)
        except OSError:
            os.close(self.in_w)
            os.close(self.rep_r)
            raise
        finally:
            os.close(in_r)
            os.close(rep_w)
            os.close(filt)
        os.set_blocking(self.in_w, False)
        os.set_blocking(self.rep_r, False)

    def alive(self):
        """Whether it still waits for its job (else it has exited, and is
        reaped now)."""
        if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            return True
        self.pid = None
        return False

    def discard(self):
        """Ends it unused: killing bubblewrap kills the sandbox
        (--die-with-parent); it is reaped here."""
        os.close(self.in_w)
        os.close(self.rep_r)
        if self.pid is not None:
            os.kill(self.pid, _signal.SIGKILL)
            os.waitpid(self.pid, 0)


def read_key(hdr):
    """The sandbox parameters of a job or priming header `hdr`: (work_mb,
    tmp_mb, the filter's bytes, read from stdin where the header says)."""
    return (int(hdr["work_mb"]), int(hdr["tmp_mb"]), read_exact(int(hdr["filter_len"])))


def sandbox_for(spare, key, bootstrap):
    """The sandbox for a job with parameters `key`: `spare`, started ahead
    of the job, when it was started for the same parameters and still
    waits; else a new one (`spare` is discarded)."""
    if spare is not None:
        if spare.key == key and spare.alive():
            return spare
        spare.discard()
    return Sandbox(key, bootstrap)


def run_job(hdr, box, wake_r):
    """Runs one job in sandbox `box`; returns (exit code, the bootstrap's
    report bytes or None, rusage of the execution's processes)."""
    job_left = int(hdr["job_len"])
    pid, in_w, rep_r = box.pid, box.in_w, box.rep_r
    pending = b""
    report = bytearray()
    status = rusage = None
    poller = select.poll()
    while status is None or job_left > 0 or rep_r is not None:
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        if rep_r is not None:
            poller.register(rep_r, select.POLLIN)
        if pending and in_w is not None:
            poller.register(in_w, select.POLLOUT)
        elif job_left > 0:
            poller.register(0, select.POLLIN)
        for fd, ev in poller.poll():
            if fd == 0:
                try:
                    pending = os.read(0, min(job_left, 1 << 16))
                except BlockingIOError:
                    continue
                if not pending:
                    raise EOFError("standard input ended inside a job")
                job_left -= len(pending)
                if in_w is None:
                    pending = b""  # the execution is over: discard the rest
            elif fd == in_w:
                try:
                    pending = pending[os.write(in_w, pending):]
                except BlockingIOError:
                    pass
                except OSError:  # the bootstrap closed its stdin or ended
                    os.close(in_w)
                    in_w, pending = None, b""
            elif fd == rep_r:
                try:
                    b = os.read(rep_r, 1 << 16)
                except BlockingIOError:
                    continue
                if b and len(report) < REPORT_MAX:
                    report += b
                elif not b:
                    os.close(rep_r)
                    rep_r = None
            elif fd == wake_r:
                try:
                    while os.read(wake_r, 64):
                        pass
                except BlockingIOError:
                    pass
                if status is None:
                    p, st, ru = os.wait4(pid, os.WNOHANG)
                    if p == pid:
                        status, rusage = st, ru
                        if in_w is not None:
                            os.close(in_w)
                            in_w, pending = None, b""
        if in_w is not None and job_left == 0 and not pending:
            os.close(in_w)  # the program's end of stdin
            in_w = None
    return os.waitstatus_to_exitcode(status), bytes(report), rusage


def main():
    bootstrap = sys.argv[1]
    # The executions this host runs at most (--host-reuse), if given.
    reuse = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    jobs = 0
    code = 0
    import _ctypes

    class Int(_ctypes._SimpleCData):
        _type_ = "i"

    class ULong(_ctypes._SimpleCData):
        _type_ = "L"

    class Func(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Int

    z = ULong(0)
    Func(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"))(Int(PR_SET_DUMPABLE), z, z, z, z)
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)
    _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    os.set_blocking(0, False)
    spare = None  # the next job's sandbox, started while the host waits
    while True:
        try:
            line = read_exact(16)
        except EOFError:
            break  # the server closed the host
        if line[:5] != b"PYXH " or line[15:16] != b"\n":
            os.write(2, b"pyexec: host: bad protocol header\n")
            code = SETUP_FAILED
            break
        hdr = parse_json(read_exact(int(line[5:15])).decode("utf-8"))
        if hdr.get("prime") is True:
            # A new host: the sandbox for its first job, started before
            # that job exists. No answer: the server waits for nothing.
            key = read_key(hdr)
            if spare is not None:
                spare.discard()
            try:
                spare = Sandbox(key, bootstrap)
            except OSError:
                spare = None  # the job starts its own, and reports why not
            continue
        nonce = hdr["nonce"]
        cpu0, oom0 = cgroup_counters()
        peak0 = cgroup_peak()
        clean = 0
        key = None
        try:
            key = read_key(hdr)
            box, spare = sandbox_for(spare, key, bootstrap), None
            rc, report, ru = run_job(hdr, box, wake_r)
            word = parse_json(report.decode("utf-8")) if report else None
            if type(word) is dict and type(word.get("exit_code")) is int:
                rc = word["exit_code"]
                clean = 1
            body = word.get("report") if type(word) is dict else None
            out = body.encode() if type(body) is str else b"{}"
        except (OSError, ValueError, EOFError) as e:
            os.write(2, ("pyexec: host: %s: %s\n" % (type(e).__name__, e)).encode())
            rc, out, ru = SETUP_FAILED, b"{}", None
            code = SETUP_FAILED
        cpu1, oom1 = cgroup_counters()
        u = {"cpu_time_ms": (cpu1 - cpu0) // 1000000, "oom_kills": oom1 - oom0,
             "host_cpu_ms": cpu1 // 1000000, "exit_code": rc, "clean": clean}
        # Peak memory: the cgroup's high-water mark when this execution
        # raised it (it then counts tmpfs pages and every process, as in the
        # container mode); else the largest resident set among its processes.
        peak1 = cgroup_peak()
        peak = peak1 if peak1 > peak0 else 0
        if ru is not None:
            peak = max(peak, ru.ru_maxrss * 1024)
        if peak:
            u["peak_memory_bytes"] = peak
        m = ("\x1ePYX" + nonce + "\x1e").encode()
        os.write(1, m + out + m + b"\n")
        os.write(2, m + ("{" + ", ".join('"%s": %d' % kv for kv in u.items()) + "}").encode()
                 + m + b"\n")
        if code:
            break
        jobs += 1
        # Start the next job's sandbox now, with this job's parameters (a
        # host keeps its /work size; the rest is the server's), so that its
        # bubblewrap and bootstrap start-up is done when that job comes.
        # Fresh namespaces and a fresh bootstrap for each job all the same:
        # this one has run nothing yet. None when no next job will come: the
        # server retires a host after an unclean end or an OOM kill, and
        # after its --host-reuse executions. If it cannot start, the next
        # job tries again and reports why.
        if clean and u["oom_kills"] == 0 and (reuse == 0 or jobs < reuse):
            try:
                spare = Sandbox(key, bootstrap)
            except OSError:
                spare = None
    os._exit(code)


main()
