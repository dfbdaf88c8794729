"""Small pure-Python wheels made on the spot, a wheelhouse of them, and a
loopback-only PEP 503 simple index serving them: the dependency tests run
without any package registry.

    make_wheel(directory, name, version="1.0", modules=None, requires=(), data=None)
    SimpleIndex(directory, hold=False)
        context manager: .url, .requests (paths asked for); with hold, every
        request waits until .release is set (or 60 s pass), so a test can
        keep a build in progress for as long as it needs
"""

import http.server
import os
import re
import threading
import zipfile


def dist_name(name):
    """The wheel file-name form of a distribution name."""
    return re.sub(r"[-_.]+", "_", name)


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def make_wheel(directory, name, version="1.0", modules=None, requires=(), data=None):
    """Writes <dist>-<version>-py3-none-any.whl into `directory` and returns
    its path. `modules` maps paths in the wheel ("pkg/__init__.py") to text
    (default: a module `<dist>` with NAME and VERSION); `requires` are
    Requires-Dist lines; `data` maps more paths to bytes (stored as is)."""
    dist = dist_name(name)
    if modules is None:
        modules = {dist.lower() + ".py": f"NAME = {name!r}\nVERSION = {version!r}\n"}
    info = f"{dist}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {path: text.encode() for path, text in modules.items()}
    files.update(data or {})
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: pyexec-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    path = os.path.join(directory, f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for p, b in files.items():
            z.writestr(p, b)
    return path


class SimpleIndex:
    """A PEP 503 simple index of the wheels in `directory`, served by
    http.server on 127.0.0.1 (an ephemeral port) from a thread."""

    def __init__(self, directory, hold=False):
        self.directory = directory
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.asked = threading.Event()  # set at the first request
        self.requests = []
        self.url = None
        self._server = None
        self._thread = None

    def _pages(self):
        pages = {}
        for f in sorted(os.listdir(self.directory)):
            if f.endswith(".whl"):
                pages.setdefault(canonical(f.split("-")[0]), []).append(f)
        return pages

    def __enter__(self):
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                index.requests.append(self.path)
                index.asked.set()
                index.release.wait(60)
                parts = [p for p in self.path.split("/") if p]
                body = None
                if parts[:1] == ["simple"] and len(parts) == 2:
                    files = index._pages().get(canonical(parts[1]))
                    if files:
                        links = "".join(f'<a href="/files/{f}">{f}</a>\n' for f in files)
                        body = f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()
                        kind = "text/html"
                elif parts[:1] == ["files"] and len(parts) == 2 and "/" not in parts[1]:
                    path = os.path.join(index.directory, parts[1])
                    if os.path.isfile(path):
                        with open(path, "rb") as f:
                            body = f.read()
                        kind = "application/octet-stream"
                if body is None:
                    self.send_error(404)
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the build was stopped meanwhile

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/simple"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        return False
