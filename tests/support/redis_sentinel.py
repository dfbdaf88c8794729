"""Test support: a private Redis primary, its replica and three Sentinels.

The primary and the replica are redis-servers on loopback TCP ports (Sentinel
knows servers by address and port only), each in its own temporary
directory with the append-only file on (tests/support/redis_server.py);
the Sentinels are `redis-server --sentinel` with a generated configuration
and short timeouts (down after 500 ms), never the system service. Each
server's port is free when chosen; if another process takes it before the
server binds it (the server exits saying so), it starts again on another.

    with redis_sentinel.SentinelSet() as s:
        url = s.url              # redis+sentinel://127.0.0.1:P1,.../pyexec-test
        s.primary_address()      # ("127.0.0.1", port) as the Sentinels name it

`command(address, *args, password=None)` sends one command (after AUTH
with `password`, if given) and returns its reply (a minimal RESP client:
str, bytes, int, list, None; an error reply raises RedisError).
`SentinelSet(sentinel_password=PW)` gives the Sentinels `requirepass PW`.
"""

import os
import shutil
import socket
import tempfile
import time

import redis_server

MASTER = "pyexec-test"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 1000


class RedisError(RuntimeError):
    """An error reply."""


def free_port():
    """A loopback TCP port free at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_ATTEMPTS = 10


def start_on_free_port(start):
    """Returns `start(port)` for a port from free_port(); while the server
    exits because the port was taken meanwhile (ExitedEarly, its log saying
    so), `start` is called again with another port."""
    for attempt in range(PORT_ATTEMPTS):
        try:
            return start(free_port())
        except redis_server.ExitedEarly as e:
            if "Address already in use" not in e.log or attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RedisError(f"unexpected reply {line!r}")


def _encode(args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def command(address, *args, password=None, timeout=10):
    """Sends one command to `address` (host, port), after AUTH with
    `password` if given, and returns the reply."""
    with socket.create_connection(address, timeout=timeout) as s, s.makefile("rb") as f:
        if password is not None:
            s.sendall(_encode(["AUTH", password]))
            _read_reply(f)
        s.sendall(_encode(args))
        return _read_reply(f)


def _pairs(flat):
    """A flat [k1, v1, k2, v2, ...] reply as a dict of str."""
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


class SentinelSet:
    def __init__(self, sentinels=3, sentinel_password=None):
        self.sentinel_password = sentinel_password
        self.n_sentinels = sentinels
        # Set by start(), with the ports the servers could bind.
        self.ports = {}
        self.primary = self.replica = None
        self.sentinel_ports = []
        self.dir = tempfile.mkdtemp(prefix="pyexec-sentinel-", dir="/tmp")
        self.sentinels = []
        self.url = None

    def address(self, which):
        return ("127.0.0.1", self.ports[which])

    def _start_server(self, which, port, *extra):
        server = redis_server.RedisServer("--port", str(port), "--bind", "127.0.0.1", *extra)
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        self.ports[which] = port
        return server

    def _start_sentinel(self, i, port):
        d = os.path.join(self.dir, f"sentinel{i}")
        shutil.rmtree(d, ignore_errors=True)  # a previous attempt's
        os.mkdir(d)
        conf = os.path.join(d, "sentinel.conf")
        quorum = self.n_sentinels // 2 + 1
        with open(conf, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                    f"logfile {d}/sentinel.log\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['primary']} {quorum}\n"
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n")
            if self.sentinel_password is not None:
                # Also the password they give each other.
                f.write(f'requirepass "{self.sentinel_password}"\n')
        self.sentinels.append(redis_server.start_notified(
            ["redis-server", conf, "--sentinel", "--supervised", "systemd"],
            os.path.join(d, "notify.sock"), os.path.join(d, "sentinel.log")))
        self.sentinel_ports.append(port)

    def start(self, timeout=60):
        self.primary = start_on_free_port(lambda port: self._start_server("primary", port))
        self.replica = start_on_free_port(lambda port: self._start_server(
            "replica", port, "--replicaof", "127.0.0.1", str(self.ports["primary"])))
        for i in range(self.n_sentinels):
            start_on_free_port(lambda port: self._start_sentinel(i, port))
        self.url = "redis+sentinel://" + ",".join(
            f"127.0.0.1:{p}" for p in self.sentinel_ports) + "/" + MASTER
        # Ready when every Sentinel sees the replica and the other Sentinels
        # (they find each other through the primary, within seconds): only
        # then can they agree on a failover.
        others = str(len(self.sentinel_ports) - 1)
        if not self._poll(lambda: self._sentinels_alive() and all(
                self._master_info(p).get("num-other-sentinels") == others and
                self._master_info(p).get("num-slaves") == "1"
                for p in self.sentinel_ports), timeout):
            raise RuntimeError(f"the Sentinels did not find each other in {timeout} s "
                               f"(see {self.dir}/sentinel*/sentinel.log)")
        return self

    def _sentinels_alive(self):
        for p in self.sentinels:
            if p.poll() is not None:
                raise RuntimeError(f"a Sentinel exited with {p.returncode} "
                                   f"(see {self.dir}/sentinel*/sentinel.log)")
        return True

    def sentinel(self, port, *args):
        """One command to the Sentinel on `port` (with its password)."""
        return command(("127.0.0.1", port), *args, password=self.sentinel_password)

    def _master_info(self, port):
        try:
            return _pairs(self.sentinel(port, "SENTINEL", "MASTER", MASTER))
        except (OSError, RedisError):
            return {}

    @staticmethod
    def _poll(predicate, timeout):
        # Sentinel has no event to wait on: its state is read until it holds.
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def primary_address(self):
        """The primary's address as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                host, p = self.sentinel(port, "SENTINEL", "get-master-addr-by-name", MASTER)
                return (host.decode(), int(p))
            except (OSError, RedisError, TypeError, ValueError):
                continue
        return None

    def await_primary(self, address, timeout=60):
        """Polls every Sentinel until all name `address` as the primary."""
        def named():
            for port in self.sentinel_ports:
                try:
                    host, p = self.sentinel(port, "SENTINEL", "get-master-addr-by-name", MASTER)
                except (OSError, RedisError, TypeError, ValueError):
                    return False
                if (host.decode(), int(p)) != address:
                    return False
            return True
        if not self._poll(named, timeout):
            raise AssertionError(f"the Sentinels did not name {address} in {timeout} s "
                                 f"(see {self.dir}/sentinel*/sentinel.log)")

    def await_replicated(self):
        """Returns once the replica has every write the primary acknowledged
        so far: WAIT after a write of our own, which the replication stream
        carries after all earlier ones."""
        addr = self.address("primary")
        with socket.create_connection(addr, timeout=30) as s, s.makefile("rb") as f:
            s.sendall(b"*3\r\n$3\r\nSET\r\n$17\r\npyexec-test:fence\r\n$1\r\n1\r\n"
                      b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$5\r\n20000\r\n")
            assert _read_reply(f) == "OK"
            acked = _read_reply(f)
        if acked < 1:
            raise AssertionError("the replica did not acknowledge the writes")

    def close(self):
        for p in self.sentinels:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.sentinels = []
        for server in (self.primary, self.replica):
            if server:
                server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
