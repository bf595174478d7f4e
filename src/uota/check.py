"""`uota check`: what a device would make of a published release, for the publisher.

`check_release(url)` fetches ``URL/latest`` and the archive it names, as a
device does, and judges them with the device module's own code: `latest` with
`parse_latest`, the archive by walking it with the device's tar reader
(`_Tar`), so a name, link or corrupt header the device would refuse is refused
here too. The `Report` it returns lists:

    problems   reasons a device would not install the release (exit status 1),
               among them a release uota.cfg that moves devices to a url whose
               `latest` does not offer this release or a newer one
    warnings   things that work but cost devices: no hash (nothing to verify,
               and a cut download cannot be resumed), no free-space figure,
               a server that ignores Range, no ``uota.files`` (devices keep
               what earlier releases shipped and this one does not) or one
               that does not list the archive's files as they are
    facts      latest's fields, archive size and hash, members, unpacked
               size, the deflate window the device must allocate

Failing to reach the server at all is a `CommandError`, not a problem.
"""

import hashlib
import http.client
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional
from urllib.parse import urljoin, urlsplit

from .device.uota import _cfg, _core, _latest, _tar, _verify
from .errors import CommandError
from .pin import pins_for_certificate

_TIMEOUT = 15
_REDIRECTS_MAX = 5  # as many as the device follows
_FLASH_BLOCK = 4096  # the block `uota build` rounds FREE_KB to
_LATEST_READ_MAX = 64 * 1024  # enough to see that a `latest` is too long for the device
_VERSION_MEMBER_MAX = 64  # the device refuses a longer `version` member
_CHUNK = 64 * 1024
# Names the device refuses to let an archive overwrite, whatever its tmp_filename.
_DEVICE_STATE = "uota.state"
_DEVICE_TMP_SUFFIX = ".uota-new"
_FILES_LIST = _verify._FILES  # what `uota build` writes: SHA256HEX SIZE PATH per file


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
    archive_size: Optional[int] = None
    archive_sha256: Optional[str] = None  # as downloaded
    range_status: Optional[int] = None  # the answer to `Range: bytes=0-0`
    window_bits: Optional[int] = None
    members: List[Member] = field(default_factory=list)
    files_list: Optional[bytes] = None  # the archive's uota.files
    moves_to: Optional[str] = None  # the url the archive's uota.cfg moves devices to
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


def check_release(url, pin=None, progress=None) -> Report:
    """Fetch the release published at base URL `url` and judge it as a device would.

    Args:
        pin: a ucertpin or spki hex pin the https server's key must match.
        progress: called with the archive's size (None when unknown); returns a
            context manager with ``update(byte_count)``, such as a tqdm bar.

    Raises:
        CommandError: `url` is not http(s), or the server cannot be reached.
    """
    base = url if url.endswith("/") else url + "/"
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).hostname:
        raise CommandError("{!r} is not an http:// or https:// URL".format(url))
    report = Report(url=base)
    try:
        _check(report, base, pin and pin.strip().lower(), progress)
    except _PinMismatch as mismatch:
        report.problems.append(str(mismatch))
    return report


def _check(report, base, pin, progress):
    status, body = _get_small(base + "latest", pin)
    if status != 200:
        report.problems.append("latest: the server answers HTTP {}".format(status))
        return
    if not _judge_latest(report, body):
        return
    archive_url = base + report.filename
    with tempfile.TemporaryDirectory(prefix="uota-check-") as work_dir:
        archive = Path(work_dir) / report.filename
        status = _download(archive_url, pin, archive, progress)
        if status != 200:
            report.problems.append("{}: the server answers HTTP {}".format(report.filename, status))
            return
        _judge_archive(report, archive)
    if report.moves_to:
        _judge_new_url(report, pin)
    report.range_status = _range_status(archive_url, pin)
    if report.range_status != 206:
        report.warnings.append(
            "the server ignores Range (HTTP {} to bytes=0-0): devices cannot resume a cut "
            "download".format(report.range_status)
        )


def _judge_latest(report, body):
    try:
        text = body.decode()
    except UnicodeDecodeError:
        report.problems.append("latest is not text")
        return False
    report.latest_line = text.strip()
    try:
        report.version, report.filename, report.free_kb, report.sha256 = _latest.parse_latest(text)
    except _core.UotaError as error:
        report.problems.append("invalid latest {!r}: {}".format(report.latest_line[:80], error))
        return False
    if report.sha256 is None:
        report.warnings.append("latest has no SHA-256: devices cannot verify the download, nor resume it")
    if not report.free_kb:
        report.warnings.append("latest gives no free-space figure: devices find out only at install")
    return True


