"""What the sandbox leaves of the host kernel's surface (docs/security.md,
"System calls" and "Masked paths"): io_uring is refused by the seccomp
profile pyexec ships, and the files that describe the host's kernel are
masked. Real server, real engine; one execution probes everything and
prints one line per probe.
"""

import pytest

import pyexecd
from conftest import runtime_differs

PROBE = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = ctypes.create_string_buffer(120)  # struct io_uring_params
for name, nr, args in (("io_uring_setup", 425, (8, params)),
                       ("io_uring_enter", 426, (0, 1, 0, 0, None, 0)),
                       ("io_uring_register", 427, (0, 0, None, 0))):
    r = libc.syscall(nr, *args)
    print(name, r if r >= 0 else errno.errorcode[ctypes.get_errno()])
print("getpid", "ok" if libc.syscall(39) == os.getpid() else "broken")
for path in ("/proc/config.gz", "/sys/kernel/vmcoreinfo", "/sys/kernel/btf/vmlinux",
             "/sys/kernel/notes", "/proc/kcore", "/proc/keys", "/proc/timer_list",
             "/sys/firmware/dmi/tables/DMI"):
    try:
        with open(path, "rb") as f:
            print(path, len(f.read(4096)), "bytes")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
print("uptime", "ok" if open("/proc/uptime").read() else "empty")
"""


@pytest.fixture(scope="module")
def probe(server, pb):
    stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(server.channel())
    req = pb.ExecuteRequest(metadata=pb.Metadata())
    req.files.extend(pyexecd.make_files({"main.py": PROBE}))
    res = stub.Execute(req, timeout=120)
    assert pyexecd.status_name(res) == "EXECUTION_STATUS_COMPLETED", res
    assert res.exit_code == 0, res.stderr
    return dict(line.split(" ", 1) for line in res.stdout.decode().splitlines())


@runtime_differs("runsc", "gVisor's own kernel serves io_uring (the host's is never reached), and "
                 "runsc does not load pyexec's seccomp profile")
@pytest.mark.parametrize("call", ["io_uring_setup", "io_uring_enter", "io_uring_register"])
def test_io_uring_is_refused(probe, call):
    assert probe[call] in ("ENOSYS", "EPERM"), probe


def test_ordinary_system_calls_still_work(probe):
    assert probe["getpid"] == "ok"
    assert probe["uptime"] == "ok"


@pytest.mark.parametrize("path", ["/proc/config.gz", "/sys/kernel/vmcoreinfo",
                                  "/sys/kernel/btf/vmlinux", "/sys/kernel/notes",
                                  # Docker's own masks, kept
                                  "/proc/kcore", "/proc/keys", "/proc/timer_list",
                                  "/sys/firmware/dmi/tables/DMI"])
def test_host_kernel_files_are_unreadable(probe, path):
    # Masked: a file reads as /dev/null (0 bytes), a directory is an empty
    # read-only tmpfs (ENOENT below it); either way nothing of the host.
    assert probe[path] in ("0 bytes", "ENOENT", "EACCES", "EPERM"), (path, probe[path])
