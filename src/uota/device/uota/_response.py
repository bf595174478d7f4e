# An HTTP response: its head read a byte at a time into one line buffer, its body
# bounded by Content-Length or chunks.

from ._core import DownloadError, _number

_LINE_MAX = 512  # longest HTTP header line accepted
_HEADERS_MAX = 8192  # whole header block


class _Response:
    # An HTTP response body with readinto(), bounded by Content-Length or chunks.

    def __init__(self, stream, head, line):
        self.status, length, chunked, _, self.range_start = head
        self.stream = stream  # closing it closes the connection, once however often
        self.length = length  # None when the server closes to end the body
        self.left = length if length is not None else -1
        self.chunked = chunked
        self.one = bytearray(1)
        self.line = line  # reused for chunk-size lines
        if chunked:
            self.left = self._chunk_size()

    def readinto(self, buf):
        if self.left == 0:
            return 0
        if 0 < self.left < len(buf):
            buf = buf[: self.left]  # callers pass memoryviews
        n = self.stream.readinto(buf)
        if not n:
            if self.left > 0:
                raise DownloadError("connection closed before the end of the body")
            self.left = 0
            return 0
        if self.left > 0:
            self.left -= n
            if self.left == 0 and self.chunked:
                _readline(self.stream, self.one, self.line)  # CRLF after the data
                self.left = self._chunk_size()
        return n

    def _chunk_size(self):
        n = _readline(self.stream, self.one, self.line)
        size = _number(self.line, 0, n, 16)
        if size < 0:
            raise DownloadError("bad chunk size")
        if size == 0:
            self.chunked = False  # trailers are not read: the connection closes
        return size

    def close(self):
        self.stream.close()


def _starts_with(buf, n, prefix):
    # Case-insensitive test of buf[:n] against a lower-case bytes prefix, allocating nothing.
    if n < len(prefix):
        return False
    for i in range(len(prefix)):
        if buf[i] | 0x20 != prefix[i] | 0x20:
            return False
    return True


def _readline(stream, one, line):
    # Read one header line into `line` a byte at a time; return its length without CRLF.
    n = 0
    while True:
        if not stream.readinto(one):
            raise DownloadError("connection closed in the headers")
        c = one[0]
        if c == 10:
            return n - 1 if n and line[n - 1] == 13 else n
        if n == len(line):
            raise DownloadError("header line longer than %d bytes" % len(line))
        line[n] = c
        n += 1


def _read_head(stream, line):
    # (status, Content-Length or None, chunked, Location or None, Content-Range start or -1).
    one = bytearray(1)
    n = _readline(stream, one, line)
    status = _number(line, 9, 12, 10)
    if n < 12 or not _starts_with(line, n, b"http/") or status < 100:
        raise DownloadError("not an HTTP response")
    length, chunked, location, range_start = None, False, None, -1
    total = n
    while True:
        n = _readline(stream, one, line)
        total += n + 2
        if total > _HEADERS_MAX:
            raise DownloadError("response headers larger than %d bytes" % _HEADERS_MAX)
        if not n:
            return status, length, chunked, location, range_start
        # Only four headers matter; they are recognised in the buffer, not as strings.
        if _starts_with(line, n, b"content-length:"):
            length = _number(line, 15, n, 10)
            if length < 0:
                raise DownloadError("bad Content-Length")
        elif _starts_with(line, n, b"transfer-encoding:"):
            chunked = b"chunked" in bytes(line[18:n]).lower()
        elif _starts_with(line, n, b"location:"):
            location = bytes(line[9:n]).strip()
            for c in location:  # it goes into the next request line
                if not 32 < c < 127:
                    raise DownloadError("redirect to an unsafe Location")
            location = location.decode()
        elif _starts_with(line, n, b"content-range:"):  # "bytes 100-199/200"
            value = bytes(line[14:n]).strip()
            if value.startswith(b"bytes "):
                range_start = _number(value, 6, len(value), 10)
