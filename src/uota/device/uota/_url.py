# The rules for what goes into a request line: uota.cfg's url and headers are checked
# with them when the file is read, and the HTTP client checks again before sending.

from ._core import DownloadError, VerifyError, _plain

_OWN_HEADERS = ("host", "connection", "range", "content-length", "transfer-encoding")


def _check_headers(headers):
    # Configured headers go on the request as they are: a name must be a token and a
    # value printable ASCII, so that none can add a header or end the request early.
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


def _split_url(url):
    # (scheme, host in lower case, port, path) of an http(s) URL that can go into a
    # request as it is: printable ASCII without space, a plain host (no user@). Else
    # DownloadError.
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
