"""MicroPython-flavoured `socket` module for the CPython virtual device.

CPython's sockets lack the stream methods MicroPython code uses (`write`,
`read`, `readinto`, `readline`) and raise richer exceptions. This wrapper
offers MicroPython's surface over real sockets and raises plain `OSError`s
with MicroPython's errno numbers. The runtime bootstrap installs it as
`socket` after the real module is imported, so the stdlib keeps the real one.
"""
import errno
import socket as _real

# Plain ints, as MicroPython shows them (CPython's are enums).
AF_INET = int(_real.AF_INET)
AF_INET6 = int(_real.AF_INET6)
SOCK_STREAM = int(_real.SOCK_STREAM)
SOCK_DGRAM = int(_real.SOCK_DGRAM)
IPPROTO_TCP = int(_real.IPPROTO_TCP)
SOL_SOCKET = int(_real.SOL_SOCKET)
SO_REUSEADDR = int(_real.SO_REUSEADDR)

_EAI_NONAME = -2
_EOF = b""


def _micropython_error(error):
    if isinstance(error, _real.gaierror):
        return OSError(_EAI_NONAME, "name does not resolve")
    if isinstance(error, _real.timeout) or error.errno is None:
        return OSError(errno.ETIMEDOUT, "ETIMEDOUT")
    return OSError(error.errno, error.strerror)


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except OSError as error:
        raise _micropython_error(error) from None


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    infos = _call(_real.getaddrinfo, host, port, _real.AF_INET, _real.SOCK_STREAM)
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", infos[0][4])]


class socket:
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        self._sock = _real.socket(af, type, proto)

    def settimeout(self, seconds):
        self._sock.settimeout(seconds)

    def setblocking(self, flag):
        self._sock.setblocking(flag)

    def setsockopt(self, level, option, value):
        self._sock.setsockopt(level, option, value)

    def connect(self, address):
        _call(self._sock.connect, (address[0], address[1]))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        return _call(self._sock.send, data)

    def sendall(self, data):
        if isinstance(data, str):
            data = data.encode()
        _call(self._sock.sendall, data)

    def write(self, data):
        self.sendall(data)
        return len(data)

    def recv(self, bufsize):
        return _call(self._sock.recv, bufsize)

    def readinto(self, buf, nbytes=None):
        """Fills the buffer (or `nbytes` of it) unless the stream ends first."""
        view = memoryview(buf).cast("B")
        count = len(view) if nbytes is None else min(nbytes, len(view))
        done = 0
        while done < count:
            received = _call(self._sock.recv_into, view[done:count])
            if not received:
                break
            done += received
        return done

    def read(self, size=-1):
        if size is None or size < 0:
            chunks = []
            while True:
                chunk = self.recv(4096)
                if not chunk:
                    return _EOF.join(chunks)
                chunks.append(chunk)
        buf = bytearray(size)
        return bytes(buf[: self.readinto(buf)])

    def readline(self, size=-1):
        # Byte by byte, like MicroPython: nothing is read beyond the line.
        line = bytearray()
        while size < 0 or len(line) < size:
            byte = self.recv(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return bytes(line)

    def close(self):
        self._sock.close()
