"""A sandboxed program that tries to learn the bootstrap's nonce and forge
the run's verdict (tests/e2e/test_verdict.py); then it burns 0.5 s of CPU,
holds 48 MiB, sleeps 1 s and exits 3. It prints one line per attempt on
every other process it can see ("<what> <pid>: <errno name or 'ok'>"), how
many nonces it found, and "exiting 3"."""
import ctypes
import errno
import os
import re
import signal
import sys
import time

FAKE = "0123456789abcdef0123456789abcdef"
# Any 32 lower-case hex digits could be the nonce: each one found is tried.
NONCE = re.compile(rb"(?<![0-9a-f])([0-9a-f]{32})(?![0-9a-f])")
found = set()
# /proc may be another PID namespace's than the program's own (gVisor: the
# program is PID 2 of a namespace of its own, /proc is the container's):
# its own entry there is /proc/self. Signals and ptrace name a pid in the
# program's namespace, so they go to the pids it sees that it can name.
me = int(os.readlink("/proc/self"))
others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me)
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206


def say(what, pid, e=None):
    print(f"{what} {pid}: {errno.errorcode.get(e, e) if e else 'ok'}", flush=True)


def scan(b):
    for m in NONCE.finditer(b):
        if m.group(1).decode() != FAKE and len(found) < 256:
            found.add(m.group(1).decode())


def forge(nonce):
    m = ("\x1ePYX" + nonce + "\x1e").encode()
    os.write(1, m + b"{}" + m + b"\n")
    os.write(2, m + b'{"peak_memory_bytes": 1, "cpu_time_ms": 1, "oom_kills": 0, '
             b'"exit_code": 0}' + m + b"\n")


def steal(pid):
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for line in maps:
                addr, perms = line.split()[:2]
                lo, hi = (int(x, 16) for x in addr.split("-"))
                if "r" in perms and hi - lo < (256 << 20):
                    try:
                        mem.seek(lo)
                        scan(mem.read(hi - lo))
                    except (OSError, ValueError, OverflowError):
                        pass
        say("mem", pid)
    except OSError as e:
        say("mem", pid, e.errno)
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                scan(f.read())
            say(name, pid)
        except OSError as e:
            say(name, pid, e.errno)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        say("fd-list", pid)
    except OSError as e:
        fds = []
        say("fd-list", pid, e.errno)
    for fd in fds:
        try:
            r = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
            try:
                scan(os.read(r, 1 << 20))
            except OSError:
                pass
            os.close(r)
            say(f"fd-open-{fd}", pid)
        except OSError as e:
            say(f"fd-open-{fd}", pid, e.errno)
    for name, req in (("attach", PTRACE_ATTACH), ("seize", PTRACE_SEIZE)):
        if pid == os.getpid():
            continue
        if libc.ptrace(req, pid, None, None) == 0:
            say(name, pid)
            if req == PTRACE_ATTACH:
                os.waitpid(pid, 0x40000000)  # __WALL
            libc.ptrace(PTRACE_DETACH, pid, None, None)
        else:
            say(name, pid, ctypes.get_errno())


for pid in others:
    steal(pid)
print("found", len(found), flush=True)
for n in sorted(found) + [FAKE, "", "x" * 32]:
    forge(n)

# A process left behind that reads the program's own stderr pipe back
# (through /proc/self/fd) for the last words, and forges with any nonce in
# them. (Only stderr: the report below goes to stdout.)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fds = [os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK) for fd in (2,)]
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for r in fds:
                try:
                    b = os.read(r, 1 << 16)
                except BlockingIOError:
                    continue
                for m in NONCE.finditer(b):
                    if m.group(1).decode() != FAKE:
                        forge(m.group(1).decode())
    os._exit(0)
os.wait()

# The container's own stdout and stderr, where the bootstrap writes its
# last words, reopened through its /proc/1/fd (gVisor lets a process of the
# same user open them): every forged end marker and trailer written there
# too.
for fd in (1, 2):
    try:
        w = os.open(f"/proc/1/fd/{fd}", os.O_WRONLY)
        for n in sorted(found) + [FAKE, "", "x" * 32]:
            m = ("\x1ePYX" + n + "\x1e").encode()
            os.write(w, m + (b"{}" if fd == 1 else b'{"exit_code": 0}') + m + b"\n")
        os.close(w)
        say(f"fd-write-{fd}", 1)
    except OSError as e:
        say(f"fd-write-{fd}", 1, e.errno)

# Under gVisor the program is PID 2 of a namespace of its own and its pid 1
# is its own init, which SIGKILL reaches: killing it ends the program, as
# killing itself would. Every other pid it can name gets the signals.
own_namespace = me != os.getpid()
for pid in others:
    if pid == os.getpid() or (own_namespace and pid == 1):
        continue
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            say(f"kill-{sig.name}", pid)
        except OSError as e:
            say(f"kill-{sig.name}", pid, e.errno)

ballast = bytearray(48 << 20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
while time.process_time() < 0.5:
    pass
time.sleep(1)
print("exiting 3", flush=True)
sys.exit(3)
