"""`uota check`: what a device would make of a published release, for the publisher.

`check_release(url)` fetches ``URL/latest`` and the archive it names, as a
device does, and judges them with the device module's own code: `latest` with
`parse_latest`, then the download with exactly the checks a device runs on it
(`_judge_download`: every member, the release's `uota.cfg`, its `delete` list and
the url it moves devices to), on a virtual device: an empty folder holding the
archive as its download and a `uota.cfg` for URL. What depends on a device's own
flash (files already there, free space) is what an empty device with this
machine's free space would make of it; the flash a device needs is reported. The
`Report` it returns lists:

    problems   reasons a device would not install the release (exit status 1),
               among them a release uota.cfg that moves devices to a url whose
               `latest` does not offer this release or a newer one
    warnings   things that work but cost devices: no hash (nothing to verify,
               and a cut download cannot be resumed), no free-space figure,
               a server that ignores Range, no ``uota.files`` (devices keep
               what earlier releases shipped and this one does not) or one
               that does not list the archive's files as they are
    facts      latest's fields, archive size and hash, members, unpacked
               size, the deflate window the device must allocate, and the deltas
               (`delta`) that devices on earlier versions would take; a delta a
               device would refuse is a warning, as that device takes the full
               release

Failing to reach the server at all is a `CommandError`, not a problem.
"""

import hashlib
import http.client
import os
import socket
import ssl
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional
from urllib.parse import urljoin, urlsplit

from .device import uota as device
from .delta import INDEX_SUFFIX
from .device.uota import _cfg, _core, _http, _index, _latest, _signature, _tar, _verify
from .errors import CommandError
from .pin import pins_for_certificate

_TIMEOUT = 15
_REDIRECTS_MAX = _http._REDIRECTS_MAX  # as many as the device follows
_FLASH_BLOCK = 4096  # the block `uota build` rounds FREE_KB to
_LATEST_READ_MAX = 64 * 1024  # enough to see that a `latest` is too long for the device
_CHUNK = 64 * 1024
_FILES_LIST = _verify._FILES  # what `uota build` writes: SHA256HEX SIZE PATH per file
_TMP_FILENAME = "uota.tmp"  # the virtual device's download, unless the release's uota.cfg names another


@dataclass(frozen=True)
class Member:
    path: str
    is_dir: bool
    size: int
    sha256: Optional[str] = None  # of a file's data


