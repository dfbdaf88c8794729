"""Test support: a private redis-server for the Redis-store tests.

Started on a unix socket in a fresh temporary directory (--port 0, the
append-only file on), never the system service; readiness is awaited on the
server's systemd notification socket (READY=1), not by polling.

    with redis_server.RedisServer() as redis:
        url = redis.url          # redis+unix:///tmp/pyexec-redis-.../redis.sock
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile


class RedisServer:
    def __init__(self, *extra):
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="pyexec-redis-", dir="/tmp")
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.url = "redis+unix://" + self.socket_path
        self.proc = None

    def start(self, timeout=30):
        notify_path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(timeout)
        try:
            env = dict(os.environ, NOTIFY_SOCKET=notify_path)
            self.proc = subprocess.Popen(
                ["redis-server", "--port", "0", "--unixsocket", self.socket_path,
                 "--unixsocketperm", "700", "--dir", self.dir, "--appendonly", "yes",
                 "--appendfsync", "always", "--save", "", "--supervised", "systemd",
                 "--loglevel", "warning", "--logfile", os.path.join(self.dir, "redis.log"),
                 *self.extra],
                env=env, stdin=subprocess.DEVNULL)
            while True:
                try:
                    msg = notify.recv(4096)
                except socket.timeout:
                    raise RuntimeError(f"redis-server did not report READY=1 in {timeout} s "
                                       f"(see {self.dir}/redis.log)") from None
                if b"READY=1" in msg:
                    break
        finally:
            notify.close()
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
