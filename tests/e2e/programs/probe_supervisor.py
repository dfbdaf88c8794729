"""A sandboxed program that tries one way into the bootstrap, the process
that holds the run's nonce and writes its verdict (tests/e2e/test_verdict.py),
and prints one line "<what>: <result>", then "exiting 3" and exits 3.

The bootstrap is the container's PID 1: /proc/1 here. Whether the program
can name it as a pid is another matter (under gVisor the program is PID 2 of
a namespace of its own), so signals, ptrace and process_vm_readv go to every
pid from 1 to 64 that is not the program's own, and the result is the set of
error names they gave ("ok" for a success). /proc reads report "EACCES" and
the like, or for a file that could be read whether it held anything that
looks like a nonce (32 hex digits): "read, no nonce" or "read, NONCE".
argv[1] is the attempt: mem, environ, cmdline, fd, ptrace, vm-read, kill."""
import ctypes
import errno
import os
import re
import signal
import sys

NONCE = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
libc = ctypes.CDLL(None, use_errno=True)
what = sys.argv[1]
names = [p for p in range(1, 65) if p != os.getpid()]
# Under gVisor the program is PID 2 of a namespace of its own (its pids are
# not /proc's) and PID 1 there is its own init, which SIGKILL and SIGSTOP
# reach: killing it ends the program, as killing itself would. The signals
# go to every other pid.
own_namespace = int(os.readlink("/proc/self")) != os.getpid()
signal_names = [p for p in names if not (own_namespace and p == 1)]


def err(e):
    return errno.errorcode.get(e, str(e))


def read_proc(path):
    try:
        with open(path, "rb", 0) as f:
            b = f.read(1 << 20)
    except OSError as e:
        return err(e.errno)
    return "read, NONCE" if NONCE.search(b) else "read, no nonce"


def outcome(results):
    return ",".join(sorted(set(results)))


if what in ("mem", "environ", "cmdline"):
    print(f"{what}: {read_proc('/proc/1/' + what)}")
elif what == "fd":
    # Every descriptor of the bootstrap, opened for reading, read without
    # waiting: what it held then.
    try:
        fds = os.listdir("/proc/1/fd")
        results = []
        for fd in fds:
            try:
                r = os.open(f"/proc/1/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
            except OSError as e:
                results.append(err(e.errno))
                continue
            try:
                b = os.read(r, 1 << 20)
                results.append("read, NONCE" if NONCE.search(b) else "read, no nonce")
            except OSError as e:
                results.append(err(e.errno))
            os.close(r)
        print(f"fd: listed; {outcome(results)}")
    except OSError as e:
        print(f"fd: {err(e.errno)}")
elif what == "ptrace":
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    results = []
    for pid in names:
        for req in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
            if libc.ptrace(req, pid, None, None) == 0:
                results.append("ok")
                libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
            else:
                results.append(err(ctypes.get_errno()))
    print(f"ptrace: {outcome(results)}")
elif what == "vm-read":
    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(4096)
    local = Iovec(ctypes.addressof(buf), 4096)
    libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong,
                                      ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    results = []
    for pid in names:
        remote = Iovec(0x400000, 4096)  # the interpreter's first page
        n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        results.append("ok" if n >= 0 else err(ctypes.get_errno()))
    print(f"vm-read: {outcome(results)}")
elif what == "kill":
    results = []
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in signal_names:
            try:
                os.kill(pid, sig)
                results.append("ok")
            except OSError as e:
                results.append(err(e.errno))
    print(f"kill: {outcome(results)}")
print("exiting 3", flush=True)
sys.exit(3)
