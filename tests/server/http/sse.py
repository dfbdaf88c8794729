"""A small Server-Sent Events reader over http.client, for the tests."""

import http.client


class Stream:
    """GET `path` on `conn` as an event stream; iterate for
    (event, id, data) tuples. data is the joined data lines (SSE rules);
    comment lines are skipped."""

    def __init__(self, host, port, path, headers=None, timeout=30):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())

    def body(self):
        return self.response.read()

    def __iter__(self):
        return self

    def __next__(self):
        event, ident, data = None, None, []
        while True:
            raw = self.response.readline()
            if not raw:
                raise StopIteration
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if event is None and not data:
                    continue
                return event or "message", ident, "\n".join(data)
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)

    def close(self):
        self.conn.close()
