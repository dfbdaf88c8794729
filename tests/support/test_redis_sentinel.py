"""tests/support/redis_sentinel.py: a port taken between free_port() and
the server's bind makes that server start again on another port, not fail
the test that wanted the Sentinel set."""

import socket

import redis_sentinel


def test_a_port_taken_meanwhile_is_replaced(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        real = redis_sentinel.free_port
        calls = []

        def free_port():
            # Every server's first port is the one held here.
            calls.append(1)
            return held if len(calls) % 2 == 1 else real()

        monkeypatch.setattr(redis_sentinel, "free_port", free_port)
        with redis_sentinel.SentinelSet(sentinels=1) as s:
            assert len(calls) == 6  # primary, replica, Sentinel: two each
            ports = [s.ports["primary"], s.ports["replica"], *s.sentinel_ports]
            assert held not in ports
            assert s.primary_address() == s.address("primary")
