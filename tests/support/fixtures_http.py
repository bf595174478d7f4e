"""Real HTTP(S) servers on 127.0.0.1 for the device tests, with the misbehaviours they need.

`release_server(dist)` serves the files of a release folder, as a static host does. A test
changes how one path is answered through `server.quirks[path] = (kind, arg)`:
  ("redirect", (status, location))  answer with a redirect
  ("chunked", None)                 send the file with Transfer-Encoding: chunked
  ("truncate", n)                   announce the full length, send n bytes, close
  ("no-length", None)               send the file without Content-Length: closing ends it
  ("status", code)                  answer with that status and a short body
Requests with `Range: bytes=N-` get a 206 from byte N unless `server.honour_range` is False;
`server.ranges` lists the Range headers received, `server.heads` (path, headers) of
every request.
`silent_server()` accepts connections and never answers.
`fault_proxy(url)` puts a fault_proxy.FaultProxy in front of the server at url.
"""

import http.server
import socket
import ssl
import threading
from pathlib import Path

import pytest

from uota.pin import load_certificate_file
from uota.serve import make_self_signed_certificate

from support.fault_proxy import FaultProxy


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass  # tests read server.requests instead

    def do_GET(self):
        self.server.requests.append(self.path)
        self.server.heads.append((self.path, self.headers))
        quirk = self.server.quirks.get(self.path.split("?")[0])
        wanted = self.headers.get("Range")
        if wanted:
            self.server.ranges.append(wanted)
        if quirk is None and wanted and self.server.honour_range:
            return self._send_from(int(wanted.split("=")[1].split("-")[0]))
        if quirk is None:
            return super().do_GET()
        kind, arg = quirk
        if kind == "redirect":
            status, location = arg
            self._reply(status, b"", [("Location", location)])
        elif kind == "status":
            self._reply(arg, b"error page\n")
        else:
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            if kind == "chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(0, len(data), 700):
                    part = data[i : i + 700]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            elif kind == "no-length":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            elif kind == "truncate":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[:arg])
            self.close_connection = True

    def _send_from(self, start):
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self._reply(206, data[start:], [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))])

    def _reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


class ReleaseServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory, tls_context=None):
        handler = lambda *a, **kw: _Handler(*a, directory=str(directory), **kw)  # noqa: E731
        super().__init__(("127.0.0.1", 0), handler)
        if tls_context:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)
        self.quirks = {}
        self.requests = []
        self.heads = []
        self.ranges = []
        self.honour_range = True
        scheme = "https" if tls_context else "http"
        self.url = "%s://127.0.0.1:%d/" % (scheme, self.server_address[1])
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def release_server():
    servers = []

    def start(directory, tls_context=None):
        servers.append(ReleaseServer(directory, tls_context))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fault_proxy():
    """fault_proxy(url) starts a FaultProxy in front of the server at url; all stop at teardown."""
    proxies = []

    def start(upstream_url):
        proxies.append(FaultProxy(upstream_url))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def dist(tmp_path):
    """An empty folder to publish releases in."""
    folder = tmp_path / "dist"
    folder.mkdir()
    return folder


@pytest.fixture
def server(release_server, dist):
    """A release server for `dist`."""
    return release_server(dist)


@pytest.fixture
def silent_server():
    """A port that accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield "http://127.0.0.1:%d/" % listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="session")
def tls_identity(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (server SSLContext, certificate DER)."""
    cert_file, key_file = make_self_signed_certificate(tmp_path_factory.mktemp("tls"), "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, load_certificate_file(cert_file)
