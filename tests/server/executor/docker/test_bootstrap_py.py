"""Pure functions of the sandbox bootstrap (server/executor/docker/
bootstrap.py), loaded here without its last line (the call to main(), which
would take over this process as the sandbox's PID 1). What the bootstrap does
in a sandbox is tested end to end in tests/e2e."""

import errno
import pathlib

SOURCE = (pathlib.Path(__file__).resolve().parents[4] / "server" / "executor" / "docker" /
          "bootstrap.py").read_text()
assert SOURCE.endswith("\nmain()\n")
BOOTSTRAP = {"__name__": "bootstrap"}
exec(compile(SOURCE[:-len("main()\n")], "bootstrap.py", "exec"), BOOTSTRAP)


def test_a_start_failure_report_is_the_error_it_describes():
    e = BOOTSTRAP["start_failure"](b"2\0No such file or directory\0python3")
    assert (e.errno, e.strerror, e.filename) == (errno.ENOENT, "No such file or directory",
                                                 "python3")
    e = BOOTSTRAP["start_failure"](b"0\0bad\0")
    assert (e.errno, e.strerror, e.filename) == (0, "bad", None)


def test_a_malformed_start_failure_report_is_still_an_oserror():
    # What spawn() turns into "cannot start the program", not a ValueError
    # that fails the whole protocol.
    for data in (b"", b"2", b"2\0cut short", b"x\0message\0name", b"\xff\xfe", b"\0\0"):
        e = BOOTSTRAP["start_failure"](data)
        assert type(e) is OSError, data
        assert str(e), data
