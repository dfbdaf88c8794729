"""Which images a client may run, and whether the engine may pull them
(--allowed-images, --pull; docs/security.md).

A request names any image it likes in metadata.docker_image, and an image
name with a registry host makes the Docker engine connect to that host. The
"registry" here is a socket this test listens on at 127.0.0.1: it counts the
connections the engine makes to it and closes them, so every pull fails and
nothing leaves the machine.
"""

import socket
import threading
import uuid

import grpc
import pytest

import pyexecd
from conftest import IMAGE, Runner


class Registry:
    """A loopback listener that counts and drops connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def image(self, name="pyexec/not-here:1"):
        return f"127.0.0.1:{self.port}/{name}"

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def registry():
    r = Registry()
    yield r
    r.close()


def serve(pb, *args):
    instance = f"e2e-images-{uuid.uuid4().hex[:8]}"
    return pyexecd.Server("--default-image", IMAGE, "--instance", instance,
                          "--warm-pool", "0", *args)


def refused(runner, image):
    with pytest.raises(grpc.RpcError) as e:
        runner.run("print('ok')\n", docker_image=image)
    return e.value


def test_by_default_only_the_configured_images_run(ex, registry):
    for image in (registry.image(), "busybox:latest", "pyexec/python"):
        e = refused(ex, image)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
        assert f"'{image}' is not an image this server runs" in e.details()
        assert IMAGE in e.details() and "pyexec/python:3.13" in e.details(), e.details()
    assert registry.connections == 0, "the engine was never asked"
    res = ex.run("print('ok')\n", docker_image=IMAGE)
    assert res.stdout == b"ok\n"


def test_patterns_decide_which_images_run(pb, registry):
    with serve(pb, "--allowed-images", "pyexec/python:3.*") as srv:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        assert runner.run("print('ok')\n", docker_image=IMAGE).stdout == b"ok\n"
        e = refused(runner, registry.image())
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
        assert "(allowed: pyexec/python:3.*)" in e.details(), e.details()
        assert srv.stop(timeout=60) == 0
    assert registry.connections == 0


def test_an_allowed_missing_image_is_not_pulled_by_default(pb, registry):
    with serve(pb, "--allowed-images", f"127.0.0.1:{registry.port}/*") as srv:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        e = refused(runner, registry.image())
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
        assert "does not pull images" in e.details(), e.details()
        assert srv.stop(timeout=60) == 0
    assert registry.connections == 0, "--pull never contacts no registry"


def test_pull_missing_lets_the_engine_pull_an_allowed_image(pb, registry):
    with serve(pb, "--allowed-images", f"127.0.0.1:{registry.port}/*",
               "--pull", "missing") as srv:
        runner = Runner(pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel()), pb)
        e = refused(runner, registry.image())
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
        assert "could not be pulled" in e.details(), e.details()
        assert srv.stop(timeout=60) == 0
    assert registry.connections > 0, "the engine tried the registry"
