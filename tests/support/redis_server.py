"""Test support: a private redis-server for the Redis-store tests.

Started on a unix socket in a fresh temporary directory (--port 0, the
append-only file on), never the system service; readiness is awaited on the
server's systemd notification socket (READY=1), not by polling; a server
that exits first (e.g. its TCP port was taken) raises ExitedEarly at once.

    with redis_server.RedisServer() as redis:
        url = redis.url          # redis+unix:///tmp/pyexec-redis-.../redis.sock
"""

import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class ExitedEarly(RuntimeError):
    """The server exited before it reported READY=1; `log` is its log."""

    def __init__(self, message, log):
        super().__init__(message)
        self.log = log


def start_notified(argv, notify_path, log_path, timeout=30):
    """Starts `argv` (a redis-server, `--supervised systemd` or its config's
    equivalent) with NOTIFY_SOCKET at `notify_path` and returns the Popen once
    it reported READY=1. Raises ExitedEarly if it exits first (the log at
    `log_path` says why), RuntimeError if neither happens in `timeout` s."""
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    proc = None
    try:
        proc = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=notify_path),
                                stdin=subprocess.DEVNULL)
        exited = os.pidfd_open(proc.pid)
        try:
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([notify, exited], [], [], max(left, 0))
                if notify in ready:
                    if b"READY=1" in notify.recv(4096):
                        return proc
                    continue
                if exited in ready:
                    code = proc.wait()
                    try:
                        with open(log_path, errors="replace") as f:
                            log = f.read()
                    except OSError:
                        log = ""
                    raise ExitedEarly(f"{argv[0]} exited with {code} before READY=1 "
                                      f"(see {log_path})", log)
                if left <= 0:
                    proc.kill()
                    proc.wait()
                    raise RuntimeError(f"{argv[0]} did not report READY=1 in {timeout} s "
                                       f"(see {log_path})")
        finally:
            os.close(exited)
    finally:
        notify.close()


class RedisServer:
    def __init__(self, *extra):
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="pyexec-redis-", dir="/tmp")
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.url = "redis+unix://" + self.socket_path
        self.proc = None

    def start(self, timeout=30):
        log = os.path.join(self.dir, "redis.log")
        self.proc = start_notified(
            ["redis-server", "--port", "0", "--unixsocket", self.socket_path,
             "--unixsocketperm", "700", "--dir", self.dir, "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--supervised", "systemd",
             "--loglevel", "warning", "--logfile", log, *self.extra],
            os.path.join(self.dir, "notify.sock"), log, timeout)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
