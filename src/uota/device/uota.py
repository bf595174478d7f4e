# uota: over-the-air updates for MicroPython (and CPython) devices.
#
# The update flow, top to bottom:
#   check_for_updates(): recover -> read uota.cfg -> GET latest -> compare versions
#                        -> GET the archive into tmp_filename, hashing as it streams
#                        (resumed with a Range request when an earlier try was cut)
#                        -> record the verified download in the state file
#   install_new_firmware(): validate the whole archive (names, types, sizes, space)
#                        -> journal "installing" -> write every file beside its target,
#                        rename over -> new uota.cfg -> delete list -> version (commit)
#                        -> remove archive and state file
#   recover(): finishes an install that a reset interrupted; call it first in boot.py.
#
# On-flash state (all paths relative to the current directory, the device's root):
#   uota.state  "phase;version;size;sha256;archive\n" then one excluded entry per line,
#               then "end\n". phase: partial (downloading; resumable as the hash is
#               known), ready (downloaded and verified), installing (the journal),
#               retry (the journal of an install that failed other than by a power cut:
#               recover() tries it once more), failed (it failed again: the archive is
#               deleted, that release is not tried again, the next one is).
#               Replaced atomically (written beside, renamed over); a file without its
#               "end" line is ignored.
#   <path>.uota-new  a file being written; renamed over <path> once complete.
#
# MIT license.

import os
import gc
import sys

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


try:  # a millisecond clock; MicroPython's wraps, hence ticks_diff
    from time import ticks_ms as _ticks_ms, ticks_diff as _ticks_diff
