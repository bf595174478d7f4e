# MicroPython `socket` module for the simulated device (installed by
# runner.mjs as /lib/socket.py). Real TCP through the host: `_uota_net` is a
# JS module whose calls block until the network worker answers. Buffers are
# handed over as (address, length) in the wasm heap, so the JS side reads and
# writes Python's memory directly and receiving allocates nothing here.
import uctypes
import _uota_net

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
IPPROTO_TCP = 6
SOL_SOCKET = 1
SO_REUSEADDR = 2

_EBADF = 9
_EAI_NONAME = -2
# Longest line readline() returns in one piece when given no size.
_LINE_LIMIT = 1024 * 1024

# Bound once: every attribute lookup on a JS module allocates a proxy.
_resolve = _uota_net.resolve
_connect = _uota_net.connect
_send = _uota_net.send
_recv_into = _uota_net.recv_into
_available = _uota_net.available
_line_length = _uota_net.line_length
_close = _uota_net.close


def _check(result):
    if result < 0:
        raise OSError(-result)
    return result


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    ip = _resolve(host)
    if ip is None:
        raise OSError(_EAI_NONAME)
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (ip, port))]


class socket:
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        self._handle = 0
        self._timeout_ms = -1

    def _connection(self):
        if not self._handle:
            raise OSError(_EBADF)
        return self._handle

    def settimeout(self, seconds):
        self._timeout_ms = -1 if seconds is None else int(seconds * 1000)

    def setblocking(self, flag):
        self.settimeout(None if flag else 0)

    def setsockopt(self, level, option, value):
        pass

    def connect(self, address):
        self._handle = _check(_connect(address[0], address[1], self._timeout_ms))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if not len(data):
            return 0
        return _check(_send(self._connection(), uctypes.addressof(data), len(data), self._timeout_ms))

    write = send

    def sendall(self, data):
        self.send(data)

    def readinto(self, buf, nbytes=None):
        count = len(buf) if nbytes is None else min(nbytes, len(buf))
        if not count:
            return 0
        return _check(_recv_into(self._connection(), uctypes.addressof(buf), count, 1, self._timeout_ms))

    def _take(self, count):
        # `count` bytes are already buffered by the worker.
        buf = bytearray(count)
        if count:
            _check(_recv_into(self._handle, uctypes.addressof(buf), count, 1, self._timeout_ms))
        return bytes(buf)

    def recv(self, bufsize):
        return self._take(_check(_available(self._connection(), bufsize, self._timeout_ms)))

    def read(self, size=-1):
        if size is None or size < 0:
            chunks = []
            while True:
                chunk = self.recv(4096)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        buf = bytearray(size)
        got = self.readinto(buf)
        return bytes(buf) if got == size else bytes(buf[:got])

    def readline(self, size=-1):
        limit = _LINE_LIMIT if size < 0 else size
        return self._take(_check(_line_length(self._connection(), limit, self._timeout_ms)))

    def close(self):
        if self._handle:
            _close(self._handle)
            self._handle = 0
