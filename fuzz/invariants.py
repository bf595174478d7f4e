"""What every fuzzer of the device module checks: tests/test_fuzz.py (hypothesis) and the
atheris harnesses beside this file share these functions.

Each `check_*` feeds one input to the device module's own code and lets only two outcomes
through: a result, or the module's error `_core.UotaError`. Any other exception escapes and
is a defect. `install_archive` also checks that nothing is written outside the device root.
"""

import contextlib
import gzip
import hashlib
import os
import tempfile
from pathlib import Path


from uota.device import uota
from uota.device.uota import _cfg, _core, _fetch, _http, _install, _latest, _paths, _response, _tar, _url

VERSION = "1.1.0"  # what the archives' version member says
FILENAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+~")
DEVICE_CFG = "{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'fw.tmp', 'excluded_files': ['wifi.json']}"
DEVICE_FILES = {"main.py": b"old\n", "wifi.json": b"{}\n", "version": b"1.0.0\n", "uota.cfg": DEVICE_CFG.encode()}


class ByteStream:
    """A socket as the device module uses one: readinto() from the bytes given, in pieces of
    at most `piece` bytes (networks split data anywhere), and write()."""

    def __init__(self, data, piece=1 << 30):
        self.data = memoryview(bytes(data))
        self.pos = 0
        self.piece = piece

    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos, self.piece)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def write(self, data):
        return len(data)

    def close(self):
        pass


def read_response(stream):
    """(status, body) of the HTTP response in stream, read as the device reads one."""
    line = bytearray(_response._LINE_MAX)
    head = _response._read_head(stream, line)
    location = head[3]
    assert location is None or all("!" <= c <= "~" for c in location), "a Location that could change a request"
    response = _response._Response(stream, head, line)
    body = bytearray()
    buf = memoryview(bytearray(_fetch._CHUNK))  # the download's buffer
    while True:
        n = response.readinto(buf)
        if not n:
            return head[0], bytes(body)
        body += buf[:n]


def check_http(data, piece=1 << 30):
    try:
        return read_response(ByteStream(data, piece))
    except _core.UotaError:
        return None


def check_latest(text):
    try:
        version, filename, free_kb, sha, named, signed = _latest.parse_latest(text)
    except _core.UotaError:
        return None
    _latest.parse_version(version)
    assert filename and filename not in (".", "..")
    assert set(filename) <= FILENAME_CHARS, "a file name that could change the request line"
    assert isinstance(free_kb, int) and free_kb >= 0
    assert sha is None or (len(sha) == 64 and set(sha) <= set("0123456789abcdef"))
    assert named.get("size", "0").isdigit() and named.get("expires", "0").isdigit()
    assert signed is None or text.strip().startswith(signed + ";sig="), "a signature must cover all before it"
    return version, filename, free_kb, sha


class RequestSink:
    """A socket that keeps what the device writes."""

    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += data
        return len(data)


def check_request(url, headers, offset=0):
    """The request head the device sends for GET url with headers, or None when it refuses
    them (UotaError) before writing. Accepted, it is exactly the lines it means: the request
    line with a target of printable ASCII, Host, the fixed ones, one per header, no more."""
    sink = RequestSink()
    try:
        scheme, host, port, path = _url._split_url(url)
        _http._send_request(sink, host, port, path, headers, offset)
    except _core.UotaError:
        assert sink.data == b"", "wrote part of a request it refused"
        return None
    assert scheme in ("http", "https") and host and 0 <= port <= 65535
    assert sink.data.endswith(b"\r\n\r\n")
    lines = sink.data[:-4].split(b"\r\n")
    assert all(b < 128 and (b >= 32 or b == 9) and b != 127 for line in lines for b in line), "a control byte"
    method, target, version = lines[0].split(b" ")  # exactly two spaces
    assert method == b"GET" and version == b"HTTP/1.1" and target.startswith(b"/")
    assert all(33 <= b <= 126 for b in target)
    assert len(lines) == 4 + len(headers) + bool(offset), "a line more or less than meant"
    assert [line.split(b":")[0].decode() for line in lines[4 : 4 + len(headers)]] == list(headers)
    return sink.data


