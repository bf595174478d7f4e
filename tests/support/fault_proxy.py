"""A fault-injecting TCP proxy on 127.0.0.1 in front of a real HTTP server.

    proxy = FaultProxy(server.url)               # forwards faithfully until told otherwise
    proxy.faults["/latest"] = drop_after(120)     # every response for that path, from now on
    device_cfg(proxy.url, ...)
    proxy.stop()

A fault acts on the bytes of a response, headers and body counted together from 0:
    drop_after(n)        send n bytes, then close (FIN)
    reset_after(n)       send n bytes, then reset the connection (RST, through SO_LINGER 0)
    stall_after(n)       send n bytes, then say nothing more for STALL_SECONDS
    flip_byte(n, mask)   send the whole response with byte n xor-ed with mask
    truncate_body(n)     remove Content-Length, so that only the closing of the connection
                         ends the body, and send n bytes of the body
    trickle(interval, fast=0)
                         send the first `fast` bytes at once, then the rest of the
                         response one byte per interval
`proxy.faults = FaultsOnce({...})`: each fault acts on the next response for its path only.
`strip_range = True` removes Range from requests, as a proxy that does not know it does.
`proxy.requests` lists the request heads received, as text; `proxy.answers` the request
line and the server's status line of each response, as a pair of texts.

The proxy reads the server's whole response before sending anything, so a fault lands on
the exact byte it names whatever the server's write pattern. Every wait is bounded,
threads are daemons, and stop() releases the ones still sending or stalling.
"""

import socket
import struct
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IO_TIMEOUT = 10  # the proxy's own reads and writes
STALL_SECONDS = 8  # much longer than the device timeouts the tests use


@dataclass(frozen=True)
class Fault:
    after: int = None  # response bytes sent before the connection ends; None: all of them
    then: str = "close"  # how it ends after `after` bytes: close, reset or stall
    flips: dict = field(default_factory=dict)  # byte offset -> xor mask
    body_limit: int = None  # the body is cut to this many bytes and its length removed
    interval: float = 0  # seconds between bytes
    fast: int = 0  # with interval: bytes sent at once before the first wait


class FaultsOnce(dict):
    """Faults by path, each used up by the first response it acts on."""

    def get(self, path, default=None):
        return self.pop(path, default)


def drop_after(n):
    return Fault(after=n)


def reset_after(n):
    return Fault(after=n, then="reset")


def stall_after(n):
    return Fault(after=n, then="stall")


def flip_byte(n, mask):
    return Fault(flips={n: mask})


def truncate_body(n):
    return Fault(body_limit=n)


def trickle(interval, fast=0):
    return Fault(interval=interval, fast=fast)


def head_length(response):
    """Where the body of a whole HTTP response starts."""
    return response.index(b"\r\n\r\n") + 4


def fetch_response(url, path, request_headers=""):
    """The raw bytes a server sends for GET path: to aim faults at its parts."""
    address = _address(url)
    with socket.create_connection(address, timeout=IO_TIMEOUT) as upstream:
        upstream.sendall(
            ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s\r\n" % ((path,) + address + (request_headers,))).encode()
        )
        return _read_to_end(upstream)


def _address(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _read_to_end(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _without_content_length(head):
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"content-length:"))


class FaultProxy:
    def __init__(self, upstream_url):
        self.upstream = _address(upstream_url)
        self.faults = {}
        self.strip_range = False
        self.requests = []
        self.answers = []
        self._stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = "http://127.0.0.1:%d/" % self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._acceptor.start()

    def stop(self):
        self._stopping.set()
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() in the acceptor thread
        self._listener.close()
        self._acceptor.join(IO_TIMEOUT)

    def _accept(self):
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was shut by stop()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        with client:
            client.settimeout(IO_TIMEOUT)
            try:
                head = self._read_request_head(client)
                path = head.split(b" ", 2)[1].decode().split("?")[0]
                self.requests.append(head.decode(errors="replace"))
                if self.strip_range:
                    head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith(b"range:"))
                with socket.create_connection(self.upstream, timeout=IO_TIMEOUT) as upstream:
                    upstream.sendall(head)
                    response = _read_to_end(upstream)
                self.answers.append(tuple(part.split(b"\r\n", 1)[0].decode(errors="replace") for part in (head, response)))
                self._send(client, response, self.faults.get(path, Fault()))
            except (OSError, IndexError):
                pass  # the device went away or sent nonsense: nothing to forward

    def _read_request_head(self, client):
        # The device sends no body, so all of its request has been read once this returns:
        # closing the socket then sends a FIN, not the RST that unread data would cause.
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data:
                raise OSError("the client closed before the end of its request")
            head += data
        return head

    def _send(self, client, response, fault):
        response = bytearray(response)
        if fault.body_limit is not None:
            start = head_length(response)
            response = _without_content_length(response[:start]) + response[start : start + fault.body_limit]
        for offset, mask in fault.flips.items():
            response[offset] ^= mask
        end = len(response) if fault.after is None else min(fault.after, len(response))
        if fault.interval:
            start = min(fault.fast, end)
            client.sendall(response[:start])
            for i in range(start, end):
                client.sendall(response[i : i + 1])
                if self._stopping.wait(fault.interval):
                    return
        else:
            client.sendall(response[:end])
        if fault.then == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault.then == "stall":
            self._stopping.wait(STALL_SECONDS)