def _judge_archive(report, archive):
    data_hash = hashlib.sha256()
    with open(archive, "rb") as archive_file:
        for block in iter(lambda: archive_file.read(_CHUNK), b""):
            data_hash.update(block)
        archive_file.seek(0)
        report.window_bits = _tar.window_bits(archive_file.read(64))
    report.archive_size = archive.stat().st_size
    report.archive_sha256 = data_hash.hexdigest()
    if report.sha256 and report.sha256 != report.archive_sha256:
        report.problems.append(
            "{} does not match latest's hash: it is {}, latest says {}".format(
                report.filename, report.archive_sha256, report.sha256
            )
        )
    try:
        version_text = _walk(report, archive)
    except _core.VerifyError as error:
        report.problems.append("a device refuses the archive: {}".format(error))
        return
    _judge_files_list(report)
    if version_text is None:
        report.problems.append("the archive has no version member")
    elif version_text != report.version:
        report.problems.append(
            "the archive's version member says {!r}, latest says {!r}".format(version_text, report.version)
        )
    if report.free_kb and report.free_kb < report.needed_kb:
        report.problems.append(
            "latest's free space {} kB is less than the {} kB the release needs "
            "(files in 4 KB blocks plus the archive)".format(report.free_kb, report.needed_kb)
        )


def _walk(report, archive):
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
            if path == _DEVICE_STATE or path.endswith(_DEVICE_TMP_SUFFIX):
                report.problems.append("a device refuses the archive: it would overwrite {!r}".format(path))
            elif path == "version":
                version_text = "(a {}-byte file)".format(len(data)) if len(data) > _VERSION_MEMBER_MAX \
                    else data.decode(errors="replace").strip()
            elif path == "uota.cfg":
                _judge_cfg_member(report, data)
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


def _judge_cfg_member(report, data):
    try:
        new = _cfg.parse_cfg(data.decode())
        _cfg.check_cfg(dict(new))
    except (UnicodeDecodeError, _core.UotaError) as error:
        report.problems.append("the archive's uota.cfg would be refused: {}".format(error))
        return
    if _cfg.moves_to_http(report.url, new):
        report.problems.append("the archive's uota.cfg would be refused: {}".format(_cfg._TO_HTTP))
    elif _cfg.check_cfg(dict(new))["url"] != report.url:
        report.moves_to = _cfg.check_cfg(dict(new))["url"]


def _judge_new_url(report, pin):
    """A release that moves devices to another url is refused unless its latest there offers
    this release or a newer one (the device's rule: a device sent elsewhere must update again)."""
    why = None
    try:
        status, body = _get_small(report.moves_to + "latest", pin)
        if status != 200:
            why = "where latest fails: HTTP {}".format(status)
        else:
            served = _latest.parse_latest(body.decode())[0]
            if _latest.compare_versions(served, report.version) < 0:
                why = "which offers only {}".format(served)
    except (CommandError, _PinMismatch, UnicodeDecodeError, _core.UotaError) as error:
        why = "where latest fails: {}".format(error)
    if why:
        report.problems.append("the archive's uota.cfg would be refused: it moves updates to {}, {}".format(
            report.moves_to, why))


def _range_status(url, pin):
    response, connection = _open(url, pin, {"Range": "bytes=0-0"})
    try:
        response.read()
        return response.status
    finally:
        connection.close()


def _get_small(url, pin):
    response, connection = _open(url, pin)
    try:
        return response.status, response.read(_LATEST_READ_MAX)
    finally:
        connection.close()


def _download(url, pin, path, progress):
    response, connection = _open(url, pin)
    try:
        if response.status != 200:
            return response.status
        length = response.getheader("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with open(path, "wb") as archive_file, _progress_bar(progress, total) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                archive_file.write(block)
                bar.update(len(block))
        return 200
    except (OSError, http.client.HTTPException) as error:
        raise CommandError("download of {} failed: {}".format(url, error))
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


def _open(url, pin, headers=None):
    """GET `url`, following redirects as a device does; return (response, connection)."""
    for _ in range(_REDIRECTS_MAX + 1):
        connection = _connect(url, pin)
        try:
            connection.request("GET", urlsplit(url).path or "/", headers=dict(headers or {}, Connection="close"))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise CommandError("cannot fetch {}: {}".format(url, error))
        location = response.getheader("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            connection.close()
            url = urljoin(url, location)
            continue
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
        raise CommandError("cannot connect to {}: {}".format(parts.netloc, _reason(error)))
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
    return getattr(error, "strerror", None) or str(error)


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


def _tqdm_progress(total):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal
    return tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr, leave=False, disable=None)


def run(args):
    """Fetch a published release and check it as a device would."""
    report = check_release(args.url, args.pin, progress=_tqdm_progress)
    for line in format_report(report):
        print(line)
    return 0 if report.ok else 1