except ImportError:  # CPython
    from time import monotonic

    def _ticks_ms():
        return int(monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


VERSION = "0.1.0"

_CHUNK = const(1024)  # the one I/O buffer: socket, hash, tar headers and file data
_LATEST_MAX = const(512)  # a longer `latest` is refused
_LINE_MAX = const(512)  # longest HTTP header line accepted
_HEADERS_MAX = const(8192)  # whole header block
_REDIRECTS_MAX = const(5)
_NAME_MAX = const(255)  # longest member path
_MEMBERS_MAX = const(2000)
_SMALL_MEMBER_MAX = const(4096)  # `version`, `uota.cfg` and pax/GNU name records
_TMP_SUFFIX = ".uota-new"
_COMPONENT_MAX = const(246)  # 255, the longest name on littlefs and FAT, less the suffix
_PATHS_MAX = const(2000)  # distinct files and folders one archive may name
_FAT_REFUSES = '\\:*?"<>|'
_OWN_FILES = ("version", "uota.cfg", "uota.state")  # written by uota alone
_OWN_HEADERS = ("host", "connection", "range", "content-length", "transfer-encoding")
_STATE = "uota.state"
_PIN_FAILED = (
    "Certificate pinning failed, the hash of server public key does not match. "
    "Aborting the update."
)


class UotaError(Exception):
    """Base of every error this module reports."""


class DownloadError(UotaError):
    """The server or the network failed us."""


class VerifyError(UotaError):
    """What the server sent, or what is on flash, is not acceptable."""


# ---------------------------------------------------------------- compatibility shims


def _log(level, msg):
    try:
        import logging

        getattr(logging.getLogger("uota"), level)(msg)
    except ImportError:
        print(msg)


# Collecting between files keeps a board's small heap unfragmented; CPython needs no help.
_collect = gc.collect if sys.implementation.name == "micropython" else (lambda: None)


def _sha256():
    try:
        import hashlib
    except ImportError:
        import uhashlib as hashlib
    return hashlib.sha256()


def _hex(digest):
    import binascii

    return binascii.hexlify(digest).decode()


def _gunzip(f, wbits):
    """A stream of the decompressed gzip file f with readinto(); wbits sizes its window."""
    try:
        import deflate  # MicroPython >= 1.21

        return deflate.DeflateIO(f, deflate.GZIP, wbits)
    except ImportError:
        pass
    try:
        import zlib
    except ImportError:
        import uzlib as zlib
    if hasattr(zlib, "DecompIO"):  # MicroPython < 1.21
        return zlib.DecompIO(f, 16 + wbits)
    return _ZlibStream(f, zlib)


class _ZlibStream:
    # CPython has no streaming gzip reader with readinto() that bounds its output.
    def __init__(self, f, zlib):
        self.f = f
        self.error = zlib.error
        self.z = zlib.decompressobj(47)
        self.pending = b""

    def readinto(self, buf):
        try:
            while not self.pending:
                if self.z.eof:
                    return 0
                data = self.z.unconsumed_tail or self.f.read(_CHUNK)
                if not data:
                    raise VerifyError("archive is truncated")
                self.pending = self.z.decompress(data, len(buf))
        except self.error as e:
            raise VerifyError("archive is not a valid gzip file: %s" % e)
        n = min(len(self.pending), len(buf))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


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


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


def _exists(path):
    return _stat(path) is not None


def _is_dir(st):
    """Whether a stat result (None for a missing path) is a directory's."""
    return st is not None and st[0] & 0x4000 != 0


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


# ---------------------------------------------------------------- formats: uota.cfg


def parse_cfg(text):
    """Read the uota.cfg dict literal without eval: literals only, code is refused."""
    try:
        value, pos = _literal(text, _skip(text, 0), 0)
    except (ValueError, TypeError) as e:  # a bad escape, an unhashable key
        raise VerifyError("uota.cfg: %s" % e)
    if _skip(text, pos) != len(text):
        raise VerifyError("uota.cfg: unexpected text at offset %d" % pos)
    if not isinstance(value, dict):
        raise VerifyError("uota.cfg must be a dict")
    return value


def _skip(text, pos):
    # whitespace and comments
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "#":
            while pos < n and text[pos] != "\n":
                pos += 1
        elif c in " \t\r\n":
            pos += 1
        else:
            break
    return pos


_CLOSE = {"{": "}", "[": "]", "(": ")"}
_WORDS = {"True": True, "False": False, "None": None}


def _literal(text, pos, depth):
    if pos >= len(text):
        raise VerifyError("uota.cfg: unexpected end")
    if depth > 8:
        raise VerifyError("uota.cfg: nested too deeply")
    c = text[pos]
    if c in _CLOSE:
        return _container(text, pos + 1, c, depth + 1)
    if c in "'\"":
        return _string(text, pos)
    end = pos
    while end < len(text) and (text[end].isalpha() or text[end].isdigit() or text[end] in "_.+-"):
        end += 1
    word = text[pos:end]
    if word in _WORDS:
        return _WORDS[word], end
    try:
        return (float(word) if "." in word or "e" in word else int(word)), end
    except ValueError:
        raise VerifyError("uota.cfg: not a literal at offset %d: %r" % (pos, text[pos : pos + 20]))


def _container(text, pos, opener, depth):
    items = []
    closer = _CLOSE[opener]
    comma = False
    while True:
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == closer:
            break
        key, pos = _literal(text, pos, depth)
        pos = _skip(text, pos)
        if opener == "{":
            if pos >= len(text) or text[pos] != ":":
                raise VerifyError("uota.cfg: expected ':' at offset %d" % pos)
            value, pos = _literal(text, _skip(text, pos + 1), depth)
            items.append((key, value))
            pos = _skip(text, pos)
        else:
            items.append(key)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            comma = True
        elif pos >= len(text) or text[pos] != closer:
            raise VerifyError("uota.cfg: expected ',' or %r at offset %d" % (closer, pos))
    if opener == "{":
        return dict(items), pos + 1
    if opener == "(" and len(items) == 1 and not comma:
        return items[0], pos + 1  # as in Python: (x) is x, (x,) a tuple
    return (items if opener == "[" else tuple(items)), pos + 1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _string(text, pos):
    quote = text[pos]
    out = []
    pos += 1
    while pos < len(text):
        c = text[pos]
        if c == quote:
            return "".join(out), pos + 1
        if c == "\n":
            break
        if c == "\\" and pos + 1 < len(text):
            e = text[pos + 1]
            if e == "x":
                c = chr(int(text[pos + 2 : pos + 4], 16))
                pos += 2
            elif e in _ESCAPES and not (e == "0" and text[pos + 2 : pos + 3].isdigit()):  # Python: octal
                c = _ESCAPES[e]
            else:
                raise VerifyError("uota.cfg: unknown escape at offset %d" % pos)
            pos += 1
        out.append(c)
        pos += 1
    raise VerifyError("uota.cfg: unterminated string")


def _finish_rename(path):
    # FAT renames onto a file by removing it first: a cut or an error between the two
    # leaves the target missing and its complete new content beside it.
    if not _exists(path) and _exists(path + _TMP_SUFFIX):
        os.rename(path + _TMP_SUFFIX, path)


def _read_cfg():
    _finish_rename("uota.cfg")
    try:
        with open("uota.cfg") as f:
            text = f.read()
    except OSError:
        raise VerifyError("cannot read uota.cfg")
    return check_cfg(parse_cfg(text))


def check_cfg(cfg):
    """cfg with its paths canonical (excluded_files lower-cased), or VerifyError.

    The device's own uota.cfg and a release's pass the same checks, so that no release
    can leave a device that cannot read its configuration or update again.
    """
    for key in ("url", "tmp_filename"):
        if not isinstance(cfg.get(key), str) or not cfg[key]:
            raise VerifyError("uota.cfg: %s must be a non-empty string" % key)
    for key, kind in (("excluded_files", (list, tuple)), ("delete", (list, tuple)), ("headers", dict), ("timeout", (int, float)), ("min_rate", (int, float))):
        if key in cfg and not isinstance(cfg[key], kind):
            raise VerifyError("uota.cfg: %s has the wrong type" % key)
    if not 0 < cfg.get("timeout", 10) <= 3600 or not 0 < cfg.get("min_rate", 256) < 1 << 29:
        raise VerifyError("uota.cfg: timeout or min_rate out of range")
    try:
        _split_url(cfg["url"])
    except DownloadError as e:
        raise VerifyError("uota.cfg: %s" % e)
    _check_headers(cfg.get("headers", {}))
    tmp = _safe_path(cfg["tmp_filename"]).lower()
    if not tmp or tmp in _OWN_FILES or tmp.endswith(_TMP_SUFFIX):
        raise VerifyError("uota.cfg: tmp_filename may not be %r" % cfg["tmp_filename"])
    cfg["excluded_files"] = [entry.lower() for entry in _entries(cfg, "excluded_files")]
    cfg["delete"] = _entries(cfg, "delete")
    if not cfg["url"].endswith("/"):
        cfg["url"] += "/"
    return cfg


def _check_headers(headers):
    """Configured headers go on the request as they are: a name must be a token and a
    value printable ASCII, so that none can add a header or end the request early."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise VerifyError("uota.cfg: headers must map text to text")
        if not _plain(name, "!#$%&'*+-.^_`|~"):  # ASCII: CPython lowers "\u212a" to "k"
            raise VerifyError("uota.cfg: header name %r is not a token" % name)
        if name.lower() in _OWN_HEADERS:
            raise VerifyError("uota.cfg: header %s is uota's to send" % name)
        for c in value:
            if not (" " <= c <= "~" or c == "\t"):
                raise VerifyError("uota.cfg: header %s has a control or non-ASCII character" % name)


# ---------------------------------------------------------------- formats: latest, versions


def parse_latest(text):
    """`version;filename[;free_kB[;sha256]]` -> (version, filename, free_kb, sha256 or None)."""
    if len(text) > _LATEST_MAX + 2:
        raise VerifyError("latest is longer than %d bytes" % _LATEST_MAX)
    line = text.strip()
    if line.endswith(";"):
        line = line[:-1]
    if not line or "\n" in line or "<" in line:
        raise VerifyError("latest is not a version;filename line")
    fields = line.split(";")
    if len(fields) < 2:
        raise VerifyError("latest needs at least version;filename")
    version, filename = fields[0].strip(), fields[1].strip()
    parse_version(version)
    if not filename or not _plain(filename, "._-+~") or filename in (".", ".."):
        raise VerifyError("latest names an unsafe file: %r" % filename)  # it goes into a URL
    free_kb = 0
    if len(fields) > 2:
        kb = fields[2].strip()
        if not kb.isdigit():
            raise VerifyError("latest: free space must be a whole number of kB, not %r" % kb)
        free_kb = int(kb)
    sha = None
    if len(fields) > 3:
        sha = fields[3].strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise VerifyError("latest: the hash is not 64 hex digits")
    return version, filename, free_kb, sha


def parse_version(version):
    """(release parts, pre-release) of a version, for compare_versions; VerifyError if invalid."""
    if not version or len(version) > 64:
        raise VerifyError("invalid version %r" % version)
    for c in version:  # ASCII only: MicroPython and CPython agree on what a letter is
        if not ("0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z" or c in ".+-_"):
            raise VerifyError("invalid version %r" % version)
    release = version.split("+")[0]  # build metadata does not order versions
    cut = len(release)
    for sep in "-_":
        i = release.find(sep)
        if 0 <= i < cut:
            cut = i
    release, pre = release[:cut], release[cut + 1 :]
    parts = [_natural(p) for p in release.split(".")]
    # a release sorts after its pre-releases
    return parts, (1,) if not pre else (0, [_natural(p) for p in pre.split(".")])


_ZERO = [(2, 0), (1,)]


def _natural(part):
    # "rc10" -> [(0,'rc'), (2,10), (1,)]: digit runs compare as numbers, and numbers never
    # lose to letters: a run of letters sorts below the part's end (1,), a number above it.
    # So 1.0a < 1.0 < 1.0.1 and v1 < 0.1; each key's first item keeps int from str.
    out = []
    i = 0
    while i < len(part):
        j = i
        digits = part[i].isdigit()
        while j < len(part) and part[j].isdigit() == digits:
            j += 1
        out.append((2, int(part[i:j])) if digits else (0, part[i:j]))
        i = j
    if not out:
        out.append((2, 0))
    out.append((1,))
    return out


def compare_versions(a, b):
    (pa, ra), (pb, rb) = parse_version(a), parse_version(b)
    for i in range(max(len(pa), len(pb))):  # a missing part is a 0: 1 == 1.0, 1.0a < 1
        x = pa[i] if i < len(pa) else _ZERO
        y = pb[i] if i < len(pb) else _ZERO
        if x != y:
            return 1 if x > y else -1
    return (ra > rb) - (ra < rb)


def _read_version():
    _finish_rename("version")
    try:
        with open("version") as f:
            return f.read().strip()
    except OSError:
        return None


# ---------------------------------------------------------------- HTTP


def _plain(text, extra):
    """Whether text holds only ASCII letters, digits and the characters of extra."""
    for c in text:
        if not ("0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z" or c in extra):
            return False
    return True


def _split_url(url):
    """(scheme, host in lower case, port, path) of an http(s) URL that can go into a
    request as it is: printable ASCII without space, a plain host (no user@). Else
    DownloadError."""
    for c in url:
        if not "!" <= c <= "~":
            raise DownloadError("unsafe URL %r" % url)
    if url.startswith("https://"):
        scheme, rest, port = "https", url[8:], 443
    elif url.startswith("http://"):
        scheme, rest, port = "http", url[7:], 80
    else:
        raise DownloadError("unsupported URL %r" % url)
    host, _, path = rest.partition("/")
    if ":" in host:
        host, _, p = host.partition(":")
        if not p.isdigit() or int(p) > 65535:
            raise DownloadError("bad port in URL %r" % url)
        port = int(p)
    if not host or not _plain(host, ".-[]:"):
        raise DownloadError("bad host in URL %r" % url)
    return scheme, host.lower(), port, "/" + path


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


def _number(buf, start, end, base):
    """The number written at buf[start:end] (leading spaces, then digits), or -1."""
    value = -1
    for i in range(start, end):
        c = buf[i] | 0x20  # lower-case hex letters; digits are unchanged
        digit = c - 48 if 48 <= c <= 57 else c - 87 if 97 <= c <= 102 else 99
        if digit < base:
            value = (value if value > 0 else 0) * base + digit
        elif value >= 0 or c != 32:
            break  # the end of the digits: ';' extensions, NUL or space after them
    return value


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


def _check_pin(sock, pin):
    """Compare the pin with the server key: ucertpin's form or the standard SPKI SHA-256."""
    if isinstance(pin, bytes):
        pin = pin.decode()
    pin = pin.lower()
    cert = sock.getpeercert(True)
    if not cert:
        raise VerifyError(_PIN_FAILED + " (no peer certificate)")
    spki, key = _public_key(memoryview(cert))
    for part in (key, spki):
        h = _sha256()
        h.update(part)
        if _hex(h.digest()) == pin:
            return
    raise VerifyError(_PIN_FAILED)


def _der(buf, pos, end):
    # (tag, start of contents, end) of the DER element at pos, which must end by `end`.
    # DER only: a definite length, in long form only from 128 on, in 1 to 4 bytes with no
    # leading zero. Anything else raises IndexError, as running off the buffer does.
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        count, n = n & 0x7F, 0
        if not 0 < count < 5 or not buf[pos]:  # 0x80 is BER's indefinite length
            raise IndexError
        for _ in range(count):
            n = n << 8 | buf[pos]
            pos += 1
        if n < 0x80:
            raise IndexError
    n += pos
    if n > end:
        raise IndexError
    return tag, pos, n


def _public_key(cert):
    """(whole SubjectPublicKeyInfo, subjectPublicKey BIT STRING contents) of a DER certificate.

    Strict: every field at its RFC 5280 position, so that nothing else can pass for the key."""
    try:
        tag, pos, end = _der(cert, 0, len(cert))  # Certificate
        if tag != 0x30 or end != len(cert):
            raise IndexError
        tag, pos, tbs_end = _der(cert, pos, end)  # tbsCertificate
        tag2, _, sig = _der(cert, tbs_end, end)  # signatureAlgorithm
        tag3, _, sig = _der(cert, sig, end)  # signatureValue
        if tag != 0x30 or tag2 != 0x30 or tag3 != 0x03 or sig != end:
            raise IndexError
        if cert[pos] == 0xA0:  # [0] EXPLICIT version
            _, _, pos = _der(cert, pos, tbs_end)
        for want in b"\x02\x30\x30\x30\x30\x30":  # serial, signature, issuer, validity, subject, SPKI
            spki = pos
            tag, inner, pos = _der(cert, pos, tbs_end)
            if tag != want:
                raise IndexError
        tag, _, inner = _der(cert, inner, pos)  # algorithm
        tag2, bits, end = _der(cert, inner, pos)  # subjectPublicKey
        if tag != 0x30 or tag2 != 0x03 or end != pos:
            raise IndexError
        key = cert[spki:pos], cert[bits:end]
        last = 0
        while pos < tbs_end:  # optional [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions
            tag, _, pos = _der(cert, pos, tbs_end)
            if tag not in (0x81, 0xA1, 0x82, 0xA2, 0xA3) or tag & 3 <= last:
                raise IndexError
            last = tag & 3
        return key
    except IndexError:
        raise VerifyError(_PIN_FAILED + " (unreadable certificate)")


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


# ---------------------------------------------------------------- check and download


def _free_bytes():
    st = os.statvfs(".")
    # Capped below 2**30 so it stays a small int: MicroPython allocates for larger ones,
    # on every comparison in the download loop.
    return min(st[0] * st[3], 0x3FFFFFFF)


def _copy(src, buf, dest, hasher=None, limit=-1, why=""):
    """Copy src to dest through buf (readinto); return the byte count, at most limit
    (VerifyError "the archive is larger than <why>" beyond it) when limit >= 0."""
    total = 0
    while True:
        n = src.readinto(buf)
        if not n:
            return total
        chunk = buf if n == len(buf) else buf[:n]
        total += n
        if 0 <= limit < total:
            raise VerifyError("the archive is larger than " + why)
        if hasher:
            hasher.update(chunk)
        dest(chunk)


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


# ---------------------------------------------------------------- state file


def _write_atomic(path, text):
    tmp = path + _TMP_SUFFIX
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # atomic on littlefs; FAT removes then renames: recover() mends


def _write_state(phase, version, size, sha, archive, excluded):
    lines = ["%s;%s;%d;%s;%s" % (phase, version, size, sha, archive)]
    lines.extend(excluded)
    lines.append("end\n")
    _write_atomic(_STATE, "\n".join(lines))


def _read_state():
    """The state record, or None. A half-replaced one (FAT) is finished first."""
    if not _exists(_STATE) and _exists(_STATE + _TMP_SUFFIX):
        if _state_from(_STATE + _TMP_SUFFIX):
            os.rename(_STATE + _TMP_SUFFIX, _STATE)
    _remove(_STATE + _TMP_SUFFIX)
    return _state_from(_STATE)


def _state_from(path):
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    if len(lines) < 3 or lines[-2] != "end":
        return None
    fields = lines[0].split(";")
    if len(fields) != 5 or not fields[2].isdigit():
        return None
    return fields[0], fields[1], int(fields[2]), fields[3], fields[4], lines[1:-2]


def _clear_state(state):
    _remove(state[4])
    _remove(_STATE)


# ---------------------------------------------------------------- the archive: tar in gzip


def window_bits(header):
    """The deflate window an archive was made with: gzip FEXTRA subfield "uw", else 15.

    A release built with a small window can be unpacked with that much RAM; a plain
    `tar -czf` archive says nothing and needs the full 32 KB.
    """
    n = len(header)
    if n < 12 or header[0] != 0x1F or header[1] != 0x8B or not header[3] & 4:
        return 15
    end = min(12 + (header[10] | header[11] << 8), n)
    pos = 12
    while pos + 4 <= end:
        size = header[pos + 2] | header[pos + 3] << 8
        if header[pos] == 0x75 and header[pos + 1] == 0x77 and size == 1 and pos + 4 < end:
            bits = header[pos + 4]
            if 9 <= bits <= 15:
                return bits
        pos += 4 + size
    return 15


class _Tar:
    """Members of a .tar.gz, read through one 512-byte view of the shared buffer."""

    def __init__(self, path, buf):
        self.f = open(path, "rb")
        self.buf = buf = memoryview(buf)  # sliced without copying
        self.block = buf[:512]
        try:
            self.bits = window_bits(buf[: self.f.readinto(buf[:64])])
            self.f.seek(0)
            self.gz = _gunzip(self.f, self.bits)
        except (OSError, ValueError, EOFError, MemoryError):  # MicroPython < 1.21 reads the header here
            self.f.close()
            raise VerifyError("archive is not a gzip file, or no RAM for its window")
        self.left = 0  # unread data of the current member
        self.pad = 0
        self.count = 0
        self.is_dir = False

    def close(self):
        self.f.close()

    def _fill(self, view):
        n = 0
        while n < len(view):
            got = self._read(view if n == 0 else view[n:])
            if not got:
                raise VerifyError("archive is truncated")
            n += got

    def _read(self, view):
        try:
            return self.gz.readinto(view)
        except (OSError, ValueError):  # what MicroPython's decompressors raise on corrupt data
            raise VerifyError("archive is not a valid gzip file")
        except EOFError:  # ... and on a gzip stream cut short
            raise VerifyError("archive is truncated")
        except MemoryError:  # deflate allocates its window at the first read
            raise VerifyError(
                "not enough RAM for the %d-byte window this archive needs: build the release "
                "with a smaller uota build --window-bits than %d" % (1 << self.bits, self.bits)
            )

    def readinto(self, buf):
        if self.left <= 0:
            return 0
        view = buf if self.left >= len(buf) else buf[: self.left]
        self._fill(view)
        self.left -= len(view)
        return len(view)

    def _skip_rest(self):
        self.left += self.pad
        self.pad = 0
        while self.left > 0:
            n = min(self.left, 512)
            self._fill(self.block if n == 512 else self.block[:n])
            self.left -= n

    def next(self):
        """The next member's path (its kind in is_dir, its size in left), or None at the end."""
        name = None
        size = None
        while True:
            self._skip_rest()
            self._fill(self.block)
            if not any(self.block):
                self._finish()
                return None
            self.count += 1
            if self.count > _MEMBERS_MAX:
                raise VerifyError("archive has more than %d members" % _MEMBERS_MAX)
            kind, member_size, header_name = self._header()
            self.left = member_size
            self.pad = -member_size % 512
            if kind in "xgL":  # pax records or a GNU long name for the next member
                if member_size > _SMALL_MEMBER_MAX:
                    raise VerifyError("archive has an oversized extended header")
                data = self._read_small(member_size)
                if kind == "L":
                    name = _text(data, 0, len(data))
                else:
                    name, size = _pax(data, name, size)
                continue
            if size is not None:
                self.left = size
                self.pad = -size % 512
            self.is_dir = kind == "5"
            return _safe_path(name or header_name)

    def _read_small(self, size):
        data = bytearray(size)
        self._fill(memoryview(data))
        self.left = 0
        return bytes(data)

    def _header(self):
        b = self.block
        total = sum(b) + 8 * 32  # the checksum field counts as spaces
        for i in range(148, 156):
            total -= b[i]
        if _number(b, 148, 156, 8) != total:
            raise VerifyError("archive has a corrupt tar header")
        if b[124] & 0x80:
            raise VerifyError("archive member too large")
        size = max(_number(b, 124, 136, 8), 0)
        name = _text(b, 0, 100)
        if b[345] and b[257] == 117 and b[262] == 0:  # POSIX "ustar\0": a prefix field
            name = _text(b, 345, 500) + "/" + name
        kind = chr(b[156]) if b[156] else "0"
        if kind not in "05xgL":
            raise VerifyError("archive member %r is not a regular file or directory" % name)
        return kind, size, name

    def _finish(self):
        # Read the gzip stream to its end so that its CRC is checked.
        while self._read(self.buf):
            pass


def _text(buf, start, end):
    # a NUL-terminated tar header field as text
    stop = start
    while stop < end and buf[stop]:
        stop += 1
    try:
        return str(memoryview(buf)[start:stop], "utf-8")
    except ValueError:  # also for GNU long names, read outside _header
        raise VerifyError("archive has a member name that is not UTF-8")


def _pax(data, name, size):
    # "<len> key=value\n" records; only path and size matter here
    pos = 0
    try:
        while pos < len(data):
            space = data.index(b" ", pos)
            end = pos + int(data[pos:space])
            if end <= space:  # a length of 0 (or less) would read the same record forever
                raise ValueError
            key, _, value = bytes(data[space + 1 : end - 1]).partition(b"=")
            if key == b"path":
                name = value.decode()
            elif key == b"size":
                size = int(value)
                if size < 0:  # would skew the free-space estimate and the stream position
                    raise ValueError
            pos = end
    except ValueError:
        raise VerifyError("archive has a corrupt pax header")
    return name, size


def _safe_path(name):
    """name in the one canonical form of a path, "" for the root; else VerifyError.

    Canonical: printable ASCII components joined by single '/', none empty, '.' or '..',
    none starting with a space or ending with a dot or a space (FAT drops those), none
    holding a character FAT refuses or '~' before a digit (a FAT short-name alias), none
    too long to take the temporary suffix. Tar's leading './' and trailing '/' are
    dropped. Paths are compared lower-cased: FAT ignores case.
    """
    if name.startswith("./"):
        name = name[2:]
    if name.endswith("/"):
        name = name[:-1]
    if name in ("", "."):
        return ""
    if len(name) > _NAME_MAX:
        raise VerifyError("unsafe path %r..." % name[:32])
    prev = "/"
    run = 0  # length of the component so far
    for c in name:
        if c == "/":
            if prev in "/. ":
                break
            run = 0
        else:
            run += 1
            if c < " " or c > "~" or c in _FAT_REFUSES or run > _COMPONENT_MAX:
                break
            if c == " " and prev == "/" or prev == "~" and "0" <= c <= "9":
                break
        prev = c
    else:
        if prev not in "/. ":
            return name
    raise VerifyError("unsafe path %r" % name)


def _is_link(path):
    # Only CPython's os has lstat: MicroPython's filesystems have no links.
    try:
        return os.lstat(path)[0] & 0xF000 == 0xA000
    except (AttributeError, OSError):
        return False


def _excluded(key, excluded):
    """Whether the lower-cased path key is an excluded entry or under one."""
    for i in range(len(excluded)):  # indexing: a list iterator would be allocated per member
        entry = excluded[i]
        if key.startswith(entry) and (len(key) == len(entry) or key[len(entry)] == "/"):
            return True
    return False


def _new_parent(path, known):
    """path's directory, when it is not `known` (the one the previous member was in)."""
    cut = path.rfind("/")
    if cut <= 0 or (cut == len(known) and path.startswith(known)):
        return None
    return path[:cut]


def _parents(path):
    # each directory on the way to path, and path itself: "a/b" -> "a", "a/b"
    slash = path.find("/")
    while slash > 0:
        yield path[:slash]
        slash = path.find("/", slash + 1)
    yield path


def _entries(cfg, key):
    """cfg[key] as canonical paths, none of them the root."""
    out = []
    for entry in cfg.get(key, ()):
        if not isinstance(entry, str) or not _safe_path(entry):
            raise VerifyError("uota.cfg: %s entries must be paths below the root" % key)
        out.append(_safe_path(entry))
    return out


# ---------------------------------------------------------------- verify and install


def _validate(state, cfg, buf):
    """One pass over the archive before anything is written: everything that could make
    the install fail or reach what it must not (names, kinds, sizes, space, the release's
    uota.cfg) is checked here.

    Returns (new uota.cfg text or None, delete list).
    """
    version, archive, excluded = state[1], state[4], state[5]
    protected = (archive.lower(), _STATE)  # compared lower-cased, as FAT finds names
    new_cfg = None
    bsize = os.statvfs(".")[0]
    free = _free_bytes()
    growth = peak = 0
    checked = ""
    # Hashes of the lower-cased paths the archive makes files and folders (one path may not
    # be both), and of the folders already counted. A collision refuses a good archive,
    # which is safe; whole names would cost more RAM.
    files, folders = set(), set()
    tar = _Tar(archive, buf)
    try:
        while True:
            path = tar.next()
            if path is None:
                break
            if not path:
                continue  # the root
            is_dir, size = tar.is_dir, tar.left
            key = path.lower()
            if key in protected or key.endswith(_TMP_SUFFIX) or key in _OWN_FILES and key != path:
                raise VerifyError("archive would overwrite %r" % path)
            if is_dir and size:
                raise VerifyError("archive has directory %r with data" % path)
            if path == "version":
                if size > 64 or tar._read_small(size).decode().strip() != version:
                    raise VerifyError("the archive's version file does not say %s" % version)
                continue
            if _excluded(key, excluded):
                continue
            parent = _new_parent(path, checked)
            if parent:
                for step in _parents(parent):  # each must be a directory, or be made one
                    growth += _new_folder(step, files, folders, bsize)
                checked = parent
            if is_dir:
                growth += _new_folder(path, files, folders, bsize)
                continue
            if hash(key) in folders:
                raise VerifyError("archive has %r as both a file and a folder" % path)
            files.add(hash(key))
            if len(files) + len(folders) > _PATHS_MAX:
                raise VerifyError("archive names more than %d paths" % _PATHS_MAX)
            if path == "uota.cfg":
                if size > _SMALL_MEMBER_MAX:
                    raise VerifyError("the archive's uota.cfg is too large")
                new_cfg = tar._read_small(size).decode()
                check_cfg(parse_cfg(new_cfg))
            st = _stat(path)
            if _is_dir(st):
                raise VerifyError("archive has file %r where the device has a directory" % path)
            old = st[6] if st else 0
            blocks = (size + bsize - 1) // bsize * bsize
            peak = max(peak, growth + blocks + bsize)
            growth += blocks - (old + bsize - 1) // bsize * bsize
            if peak > free:  # refuse a decompression bomb at its first oversized member
                raise VerifyError("the release needs %d kB more than the %d kB free" % ((peak - free + 1023) // 1024, free // 1024))
    except ValueError:  # text members that are not UTF-8
        raise VerifyError("the archive's version or uota.cfg is not text")
    except MemoryError:
        raise VerifyError("not enough RAM to check the archive")
    finally:
        tar.close()
    delete = check_cfg(parse_cfg(new_cfg))["delete"] if new_cfg else cfg["delete"]
    kept = protected + _OWN_FILES + tuple(excluded)
    for entry in delete:
        key = entry.lower()
        for name in kept:  # neither the entry, nor a folder holding it, nor one under it
            if _excluded(key, (name,)) or _excluded(name, (key,)):
                raise VerifyError("uota.cfg: delete may not name %r" % entry)
        for step in _parents(entry):
            if step != entry and _is_link(step):
                raise VerifyError("uota.cfg: delete may not reach through the link %r" % step)
    return new_cfg, delete


def _new_folder(path, files, folders, bsize):
    """The flash a folder the archive makes or uses costs (none when it exists or was
    counted already); VerifyError where the device or the archive has a file or a link."""
    h = hash(path.lower())
    if h in folders:
        return 0
    if h in files:
        raise VerifyError("archive has %r as both a file and a folder" % path)
    folders.add(h)
    st = _stat(path)
    if st is None:
        return 2 * bsize
    if not _is_dir(st) or _is_link(path):
        raise VerifyError("archive puts %r where the device has a file or a link" % path)
    return 0


def _makedirs(path):
    for step in _parents(path):
        if not _is_dir(_stat(step)):
            os.mkdir(step)


def _write_member(tar, path, buf):
    tmp = path + _TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            _copy(tar, buf, f.write)
        os.rename(tmp, path)  # the file is always its old or its new content
    except Exception:  # not a power cut: leave no temporary file behind
        try:
            _finish_rename(path)
        except OSError:
            pass
        _remove(tmp)
        raise


def _install(state, cfg, quiet):
    """Validate, then apply. A refused archive changes nothing and is deleted.

    An install that fails all the same, for any reason but a power cut (which stops the
    code: recover() finishes that), is tried once more by the next recover(); failing
    again, it deletes the archive and remembers the release as failed, so that the device
    stops retrying it and takes the next release.
    """
    buf = memoryview(bytearray(_CHUNK))
    try:
        plan = _validate(state, cfg, buf)
    except VerifyError:
        _clear_state(state)
        raise
    _collect()  # the first pass's gzip window
    try:
        _apply(state, plan, buf, quiet)
    except Exception:
        if state[0] == "retry":
            _remove(state[4])
            _write_state("failed", *state[1:])
        else:
            _write_state("retry", *state[1:])
        raise


def _apply(state, plan, buf, quiet):
    new_cfg, delete = plan
    version, excluded = state[1], state[5]
    made = ""
    tar = _Tar(state[4], buf)
    try:
        path = tar.next()  # the window is allocated now, while nothing has changed yet
        _write_state("retry" if state[0] == "retry" else "installing", *state[1:])
        if _read_version() == version:
            _remove("version")  # a reinstall: only the new version file may commit it
        while path is not None:
            if not (path in ("", "version", "uota.cfg") or _excluded(path.lower(), excluded)):
                folder = path if tar.is_dir else _new_parent(path, made)
                if folder:
                    _makedirs(folder)  # also when the archive has no directory entries
                    made = folder
                if not tar.is_dir:
                    _write_member(tar, path, buf)
                _collect()
            path = tar.next()
    finally:
        tar.close()
    if new_cfg is not None:
        _write_atomic("uota.cfg", new_cfg)
    for entry in delete:
        _remove_tree(entry)
    _write_atomic("version", version)  # the commit point
    _clear_state(state)
    if not quiet:
        _log("info", "installed version %s" % version)


def _remove_tree(path):
    # a link is removed, never followed
    if _is_link(path) or not _is_dir(_stat(path)):
        _remove(path)
        return
    for entry in os.listdir(path):
        _remove_tree(path + "/" + entry)
    os.rmdir(path)


def _recover(cfg, quiet):
    """Finish an interrupted install; True when one was completed."""
    state = _read_state()
    if not state or state[0] not in ("installing", "retry"):
        return False
    if _read_version() == state[1]:  # committed: only the clean-up was cut short
        _clear_state(state)
        return True
    if not _exists(state[4]):
        _remove(_STATE)
        raise VerifyError("an install of %s was interrupted and its archive is gone" % state[1])
    if not quiet:
        _log("info", "finishing the install of %s" % state[1])
    _install(state, cfg, quiet)
    return True


# ---------------------------------------------------------------- public API


_FAILURES = (UotaError, OSError, ValueError, MemoryError)  # built once: a full heap may raise here


def _public(action, quiet, a=None, b=None):
    # Closures and argument tuples would be allocated before the try: a nearly full heap
    # must still end in False, not in a MemoryError.
    try:
        return action(quiet, a, b)
    except _FAILURES as e:
        gc.collect()
        try:
            _log("error", "uota: %s" % (e,))
        except MemoryError:
            pass
        return False
    finally:
        gc.collect()


def check_for_updates(version_check=True, quiet=False, pubkey_hash=b""):
    """Download and verify a newer release; True when it is ready to install."""
    return _public(_check, quiet, version_check, pubkey_hash)


def _check(quiet, version_check, pubkey_hash):
    cfg = _read_cfg()
    _recover(cfg, quiet)
    text = _fetch_small(cfg["url"] + "latest", cfg, pubkey_hash, _LATEST_MAX)
    try:
        text = text.decode()
    except ValueError:
        raise VerifyError("latest is not text")
    version, filename, free_kb, sha = parse_latest(text)
    if version_check:
        current = _read_version()
        if current is None:
            raise VerifyError("no version file on the device")
        if compare_versions(version, current) <= 0:
            if not quiet:
                _log("info", "version %s is the newest" % current)
            return False
    archive, excluded = cfg["tmp_filename"], cfg["excluded_files"]
    state = _read_state()
    if state and state[0] == "failed" and state[1] == version and (not sha or state[3] == sha):
        raise VerifyError("release %s failed to install: waiting for another" % version)
    st = _stat(archive)
    offset = 0
    if state and state[1] == version and st and (state[3] == sha or not sha and state[0] == "ready"):
        if state[0] == "ready" and st[6] == state[2]:
            return True  # downloaded and verified in an earlier boot
        if state[0] == "partial":
            offset = st[6]
    if not offset:
        _remove(_STATE)
    if free_kb * 1024 > _free_bytes() + offset:
        raise VerifyError("not enough free space: the release needs %d kB, %d kB free" % (free_kb, _free_bytes() // 1024))
    if not quiet:
        _log("info", "new version %s is available%s" % (version, " (resuming at byte %d)" % offset if offset else ""))
    if sha:  # a download cut short can be resumed, and checked against the hash
        _write_state("partial", version, 0, sha, archive, excluded)
    size, digest = _download(cfg["url"] + filename, archive, cfg, pubkey_hash, sha, offset, free_kb)
    _write_state("ready", version, size, digest, archive, excluded)
    return True


def install_new_firmware(quiet=False):
    """Install the release that check_for_updates() downloaded; True when done."""
    return _public(_install_downloaded, quiet)


def _install_downloaded(quiet, _a, _b):
    cfg = _read_cfg()
    if _recover(cfg, quiet):
        return True
    state = _read_state()
    if not state or state[0] != "ready":
        raise VerifyError("no verified download to install")
    if not _exists(state[4]) or os.stat(state[4])[6] != state[2]:
        _clear_state(state)
        raise VerifyError("the downloaded archive is missing or incomplete")
    _install(state, cfg, quiet)
    return True


def recover(quiet=False):
    """Call first in boot.py: finishes an install a reset interrupted. Cheap otherwise."""
    if not _exists(_STATE) and not _exists(_STATE + _TMP_SUFFIX):
        return False
    return _public(_recover_now, quiet)


def _recover_now(quiet, _a, _b):
    return _recover(_read_cfg(), quiet)
