# HTTP/1.1 client over the firmware's socket and ssl, and the streamed download.

from ._core import (VERSION, _STATE, DownloadError, VerifyError, _copy, _free_bytes, _hex, _number,
                    _remove, _sha256, const)
from ._cfg import _check_headers, _split_url

try:  # a millisecond clock; MicroPython's wraps, hence ticks_diff
    from time import ticks_ms as _ticks_ms, ticks_diff as _ticks_diff
except ImportError:  # CPython
    from time import monotonic

    def _ticks_ms():
        return int(monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


_CHUNK = const(1024)
_LINE_MAX = const(512)  # longest HTTP header line accepted
_HEADERS_MAX = const(8192)  # whole header block
_REDIRECTS_MAX = const(5)
_PIN_FAILED = (
    "Certificate pinning failed, the hash of server public key does not match. "
    "Aborting the update."
)


def _stream(sock):
    # MicroPython sockets are streams; CPython's need a raw file object for readinto().
    return sock if hasattr(sock, "readinto") else sock.makefile("rwb", 0)


def _wrap_tls(sock, host):
    import ssl

    if hasattr(ssl, "SSLContext"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if hasattr(ctx, "check_hostname"):
            ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # no CA bundle on a device: pin the key instead
        return ctx.wrap_socket(sock, server_hostname=host)
    return ssl.wrap_socket(sock, server_hostname=host)


def _join_url(base, location):
    location = location.partition("#")[0]  # a fragment is the client's, never sent
    if location.startswith("http://") or location.startswith("https://"):
        return location
    scheme, host, port, path = _split_url(base)
    origin = "%s://%s:%d" % (scheme, host, port)
    if location.startswith("//"):
        return scheme + ":" + location
    if location.startswith("/"):
        return origin + location
    return origin + path[: path.rfind("/") + 1] + location


class _Response:
    """An HTTP response body with readinto(), bounded by Content-Length or chunks."""

    def __init__(self, sock, stream, head, line):
        self.status, length, chunked, _, self.range_start = head
        self.sock = sock
        self.stream = stream
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
        if self.stream is not self.sock:
            self.stream.close()
        self.sock.close()


class _Paced:
    """The socket as a stream that ends the transfer when the server sends slower than
    min_rate bytes/s on average since the request, after a grace of `timeout` seconds
    (the timeout bounds each read only). Costs a clock read and a compare per read; on
    MicroPython a read fills the buffer, so in a body the check comes once per buffer."""

    def __init__(self, sock, cfg):
        self.sock = sock
        self.stream = _stream(sock)
        self.rate = cfg.get("min_rate", 256)
        self.got = 0
        self.due = int(cfg.get("timeout", 10) * 1000)  # ms after the request: next check
        self.start = _ticks_ms()

    def write(self, data):
        return self.stream.write(data)

    def readinto(self, buf):
        n = self.stream.readinto(buf)
        if n:
            self.got += n
        t = _ticks_diff(_ticks_ms(), self.start)
        if t > self.due:
            # When `got` bytes are due at min_rate: got * 1000 // rate, in small ints.
            got, rate = self.got, self.rate
            due = got // rate * 1000 + got % rate * 1000 // rate
            if t > due:
                raise DownloadError("the server sends slower than %d bytes/s" % rate)
            self.due = due
        return n

    def close(self):
        if self.stream is not self.sock:
            self.stream.close()
        self.sock.close()


def _starts_with(buf, n, prefix):
    """Case-insensitive test of buf[:n] against a lower-case bytes prefix, allocating nothing."""
    if n < len(prefix):
        return False
    for i in range(len(prefix)):
        if buf[i] | 0x20 != prefix[i] | 0x20:
            return False
    return True


def _readline(stream, one, line):
    """Read one header line into `line` a byte at a time; return its length without CRLF."""
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


def _request(url, cfg, pin, offset=0):
    """GET url, following redirects; return a _Response for a 200 (or 206 from offset).

    uota.cfg's headers (credentials) go only to the origin of its url; a redirect from
    https to http is refused."""
    home = _split_url(cfg["url"])[:3]
    for _ in range(_REDIRECTS_MAX + 1):
        scheme, host, port, path = _split_url(url)
        import socket

        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
        sock = socket.socket()
        try:
            sock.settimeout(cfg.get("timeout", 10))
            sock.connect(addr)
            if scheme == "https":
                sock = _wrap_tls(sock, host)
                if pin:
                    from ._pin import _check_pin

                    _check_pin(sock, pin)
            elif pin:
                raise VerifyError(_PIN_FAILED + " (no TLS to check)")
            stream = _Paced(sock, cfg)
            headers = cfg.get("headers", {}) if (scheme, host, port) == home else {}
            _send_request(stream, host, port, path, headers, offset)
            line = bytearray(_LINE_MAX)
            head = _read_head(stream, line)
            response = _Response(stream, stream, head, line)
        except BaseException:
            sock.close()
            raise
        status, location = head[0], head[3]
        if status in (301, 302, 303, 307, 308) and location:
            response.close()
            url = _join_url(url, location)
            if scheme == "https" and not url.startswith("https:"):
                raise DownloadError("refused a redirect from https to http: %s" % url)
            continue
        if status == 200 or (offset and status in (206, 416)):  # 416: nothing after offset
            return response
        response.close()
        raise DownloadError("HTTP %d for %s" % (status, url))
    raise DownloadError("more than %d redirects" % _REDIRECTS_MAX)


def _send_request(stream, host, port, path, headers, offset):
    _check_headers(headers)  # also checked with uota.cfg: nothing may end a line early
    head = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: uota/%s\r\n" % (
        path,
        host if port in (80, 443) else "%s:%d" % (host, port),
        VERSION,
    )
    for key, value in headers.items():
        head += "%s: %s\r\n" % (key, value)
    if offset:
        head += "Range: bytes=%d-\r\n" % offset
    data = (head + "\r\n").encode()
    while data:
        n = stream.write(data)
        data = data[n:] if n else data


def _read_head(stream, line):
    """(status, Content-Length or None, chunked, Location or None, Content-Range start or -1)."""
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


def _fetch_small(url, cfg, pin, limit):
    response = _request(url, cfg, pin)
    try:
        data = bytearray(limit + 3)
        n = 0
        while n < len(data):
            got = response.readinto(memoryview(data)[n:])
            if not got:
                break
            n += got
        return bytes(data[:n])
    finally:
        response.close()


def _download(url, path, cfg, pin, sha, offset, free_kb=0):
    """Stream url into path from byte `offset` (what an earlier try left), hashing on the fly.

    The archive is at most latest's free_kB when it gives one (that counts the archive
    too), else what fits in the free space: a longer one is refused by its Content-Length
    before anything is written, or as it runs over. Returns (size, sha256 hex). A failed
    download with a known hash is kept to be resumed, unless it cannot be the archive.
    """
    buf = memoryview(bytearray(_CHUNK))
    hasher = _sha256()
    if offset:
        with open(path, "rb") as f:  # the bytes already there count towards the hash
            _copy(f, buf, hasher.update)
    response = _request(url, cfg, pin, offset)
    try:
        if response.status == 206 and response.range_start != offset:
            response.close()
            return _download(url, path, cfg, pin, sha, 0, free_kb)
        if response.status == 416:  # the file was whole when a cut lost its "ready" record
            response.left = response.length = 0  # so the hash of what is there decides
        if response.status == 200 and offset:  # the server ignores Range: start over
            hasher = _sha256()
            offset = 0
        if free_kb:  # the bytes that may still come
            limit, why = free_kb * 1024 - offset, "the %d kB latest announces" % free_kb
        else:
            limit, why = _free_bytes(), "the free space"
        if limit < 0 or response.length is not None and response.length > limit:
            raise VerifyError("the archive is larger than " + why)
        with open(path, "ab" if offset else "wb") as f:
            size = offset + _copy(response, buf, f.write, hasher, limit, why)
    except BaseException as e:
        # Without a hash to check a resumed file against, never resume; nor what is too long.
        if not sha or isinstance(e, VerifyError):
            _remove(path)
            _remove(_STATE)
        raise
    finally:
        response.close()
    digest = _hex(hasher.digest())
    if sha and digest != sha:
        _remove(path)
        _remove(_STATE)
        raise VerifyError("SHA-256 of the download does not match latest")
    return size, digest
