"""The service manager's protocol (systemd Type=notify, sd_notify(3)) as
pyexecd speaks it: READY=1 once it serves, WATCHDOG=1 within the interval
WATCHDOG_USEC asks for, RELOADING=1 and READY=1 around a SIGHUP, STOPPING=1
on SIGTERM; all on a datagram socket the test owns (fake back-end)."""

import os
import pathlib
import signal
import socket
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402


def fake_binary():
    return os.environ.get("FAKE_PYEXECD_BIN") or str(
        REPO / "bazel-bin" / "tests" / "server" / "rpc" / "fake_pyexecd")


class Manager:
    """A datagram socket standing in for the service manager's."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)
        self.path = str(path)

    def next(self):
        """The next message as a dict of its KEY=value lines."""
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def until(self, key):
        """Messages up to and including the first with `key`; the last one."""
        while True:
            msg = self.next()
            if key in msg:
                return msg


def test_ready_watchdog_reload_and_stop_arrive_on_the_notify_socket(tmp_path):
    mgr = Manager(tmp_path / "notify")
    # 200 ms: the server pings at least every 100 ms.
    env = {"NOTIFY_SOCKET": mgr.path, "WATCHDOG_USEC": "200000"}
    with pyexecd.Server(env=env, binary=fake_binary()) as srv:
        ready = mgr.next()  # the first message
        assert ready.get("READY") == "1", ready
        assert ready.get("STATUS") == f"serving on {srv.address}", ready
        for _ in range(3):
            assert mgr.next() == {"WATCHDOG": "1"}
        srv.proc.send_signal(signal.SIGHUP)
        assert mgr.until("RELOADING") == {"RELOADING": "1"}
        assert mgr.until("READY")["READY"] == "1"
        srv.proc.send_signal(signal.SIGTERM)
        assert mgr.until("STOPPING") == {"STOPPING": "1"}
        assert srv.stop() == 0


def test_an_abstract_socket_and_no_watchdog_for_another_pid(tmp_path):
    name = f"pyexec-notify-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(30)
    # WATCHDOG_PID names another process: the watchdog is not this server's.
    env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    with pyexecd.Server(env=env, binary=fake_binary()) as srv:
        assert b"READY=1" in sock.recv(4096)
        srv.proc.send_signal(signal.SIGTERM)
        # Not one WATCHDOG=1 before STOPPING, though 1 ms was asked for.
        assert sock.recv(4096) == b"STOPPING=1"
        assert srv.stop() == 0


def test_without_notify_socket_nothing_is_sent_and_nothing_is_logged():
    env = {"NOTIFY_SOCKET": None, "WATCHDOG_USEC": None}
    with pyexecd.Server(env=env, binary=fake_binary()) as srv:
        assert srv.stop() == 0
    assert "notify" not in srv.stderr_text(), srv.stderr_text()
