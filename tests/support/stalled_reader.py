"""gRPC clients that never read: a raw HTTP/2 client (python3-h2) that
opens calls with an initial stream window of 0 and never grants more, so
the server can send no byte of DATA on them. What the server queues for
such calls is what a hostile client can pin.

    conn = StalledConnection("127.0.0.1", port)
    sid = conn.open(execution_id, offset=0)   # StreamOutput
    sid = conn.open_call("GetExecution", execution_id_request(execution_id))
    conn.wait_started(sid)      # response headers: the server began sending
    conn.wait_status([sid2])    # a refused call: {"grpc-status": "8", ...}
    conn.close()

Runs with /usr/bin/python3 (Debian's python3-h2, installed by scripts/setup).
"""

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def stream_output_request(execution_id, offset=0):
    """A StreamOutputRequest encoded by hand (field 1 string, field 2
    int64), in a gRPC length-prefixed frame."""
    eid = execution_id.encode()
    msg = b"\x0a" + _varint(len(eid)) + eid
    if offset:
        msg += b"\x10" + _varint(offset)
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def execution_id_request(execution_id):
    """A GetExecutionRequest or KillRequest (field 1, the id), framed."""
    return stream_output_request(execution_id)


class StalledConnection:
    """One HTTP/2 connection whose streams never get flow-control window."""

    def __init__(self, host, port, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.authority = f"{host}:{port}"
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
                            h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        self.timeout = timeout
        self.started = set()    # streams whose response headers arrived
        self.statuses = {}      # stream id -> trailers (or trailers-only headers)
        self.data_bytes = 0     # DATA bytes received on all streams
        self._flush()

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(self, execution_id, offset=0):
        """Starts a StreamOutput call; returns its stream id."""
        return self.open_call("StreamOutput", stream_output_request(execution_id, offset))

    def open_call(self, method, framed_request):
        """Starts a call of ExecutorService/`method` with one request
        message (gRPC-framed); returns its stream id."""
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "POST"), (":scheme", "http"), (":authority", self.authority),
            (":path", f"/pyexec.v1.ExecutorService/{method}"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ])
        self.conn.send_data(sid, framed_request, end_stream=True)
        self._flush()
        return sid

    def _pump_once(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                headers = dict(ev.headers)
                if "grpc-status" in headers:  # trailers-only: refused at once
                    self.statuses[ev.stream_id] = headers
                else:
                    self.started.add(ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                self.statuses[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.data_bytes += len(ev.data)
        self._flush()

    def _wait(self, done):
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from the server")
            self._pump_once(deadline)

    def wait_started(self, sids):
        """Waits until each stream got its response headers (the server's
        first message, or a unary reply, is then queued) or a status."""
        self._wait(lambda: all(s in self.started or s in self.statuses for s in sids))

    def wait_status(self, sids):
        """Waits for the final status of each stream; returns the trailers."""
        self._wait(lambda: all(s in self.statuses for s in sids))
        return [self.statuses[s] for s in sids]

    def close(self):
        try:
            self.conn.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()
