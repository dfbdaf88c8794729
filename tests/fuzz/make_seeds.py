#!/usr/bin/python3
"""Writes the seed corpora of the request and frames fuzz targets:

  tests/fuzz/corpus/request/*.pb   ExecuteRequests encoded with Python protobuf
  tests/fuzz/corpus/frames/*.bin   attach streams in frames_fuzz.c's layout

The seeds are committed; rerun this after changing the proto or the frame
layout:  /usr/bin/python3 tests/fuzz/make_seeds.py
"""

import os
import pathlib
import struct
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
import pyexecd  # noqa: E402

CORPUS = REPO / "tests" / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def request_seeds():
    pb = pyexecd.stubs().executor

    def req(files=None, tar=None, async_=False, request_id="", config=None, **md):
        m = pb.Metadata(**md)
        if config:
            m.config.CopyFrom(pb.ExecutionConfig(**config))
        r = pb.ExecuteRequest(metadata=m, request_id=request_id)
        setattr(r, "async", async_)
        if files:
            r.files.extend(pyexecd.make_files(files))
        if tar:
            r.tar = tar
        return r.SerializeToString()

    write("request", "hello_files.pb", req(files={"main.py": "print('hi')\n"}))
    write("request", "full_metadata.pb", req(
        files={"app/run.py": "import sys\nprint(sys.argv)\n", "app/data.txt": ("x", 0o600)},
        entrypoint="app/run.py", docker_image="pyexec/python:3.11",
        requirements_txt="six\n", pre_commands=["echo pre", "ls"], stdin=b"in\x00put",
        env_vars=["A=1", "B_2=two", "PYTHONPATH=/work/lib"], script_args=["-v", "x"],
        config={"timeout_seconds": 5, "memory_mb": 128, "disk_mb": 64, "cpu_shares": 512},
        async_=True, request_id="req-1"))
    r = pb.ExecuteRequest()
    r.metadata.config.network_disabled.value = False
    r.files.extend(pyexecd.make_files({"__main__.py": "pass\n"}))
    write("request", "network_enabled.pb", r.SerializeToString())
    write("request", "tar_project.pb", req(tar=pyexecd.make_tar({
        "main.py": "import pkg.mod\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})))
    write("request", "bad_path.pb", req(files={"../evil.py": "x"}))
    write("request", "bad_env.pb", req(files={"main.py": "x"}, env_vars=["PATH=/x", "1A=b"]))
    write("request", "limits_high.pb", req(files={"main.py": "x"},
                                           config={"timeout_seconds": 99999, "memory_mb": -1}))
    write("request", "both_inputs.pb", req(files={"main.py": "x"},
                                           tar=pyexecd.make_tar({"a.py": "y"})))


def frame(stream, payload):
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def frames_seed(name, stream, flags=0, cuts=()):
    # Layout: flags byte, number of cuts, cut lengths, then the stream
    # (tests/fuzz/frames_fuzz.c). flags: nonce index | cap index << 2.
    write("frames", name, bytes([flags, len(cuts)]) + bytes(cuts) + stream)


def frames_seeds():
    nonce32 = b"0123456789abcdef0123456789abcdef"
    marker = b"\x1ePYX" + nonce32 + b"\x1e"
    trailer = marker + b'{"peak_memory_bytes": 123, "cpu_time_ms": 4}' + marker + b"\n"
    hello = frame(1, b"hello\n") + frame(2, b"warn\n")
    frames_seed("hello.bin", hello, flags=3 | 3 << 2, cuts=(3, 5, 1))
    frames_seed("trailer.bin", frame(1, b"out") + frame(2, b"err" + trailer[:20]) +
                frame(2, trailer[20:]), flags=3 | 3 << 2, cuts=(9, 30))
    frames_seed("trailer_short_nonce.bin",
                frame(2, b"\x1ePYXn\x1e{}\x1ePYXn\x1e\n" + b"tail"), flags=0 | 2 << 2)
    periodic = b"\x1ePYXaab\x1e"
    frames_seed("periodic_nonce.bin",
                frame(2, b"\x1ePYXaa\x1ePYXaab\x1e{\"a\":1}" + periodic + b"x"), flags=1 | 2 << 2,
                cuts=(12, 1, 1))
    frames_seed("fake_marker_long_body.bin",
                frame(2, marker + b"y" * 1100 + marker + b"\n"), flags=3 | 3 << 2, cuts=(200,))
    frames_seed("empty_frames.bin", frame(1, b"") + frame(2, b"") + frame(1, b"z"),
                flags=3 | 3 << 2)
    frames_seed("bad_stream.bin", frame(1, b"ok") + b"\x03\x00\x00\x00\x00\x00\x00\x01x",
                flags=3 | 3 << 2)
    frames_seed("over_cap.bin", frame(1, b"a" * 17), flags=3)
    frames_seed("truncated.bin", frame(1, b"abcdef")[:-2], flags=3 | 3 << 2, cuts=(4,))


if __name__ == "__main__":
    request_seeds()
    frames_seeds()
    print(f"seeds written under {CORPUS}")
