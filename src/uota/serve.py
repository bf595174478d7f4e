"""`uota serve`: a small static HTTP(S) server for a release folder.

Good enough to update devices on a bench and to test against: it serves the
regular files inside DIST and nothing else (no listings, no hidden files,
no path or symlink leading outside DIST: all 404), answers GET and HEAD with
`Content-Length`, `ETag`, `Last-Modified` and a Content-Type
(`application/gzip` for archives, `text/plain` for `latest` and the index
of deltas, which also get `Cache-Control: no-cache`), honours one `Range` (206, or 416 with
``Content-Range: bytes */SIZE``; several ranges get the whole file),
`If-Range`, `If-None-Match` and `If-Modified-Since` (304), and closes the
connection after each answer.

In-process use (tests, ``uota demo``)::

    server = start_server("dist")          # port 0: a free port
    fetch(server.url + "latest")
    server.shutdown()
"""

import contextlib
import datetime
import email.utils
import ipaddress
import os
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from .delta import INDEX_SUFFIX
from .errors import CommandError
from .pin import PIN_FORMS, load_certificate_file, pins_for_certificate

# A silent client must not hold a handler thread (or a TLS handshake) forever.
_CLIENT_TIMEOUT = 30
_COPY_CHUNK = 64 * 1024
_CONTENT_TYPES = {".tar.gz": "application/gzip", ".tgz": "application/gzip", ".gz": "application/gzip"}
_LATEST_FILE = "latest"
_UNSATISFIABLE = "unsatisfiable"


class ReleaseServer(ThreadingHTTPServer):
    """A server for one release folder, running in a background thread once started."""

    daemon_threads = True

    def __init__(self, dist, host, port, tls_context=None, log=None):
        self.dist = Path(dist).resolve()
        self.tls_context = tls_context
        self.log = log
        self._thread = None
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _ReleaseHandler)

    def server_bind(self):
        # HTTPServer.server_bind looks the host up in DNS (getfqdn); nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        if ":" in host:
            host = "[{}]".format(host)
        scheme = "https" if self.tls_context else "http"
        return "{}://{}:{}/".format(scheme, host, self.server_port)

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, name="uota-serve", daemon=True)
        self._thread.start()

    def wait(self):
        """Block until `shutdown` (from another thread) or KeyboardInterrupt."""
        self._thread.join()

    def shutdown(self):
        """Stop serving, close the listening socket and join the thread."""
        super().shutdown()
        self.server_close()
        self._thread.join()

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow client cannot stall accept() for everyone else.
        if self.tls_context is None:
            return super().finish_request(request, client_address)
        request.settimeout(_CLIENT_TIMEOUT)
        try:
            tls_request = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.log_line("{} - TLS handshake failed: {}".format(client_address[0], error))
            return
        try:
            super().finish_request(tls_request, client_address)
        finally:
            self.shutdown_request(tls_request)

    def log_line(self, line):
        if self.log is not None:
            self.log(line)

    def resolve(self, request_target):
        """The regular file inside `dist` that a request target names, or None."""
        raw_path = request_target.split("?", 1)[0].split("#", 1)[0]
        try:
            path = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            return None
        parts = [part for part in path.split("/") if part]
        if "\0" in path or "\\" in path or any(part.startswith(".") for part in parts):
            return None  # `.`, `..`, hidden and temporary files
        try:
            candidate = self.dist.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None  # e.g. a symlink leading outside DIST
        return candidate


