# HTTP/1.1 requests over the firmware's socket and ssl: connect, TLS and its pin,
# redirects, and a socket stream paced against a minimum rate.

from ._core import VERSION, DownloadError, VerifyError, const
from ._url import _check_headers, _split_url
from ._response import _LINE_MAX, _read_head, _Response

try:  # a millisecond clock; MicroPython's wraps, hence ticks_diff
    from time import ticks_ms as _ticks_ms, ticks_diff as _ticks_diff
except ImportError:  # CPython
    from time import monotonic

    def _ticks_ms():
        return int(monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


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


class _Paced:
    # The socket as a stream that ends the transfer when the server sends slower than
    # min_rate bytes/s on average since the request, after a grace of `timeout` seconds
    # (the timeout bounds each read only). Costs a clock read and a compare per read; on
    # MicroPython a read fills the buffer, so in a body the check comes once per buffer.

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
        # Once only: MicroPython 1.20's socket.close() closes its descriptor number again,
        # which by then may be another file's.
        sock, self.sock = self.sock, None
        if sock is not None:
            if self.stream is not sock:
                self.stream.close()
            sock.close()


def _request(url, cfg, pin, offset=0, report=None):
    # GET url, following redirects; return a _Response for a 200 (or 206 from offset).
    #
    # uota.cfg's headers (credentials) and the `report` headers go only to the origin of its
    # url; a redirect from https to http is refused.
    home = _split_url(cfg["url"])[:3]
    pins = list(cfg.get("pins", ()))  # the server's key may be any of them: a key rotates
    if pin:
        pins.append(pin)
    for _ in range(_REDIRECTS_MAX + 1):
        scheme, host, port, path = _split_url(url)
        import socket

        sock = socket.socket()
        try:
            sock.settimeout(cfg.get("timeout", 10))
            try:  # name what failed: "[Errno 111] ECONNREFUSED" alone does not
                sock.connect(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1])
            except OSError as e:
                raise DownloadError("cannot connect to %s:%d: %s" % (host, port, e))
            if scheme == "https":
                sock = _wrap_tls(sock, host)
                if pins:
                    from ._pin import _check_pin

                    _check_pin(sock, pins)
            elif pins:
                raise VerifyError(_PIN_FAILED + " (no TLS to check)")
            stream = _Paced(sock, cfg)
            headers = {}
            if (scheme, host, port) == home:
                headers = dict(cfg.get("headers", {}), **report) if report else cfg.get("headers", {})
            _send_request(stream, host, port, path, headers, offset)
            line = bytearray(_LINE_MAX)
            head = _read_head(stream, line)
            response = _Response(stream, head, line)
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