@dataclass
class Report:
    """What `check_release` found. The release is installable when `problems` is empty."""

    url: str
    latest_line: Optional[str] = None
    version: Optional[str] = None
    filename: Optional[str] = None
    free_kb: Optional[int] = None
    sha256: Optional[str] = None  # as `latest` gives it
    size: Optional[int] = None  # as a signed `latest` gives it
    signature: Optional[str] = None  # who signed latest and until when, when keys were given
    rollout: Optional[int] = None  # the percentage of devices latest offers the release to
    archive_size: Optional[int] = None
    archive_sha256: Optional[str] = None  # as downloaded
    range_status: Optional[int] = None  # the answer to `Range: bytes=0-0`
    window_bits: Optional[int] = None
    members: List[Member] = field(default_factory=list)
    files_list: Optional[bytes] = None  # the archive's uota.files
    release_cfg: Optional[bytes] = None  # the archive's uota.cfg
    device_need: Optional[int] = None  # bytes of flash an empty device's install takes at its peak
    deltas: List[str] = field(default_factory=list)  # "from VERSION (N bytes)" for each good delta
    problems: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unpacked_size(self) -> int:
        """Bytes of flash the files take, each rounded up to a 4096-byte block."""
        return sum(-(-member.size // _FLASH_BLOCK) * _FLASH_BLOCK for member in self.members if not member.is_dir)

    @property
    def needed_kb(self) -> Optional[int]:
        """The free space the release needs: unpacked files plus the archive kept while unpacking."""
        if self.archive_size is None:
            return None
        return -(-(self.unpacked_size + self.archive_size) // 1024)


class _PinMismatch(Exception):
    pass


@dataclass(frozen=True)
class _Client:
    """How `check` asks the server, as a device would: the pin its key must match, and
    uota.cfg's headers, sent only to the origin of the release's url."""

    pin: Optional[str]
    headers: dict
    origin: tuple


def check_release(url, pin=None, progress=None, headers=None, device_cfg=None, free_kb=None, keys=None,
                  now=None) -> Report:
    """Fetch the release published at base URL `url` and judge it as a device would.

    Args:
        pin: a ucertpin or spki hex pin the https server's key must match.
        progress: called with the archive's size (None when unknown); returns a
            context manager with ``update(byte_count)``, such as a tqdm bar.
        headers: {name: value} sent with every request to the url's origin, as
            devices send uota.cfg's `headers` (for releases behind authentication).
        device_cfg: the text of the devices' uota.cfg: the virtual device that judges
            the release uses its settings (tmp_filename, excluded_files, headers), with
            `url` as its url. Without it: the release's uota.cfg's, else uota.tmp and none.
        free_kb: the flash free on the devices, in kB: a problem when the install's peak
            (what the device's check computes, on an empty device) needs more, as a device
            with that much free refuses the release.
        keys: {name: PEM text} of the public keys the devices trust: latest's signature
            is checked as a device with these keys checks it, at `now` (Unix seconds,
            default: this machine's clock).

    Raises:
        CommandError: `url` is not http(s), headers or device_cfg that a device would
            refuse, or the server cannot be reached.
    """
    base = url if url.endswith("/") else url + "/"
    try:
        parts = urlsplit(base)
    except ValueError as error:  # e.g. "http://[::1"
        raise CommandError("{!r} is not a URL: {}".format(url, error))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError("{!r} is not an http:// or https:// URL".format(url))
    settings = _device_settings(base, headers or {}, device_cfg)
    report = Report(url=base)
    client = _Client(pin and pin.strip().lower(), settings.get("headers", {}), _origin(base))
    try:
        _check(report, base, client, progress, settings if device_cfg is not None else None, keys, now)
    except _PinMismatch as mismatch:
        report.problems.append(str(mismatch))
    if free_kb is not None and report.device_need is not None and report.device_need > free_kb * 1024:
        report.problems.append("a device with {} kB free refuses the release: its install needs {} kB at its "
                               "peak".format(free_kb, -(-report.device_need // 1024)))
    return report


def _device_settings(base, headers, device_cfg):
    """The virtual device's uota.cfg as a dict (url: base), checked by the device's rules."""
    try:
        cfg = _cfg.parse_cfg(device_cfg) if device_cfg is not None else {"tmp_filename": _TMP_FILENAME}
        cfg["url"] = base
        cfg["headers"] = dict(cfg.get("headers", {}), **headers)
        _cfg.check_cfg(dict(cfg))
    except _core.UotaError as error:
        raise CommandError("the device settings would be refused: {}".format(error))
    return cfg


def _origin(url):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _check(report, base, client, progress, device_cfg, keys, now):
    status, body, answered = _get_small(base + "latest", client)
    if status != 200:
        report.problems.append("latest: {}".format(_answers(base + "latest", answered, status)))
        return
    named_signed = _judge_latest(report, body)
    if not named_signed:
        return
    if keys and not _judge_signature(report, keys, now, *named_signed):
        return
    archive_url = base + report.filename
    with tempfile.TemporaryDirectory(prefix="uota-check-") as work_dir:
        archive = Path(work_dir) / "archive"
        status, answered = _download(archive_url, client, archive, progress)
        if status != 200:
            report.problems.append("{}: {}".format(report.filename, _answers(archive_url, answered, status)))
            return
        _judge_archive(report, archive)
        _judge_on_device(report, archive, client, device_cfg)
        if "delta" in named_signed[0]:
            _judge_deltas(report, base, client, named_signed[0]["delta"], Path(work_dir) / "delta")
    report.range_status = _range_status(archive_url, client)
    if report.range_status != 206:
        report.warnings.append(
            "the server ignores Range (HTTP {} to bytes=0-0): devices cannot resume a cut "
            "download".format(report.range_status)
        )


def _judge_latest(report, body):
    """(latest's named fields, the text its signature covers), or None when a device
    refuses latest."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        report.problems.append("latest is not text")
        return None
    report.latest_line = text.strip()
    try:
        report.version, report.filename, report.free_kb, report.sha256, named, signed = _latest.parse_latest(text)
    except _core.UotaError as error:
        report.problems.append("invalid latest {!r}: {}".format(report.latest_line[:80], error))
        return None
    if "size" in named:
        report.size = int(named["size"])
    if "rollout" in named:
        report.rollout = int(named["rollout"])
    if report.sha256 is None:
        report.warnings.append("latest has no SHA-256: devices cannot verify the download, nor resume it")
    if not report.free_kb:
        report.warnings.append("latest gives no free-space figure: devices find out only at install")
    return named, signed


def _judge_deltas(report, base, client, index_sha, path):
    """The delta index latest names and each delta it lists, as a device reads them. What is
    wrong is a warning: a device then takes the full release."""
    index_url = base + report.filename + INDEX_SUFFIX
    status, body, answered = _get_small(index_url, client)
    if status != 200:
        report.warnings.append("{}: {}: devices take the full release".format(
            report.filename + INDEX_SUFFIX, _answers(index_url, answered, status)))
        return
    if hashlib.sha256(body).hexdigest() != index_sha.lower() or len(body) > _index._INDEX_MAX:
        report.warnings.append("{} does not match latest's delta= hash, or is longer than {} bytes: devices "
                               "take the full release".format(report.filename + INDEX_SUFFIX, _index._INDEX_MAX))
        return
    for line in body.decode(errors="replace").splitlines():
        try:
            from_version, name, _, sha, named, _ = _latest.parse_latest(line)
            if not sha:
                raise _core.VerifyError("it gives no SHA-256")
        except _core.UotaError as error:
            report.warnings.append("devices skip the delta line {!r}: {}".format(line[:80], error))
            continue
        problem = _judge_delta(base + name, client, path, from_version, report.version, sha, named)
        if problem:
            report.warnings.append("devices on {} take the full release: the delta {} {}".format(
                from_version, name, problem))
        else:
            report.deltas.append("from {} ({} bytes)".format(from_version, path.stat().st_size))


def _judge_delta(url, client, path, from_version, version, sha, named):
    """What makes devices on `from_version` refuse the delta at `url`, or None."""
    status, answered = _download(url, client, path, None)
    if status != 200:
        return _answers(url, answered, status)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha or int(named.get("size", len(data))) != len(data):
        return "does not match its SHA-256 or size in the index"
    try:
        with tarfile.open(path) as tar:
            description = tar.extractfile(_core._DELTA).read().decode().split("\n")[0]
            got_version = tar.extractfile("version").read().decode().strip()
    except (KeyError, AttributeError, OSError, EOFError, tarfile.TarError, UnicodeDecodeError) as error:
        return "is not a delta archive: {}".format(error)
    if description != from_version or got_version != version:
        return "goes from {} to {}, not from {} to {}".format(description, got_version, from_version, version)
    return None


def _judge_signature(report, keys, now, named, signed):
    """Check latest's signature with the device's code, as a device trusting `keys` does."""
    now = int(time.time()) if now is None else now
    try:
        _signature.check_signature(list(keys), signed, named, now, keys.get)
    except _core.VerifyError as error:
        report.problems.append("a device with these keys refuses latest: {}".format(error))
        return False
    expires = int(named.get("expires", "0"))
    report.signature = "by key {}, {}".format(
        named["sig"].partition(":")[0],
        "expires in {:.1f} days ({} UTC)".format((expires - now) / 86400, _utc(expires)) if expires
        else "never expires")
    return True


def _utc(seconds):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def _judge_archive(report, archive):
    data_hash = hashlib.sha256()
    with open(archive, "rb") as archive_file:
        for block in iter(lambda: archive_file.read(_CHUNK), b""):
            data_hash.update(block)
        archive_file.seek(0)
        report.window_bits = _tar.window_bits(archive_file.read(64))
    report.archive_size = archive.stat().st_size
    report.archive_sha256 = data_hash.hexdigest()
    if report.size is not None and report.size != report.archive_size:
        report.problems.append("{} is {} bytes, latest says {}".format(report.filename, report.archive_size, report.size))
    if report.sha256 and report.sha256 != report.archive_sha256:
        report.problems.append(
            "{} does not match latest's hash: it is {}, latest says {}".format(
                report.filename, report.archive_sha256, report.sha256
            )
        )
    try:
        version_text = _list_members(report, archive)
    except _core.VerifyError:
        return  # the device's check says why (_judge_on_device)
    _judge_files_list(report)
    if version_text is None:
        report.warnings.append("the archive has no version member: devices running the original uOTA "
                               "would keep their old version")
    if report.free_kb and report.free_kb < report.needed_kb:
        report.problems.append(
            "latest's free space {} kB is less than the {} kB the release needs "
            "(files in 4 KB blocks plus the archive)".format(report.free_kb, report.needed_kb)
        )


def _list_members(report, archive):
    """List the members with the device's tar reader; return the `version` member's text."""
    version_text = None
    buffer = memoryview(bytearray(1024))
    tar = _tar._Tar(str(archive), buffer)
    try:
        while True:
            path = tar.next()
            if path is None:
                return version_text
            if path in ("", "."):
                continue
            if tar.is_dir:
                report.members.append(Member(path, True, tar.left))
                continue
            data = _read_member(tar, buffer)
            report.members.append(Member(path, False, len(data), hashlib.sha256(data).hexdigest()))
            if path == "version":
                version_text = data.decode(errors="replace").strip()
            elif path == "uota.cfg":
                report.release_cfg = data
            elif path == _FILES_LIST:
                report.files_list = data
    finally:
        tar.close()


def _read_member(tar, buffer):
    data = bytearray()
    while True:
        got = tar.readinto(buffer)
        if not got:
            return bytes(data)
        data += buffer[:got]


def _judge_files_list(report):
    """uota.files must list each file of the archive with its size and hash, and no other."""
    if report.files_list is None:
        report.warnings.append(
            "the archive has no uota.files: devices keep the files earlier releases shipped and this one "
            "does not (uota build writes it)")
        return
    listed = set(report.files_list.decode(errors="replace").splitlines())
    shipped = {"{} {} {}".format(member.sha256, member.size, member.path)
               for member in report.members if not member.is_dir and member.path != _FILES_LIST}
    for what, lines in (("does not list", shipped - listed), ("lists what the archive does not hold", listed - shipped)):
        if lines:
            report.warnings.append("uota.files {}: {}".format(what, ", ".join(sorted(lines)[:5])))


def _judge_on_device(report, archive, client, device_cfg):
    """Run the device's own checks of a download (`_judge_download`) on a virtual device: an
    empty folder holding `archive` as its download, and a uota.cfg for the release's url:
    device_cfg, else the release's uota.cfg's settings, else uota.tmp and no excluded files."""
    root = archive.parent / "device"
    cfg = dict(device_cfg or _release_settings(report), url=report.url, headers=client.headers)
    root.mkdir()
    (root / "uota.cfg").write_text(repr(cfg))  # as written: the device's own settings are read from it
    cfg = _cfg.check_cfg(cfg)
    target = root / cfg["tmp_filename"]
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(archive, target)
    with _in_folder(root):
        try:
            _core._write_state("partial", report.version, report.archive_size, report.archive_sha256,
                               cfg["tmp_filename"], cfg["excluded_files"])
            report.device_need = device._judge_download(cfg, client.pin or "")[2]
        except _core.UotaError as error:
            report.problems.append("a device refuses the release: {}".format(error))


def _release_settings(report):
    """The settings devices installing this release have, as far as it says: its uota.cfg."""
    try:
        cfg = _cfg.parse_cfg(report.release_cfg.decode())
        _cfg.check_cfg(dict(cfg))
        return cfg
    except (AttributeError, UnicodeDecodeError, _core.UotaError):
        return {"tmp_filename": _TMP_FILENAME}


@contextmanager
def _in_folder(folder):
    """The device code works in the current folder, the device's root."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _range_status(url, client):
    response, connection = _open(url, client, {"Range": "bytes=0-0"})
    try:
        response.read()
        return response.status
    finally:
        connection.close()


def _answers(url, answered, status):
    """What answered `url` with an HTTP error: that url, or where its redirects led."""
    if answered == url:
        return "{} answers HTTP {}".format(url, status)
    return "{} answers HTTP {} (redirected from {})".format(answered, status, url)


def _get_small(url, client):
    """(status, at most _LATEST_READ_MAX bytes of the body, the url that answered)."""
    response, connection = _open(url, client)
    try:
        return response.status, response.read(_LATEST_READ_MAX), response.url
    finally:
        connection.close()


def _download(url, client, path, progress):
    """Save the body of a 200 into `path`; return (status, the url that answered)."""
    response, connection = _open(url, client)
    try:
        if response.status != 200:
            return response.status, response.url
        length = response.getheader("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with open(path, "wb") as archive_file, _progress_bar(progress, total) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                archive_file.write(block)
                bar.update(len(block))
        return 200, response.url
    except (OSError, http.client.HTTPException) as error:
        raise CommandError("download of {} from {} failed: {}".format(
            url, _host_port(response.url), _reason(error)))
    finally:
        connection.close()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def update(self, byte_count):
        pass


def _progress_bar(progress, total):
    return progress(total) if progress else _NoProgress()


def _open(url, client, headers=None):
    """GET `url`, following redirects as a device does (uota.cfg's headers only to the
    release's origin); return (response, connection)."""
    for _ in range(_REDIRECTS_MAX + 1):
        connection = _connect(url, client.pin)
        sent = dict(client.headers if _origin(url) == client.origin else {}, **(headers or {}))
        try:
            connection.request("GET", urlsplit(url).path or "/", headers=dict(sent, Connection="close"))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise CommandError("cannot fetch {} from {}: {}".format(url, _host_port(url), _reason(error)))
        location = response.getheader("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            connection.close()
            url = urljoin(url, location)
            continue
        response.url = url  # where the redirects led: what answered
        return response, connection
    raise CommandError("{} redirects more than {} times".format(url, _REDIRECTS_MAX))


def _connect(url, pin):
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as error:
        raise CommandError("invalid port in {!r}: {}".format(url, error))
    if parts.scheme == "http":
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=_TIMEOUT)
    elif parts.scheme == "https":
        # Like the device: no CA check (devices have no CA bundle); the pin is the check.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=_TIMEOUT, context=context)
    else:
        raise CommandError("{!r} redirects to an unsupported scheme".format(url))
    try:
        connection.connect()
    except (OSError, ssl.SSLError) as error:
        raise CommandError("cannot connect to {}: {}".format(_host_port(url), _reason(error)))
    if parts.scheme == "https" and pin:
        pins = pins_for_certificate(connection.sock.getpeercert(binary_form=True))
        if pin not in (pins["ucertpin"], pins["spki"]):
            connection.close()
            raise _PinMismatch(
                "{}: the server's key does not match the pin (its pins: ucertpin {}, spki {})".format(
                    parts.netloc, pins["ucertpin"], pins["spki"]
                )
            )
    return connection


def _reason(error):
    if isinstance(error, socket.timeout):
        return "timed out"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _host_port(url):
    """host:port that `url` connects to, the port given or the scheme's."""
    parts = urlsplit(url)
    host = "[{}]".format(parts.hostname) if ":" in (parts.hostname or "") else parts.hostname
    return "{}:{}".format(host, parts.port or {"http": 80, "https": 443}.get(parts.scheme))


def format_report(report) -> List[str]:
    """The report as lines of text: facts, then warnings and problems, then the verdict."""
    lines = ["latest:    {}".format(report.latest_line if report.latest_line is not None else "(not read)")]
    if report.archive_size is not None:
        lines += [
            "archive:   {} ({} bytes, sha256 {})".format(report.filename, report.archive_size, report.archive_sha256),
            "window:    {:g} KB (wbits {})".format((1 << report.window_bits) / 1024, report.window_bits),
            "members:   {}".format(len(report.members)),
        ]
        lines += ["  {}{}".format(member.path, "/" if member.is_dir else "  ({} bytes)".format(member.size))
                  for member in report.members]
        lines += [
            "unpacked:  {} kB in 4 KB blocks".format(-(-report.unpacked_size // 1024)),
            "needs:     {} kB free (latest says {} kB)".format(report.needed_kb, report.free_kb),
        ]
    if report.signature is not None:
        lines.append("signed:    {}".format(report.signature))
    if report.deltas:
        lines.append("deltas:    {}".format(", ".join(report.deltas)))
    if report.rollout is not None:
        lines.append("rollout:   offered to {} % of devices (uota rollout DIST 100: to all)".format(report.rollout))
    if report.device_need is not None:
        lines.append("install:   {} kB free at its peak on an empty device".format(-(-report.device_need // 1024)))
    if report.range_status is not None:
        lines.append("range:     HTTP {} to bytes=0-0".format(report.range_status))
    lines += ["warning: {}".format(warning) for warning in report.warnings]
    lines += ["problem: {}".format(problem) for problem in report.problems]
    if report.ok:
        lines.append("ok: a device would install {}".format(report.version))
    else:
        lines.append("refused: a device would not install this release")
    return lines


def add_arguments(parser):
    parser.add_argument("url", metavar="URL", help="base URL of the release (uota.cfg's url)")
    parser.add_argument("--pin", metavar="HASH", help="ucertpin or spki hex pin the https server's key must match")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="send this header to URL's origin, as devices send uota.cfg's headers "
                        "(repeatable; for releases behind authentication)")
    parser.add_argument("--key", action="append", default=[], metavar="KEY.pub",
                        help="a public key the devices trust (uota.cfg's keys; repeatable): latest must carry "
                        "a good, unexpired signature by one of them")
    parser.add_argument("--free-kb", type=int, metavar="KB",
                        help="the flash free on the devices: report whether such a device has room for the install")
    parser.add_argument("--cfg", metavar="FILE",
                        help="the devices' uota.cfg: judge the release as a device with these settings "
                        "(tmp_filename, excluded_files, headers) would; default: the release's own uota.cfg")


def _parse_header(text):
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise CommandError("--header {!r} is not 'Name: value'".format(text))
    return name.strip(), value.strip()


def _tqdm_progress(total):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal
    return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False, disable=None)


def run(args):
    """Fetch a published release and check it as a device would."""
    headers = dict(_parse_header(text) for text in args.header)
    device_cfg = None
    if args.cfg:
        try:
            device_cfg = Path(args.cfg).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError("cannot read {}: {}".format(args.cfg, getattr(error, "strerror", None) or error))
    keys = {}
    for path in args.key:
        try:
            keys[path] = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError("cannot read key {}: {}".format(path, getattr(error, "strerror", None) or error))
    report = check_release(args.url, args.pin, progress=_tqdm_progress, headers=headers, device_cfg=device_cfg,
                           free_kb=args.free_kb, keys=keys)
    for line in format_report(report):
        print(line)
    return 0 if report.ok else 1