def check_cfg(text):
    try:
        cfg = _cfg.parse_cfg(text)
    except _core.UotaError:
        return None
    assert isinstance(cfg, dict)
    return cfg


def check_version(text):
    try:
        return _latest.parse_version(text)
    except _core.UotaError:
        return None


def fix_tar_checksums(tar):
    """tar with the checksum of each header recomputed, walking it as a reader does, so that
    mutations reach the fields behind the checksum."""
    tar = bytearray(tar)
    pos = 0
    while pos + 512 <= len(tar) and any(tar[pos : pos + 512]):
        header = tar[pos : pos + 512]
        header[148:156] = b" " * 8
        tar[pos + 148 : pos + 156] = b"%06o\0 " % sum(header)
        size = _core._number(header, 124, 136, 8)
        pos += 512 + (max(size, 0) + 511) // 512 * 512
    return bytes(tar)


@contextlib.contextmanager
def _device_folder():
    """A device root inside an otherwise empty folder, as the working directory."""
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="uota-fuzz-") as base:
        root = Path(base) / "root"
        root.mkdir()
        for name, data in DEVICE_FILES.items():
            (root / name).write_bytes(data)
        os.chdir(root)
        try:
            yield Path(base), root
        finally:
            os.chdir(old_cwd)


def tree(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(Path(folder).rglob("*"))
    }


def install_archive(archive):
    """Install the bytes of a .tar.gz on a fresh device root as install_new_firmware() does.

    Returns the root's files after a complete install, or None when the archive was refused;
    a refused archive leaves the root as it was, less the archive. Whatever the archive,
    the excluded file keeps its bytes, every path written is in the canonical form, nothing
    fails after the check (all is checked before the first write), and the device
    converges: recover() afterwards has nothing to finish.
    """
    with _device_folder() as (base, root):
        before = tree(root)
        (root / "fw.tmp").write_bytes(archive)
        cfg = _cfg._read_cfg()
        sha = hashlib.sha256(archive).hexdigest()
        _core._write_state("partial", VERSION, len(archive), sha, "fw.tmp", cfg["excluded_files"])
        try:  # as check_for_updates() checks the download, then install_new_firmware()
            _, delete, need, new_cfg = uota._judge_download(cfg, "")
        except _core.UotaError:
            os.remove("fw.tmp")
            os.remove("uota.state")
            installed = False
        else:
            _core._write_state("ready", VERSION, len(archive), sha, "fw.tmp", cfg["excluded_files"], delete, need,
                               new_cfg)
            _install._install(_core._read_state(), True)  # fails only as a test failure
            installed = True
        finally:
            assert [p.name for p in base.iterdir()] == ["root"], "written outside the device root"
        assert _core._read_state() is None, "the install left a journal: it failed after validation"
        assert uota.recover(quiet=True) is False, "recover() found an install to finish"
        after = tree(root)
    assert all(not name.endswith(".uota-new") for name in after), "a half-written file is left"
    assert all(_paths._safe_path(name) == name for name in after), "a path not in canonical form"
    assert after["wifi.json"] == DEVICE_FILES["wifi.json"], "an excluded file was changed"
    if not installed:
        assert after == before, "a refused archive changed the device"
        return None
    return after


def walk_archive(archive):
    """The member paths of a .tar.gz's bytes as the device's reader alone (which `uota check`
    also uses) lists them, or None when it refuses the archive."""
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as f:
        f.write(archive)
        f.flush()
        try:
            tar = _tar._Tar(f.name, bytearray(_install._CHUNK))
        except _core.UotaError:
            return None
        paths = []
        try:
            while True:
                path = tar.next()
                if path is None:
                    return paths
                assert _paths._safe_path(path) == path, "the reader returned a path not in canonical form"
                paths.append(path)
        except _core.UotaError:
            return None
        finally:
            tar.close()


def install_tar(tar):
    """walk_archive() and install_archive() of tar (checksums repaired), gzipped."""
    archive = gzip.compress(fix_tar_checksums(tar), compresslevel=1, mtime=0)
    walk_archive(archive)
    return install_archive(archive)
