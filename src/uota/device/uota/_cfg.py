# uota.cfg: read without eval (literals only), and checked the same way for the device's
# own file and for a release's, so that no release can leave a device unable to update.

from ._core import DownloadError, VerifyError, _OWN_FILES, _TMP_SUFFIX, _finish_rename, _plain
from ._paths import _safe_path

_OWN_HEADERS = ("host", "connection", "range", "content-length", "transfer-encoding")


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


def _entries(cfg, key):
    """cfg[key] as canonical paths, none of them the root."""
    out = []
    for entry in cfg.get(key, ()):
        if not isinstance(entry, str) or not _safe_path(entry):
            raise VerifyError("uota.cfg: %s entries must be paths below the root" % key)
        out.append(_safe_path(entry))
    return out


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
