"""Fixtures for the HTTP door's tests (helpers in httpdoor.py)."""

import pytest

from httpdoor import Door


@pytest.fixture
def door_factory():
    started = []

    def make(*args):
        d = Door(*args)
        started.append(d)
        return d

    yield make
    for d in started:
        code = d.close()
        assert code == 0, f"server exit {code}; stderr: {d.server.stderr_text()[-3000:]}"


@pytest.fixture
def door(door_factory):
    return door_factory()