class _ReleaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uota-serve"
    timeout = _CLIENT_TIMEOUT

    def do_GET(self):
        self._serve(send_body=True)

    def do_HEAD(self):
        self._serve(send_body=False)

    def log_message(self, format, *args):
        self.server.log_line("%s - - [%s] %s" % (self.address_string(), self.log_date_time_string(), format % args))

    def _serve(self, send_body):
        self.close_connection = True
        path = self.server.resolve(self.path)
        if path is None:
            return self._send_not_found(send_body)
        try:
            release_file = open(path, "rb")
        except OSError:
            return self._send_not_found(send_body)
        with release_file:
            status = os.fstat(release_file.fileno())
            size = status.st_size
            etag = '"{:x}-{:x}"'.format(status.st_mtime_ns, size)
            last_modified = email.utils.formatdate(status.st_mtime, usegmt=True)
            if self._not_modified(etag, status.st_mtime):
                self.send_response(304)
                self._send_validators(path, etag, last_modified)
                self.send_header("Connection", "close")
                return self.end_headers()
            byte_range = self._requested_range(size, etag, last_modified)
            if byte_range == _UNSATISFIABLE:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */{}".format(size))
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                return self.end_headers()
            first, last = byte_range or (0, size - 1)
            self.send_response(206 if byte_range else 200)
            if byte_range:
                self.send_header("Content-Range", "bytes {}-{}/{}".format(first, last, size))
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Accept-Ranges", "bytes")
            self._send_validators(path, etag, last_modified)
            self.send_header("Connection", "close")
            self.end_headers()
            if send_body:
                self._send_bytes(release_file, first, last - first + 1)

    def _send_not_found(self, send_body):
        # Not send_error(): that also logs an error line for every plain 404.
        body = b"not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_validators(self, path, etag, last_modified):
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if revalidated(path):
            self.send_header("Cache-Control", "no-cache")

    def _not_modified(self, etag, mtime):
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:  # it overrides If-Modified-Since (RFC 9110 13.2.2)
            tags = [tag.strip() for tag in if_none_match.split(",")]
            return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since is None:
            return False
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(mtime) <= since

    def _requested_range(self, size, etag, last_modified):
        range_header = self.headers.get("Range")
        if range_header is None:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range.strip() not in (etag, last_modified):
            return None  # the file changed since the client's partial copy: send it whole
        return _parse_range(range_header, size)

    def _send_bytes(self, source, offset, length):
        source.seek(offset)
        try:
            while length > 0:
                chunk = source.read(min(_COPY_CHUNK, length))
                if not chunk:
                    break  # the file shrank while being sent; the short body tells the client
                self.wfile.write(chunk)
                length -= len(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            pass  # the client went away mid-download; resuming is its business


def _parse_range(header, size):
    """(first, last) bytes for a single `Range: bytes=...`, None for the whole file, or _UNSATISFIABLE.

    Syntax this server does not handle (other units, several ranges, nonsense)
    is ignored, as RFC 9110 allows, and the whole file is sent.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (part.strip() for part in spec.partition("-"))
    if not dash:
        return None
    if not first:  # `-N`: the last N bytes
        if not last.isdigit():
            return None
        if int(last) == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - int(last)), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    first = int(first)
    if last and int(last) < first:
        return None
    last = int(last) if last else size - 1
    if first >= size:
        return _UNSATISFIABLE
    return first, min(last, size - 1)


def revalidated(path):
    """Whether a republish may change the file under the same name, so caches must
    revalidate it: `latest`, and an index of deltas, which gains a line when the release is
    built again from one more earlier archive."""
    return path.name == _LATEST_FILE or path.name.endswith(INDEX_SUFFIX)


def content_type(path):
    """The Content-Type a release file is served with (`uota publish` stores the same)."""
    if revalidated(path):
        return "text/plain; charset=utf-8"
    for suffix, content_type in _CONTENT_TYPES.items():
        if path.name.endswith(suffix):
            return content_type
    if path.suffix in (".txt", ".cfg", ".py", ".json"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def start_server(dist, host="127.0.0.1", port=0, tls=None, log=None) -> ReleaseServer:
    """Serve `dist` on host:port from a background thread; return the running server.

    Args:
        tls: None for plain HTTP, or (certificate_path, key_path) in PEM.
        log: called with one access-log line per request; None logs nothing.

    Raises:
        CommandError: DIST is not a folder, the certificate or key cannot be
            loaded, or the address cannot be listened on (e.g. port in use).
    """
    if not Path(dist).is_dir():
        raise CommandError("release folder {} does not exist or is not a folder".format(dist))
    tls_context = None
    if tls is not None:
        certificate_path, key_path = tls
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            tls_context.load_cert_chain(certificate_path, key_path)
        except (OSError, ssl.SSLError) as error:
            raise CommandError(
                "cannot load TLS certificate {} with key {}: {}".format(certificate_path, key_path, error)
            )
    try:
        server = ReleaseServer(dist, host, port, tls_context, log)
    except OSError as error:
        raise CommandError("cannot listen on {}:{}: {}".format(host, port, error.strerror or error))
    server.start()
    return server


def make_self_signed_certificate(directory, host):
    """Write a fresh P-256 key and a self-signed certificate for `host` into `directory`.

    The certificate names `host`, localhost and 127.0.0.1 (CN and
    subjectAltName). Returns (certificate_path, key_path).
    """
    # cryptography is only needed here; plain `uota serve` works without loading it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    common_name = host or "localhost"
    alternative_names = []
    for name in sorted({common_name, "localhost", "127.0.0.1"}):
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = Path(directory) / "cert.pem"
    key_path = Path(directory) / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


def add_arguments(parser):
    parser.add_argument("dist", metavar="DIST", help="release folder (as written by `uota build`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--tls-cert", metavar="C", help="serve HTTPS with this PEM certificate (needs --tls-key)")
    parser.add_argument("--tls-key", metavar="K", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--tls-self-signed", action="store_true",
        help="serve HTTPS with a throwaway self-signed certificate and print its pins",
    )


def _print_to_stderr(line):
    print(line, file=sys.stderr, flush=True)


def _stop_on_sigterm(signal_number, frame):
    raise KeyboardInterrupt


def run(args):
    """Serve a release folder over HTTP or HTTPS until interrupted."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CommandError("--tls-cert and --tls-key go together")
    if args.tls_cert and args.tls_self_signed:
        raise CommandError("use either --tls-cert/--tls-key or --tls-self-signed, not both")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)  # stop as cleanly as on Ctrl-C
    with contextlib.ExitStack() as cleanup:
        tls = None
        if args.tls_self_signed:
            directory = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="uota-tls-"))
            tls = make_self_signed_certificate(directory, args.host)
        elif args.tls_cert:
            tls = (args.tls_cert, args.tls_key)
        server = start_server(args.dist, args.host, args.port, tls, log=_print_to_stderr)
        cleanup.callback(server.shutdown)
        print("serving {} at {}".format(args.dist, server.url))
        if tls is not None:
            pins = pins_for_certificate(load_certificate_file(tls[0]))
            print("certificate {}".format(tls[0]))
            for form in PIN_FORMS:
                print("pin {:<9} {}".format(form, pins[form]))
        sys.stdout.flush()
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    return 0
