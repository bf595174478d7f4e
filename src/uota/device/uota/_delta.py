# Delta releases: an archive holding only what changed since one earlier release.
#
# `latest` names them with "delta=SHA256": the hash of FILENAME.deltas, whose lines read
# like latest's, "FROM_VERSION;DELTA_ARCHIVE;free_kB;sha256;size=N". The delta archive is
# an ordinary release archive (version, the changed files, the whole release's uota.files)
# plus a uota.delta member: the version it applies to, the SHA-256 of that release's
# uota.files, then the files to delete, one per line. A device takes it only when its
# version and uota.files are that release's and every file it keeps is as that record
# says; else, or when anything about the delta fails, it takes the full release.

from ._core import _FILES, _OWN_FILES, DownloadError, VerifyError, _copy, _hex, _log, _read_version, _sha256, _stat, const
from ._paths import _excluded, _HOME

_LINE_MAX = const(256)  # the longest line of an index
_INDEX_MAX = const(32768)  # the longest index: about 250 earlier releases


def find_delta(cfg, pin, filename, index_sha, quiet):
    # (delta archive, free_kB, sha256, size) for this device's version from the index that
    # latest names, or None (said why, unless quiet): the full release is taken then.
    from ._http import _request
    from ._latest import parse_latest

    current = _read_version() or ""
    try:
        response = _request(cfg["url"] + filename + ".deltas", cfg, pin)
        hasher = _sha256()
        mine = current.encode() + b";"
        found = None
        line = b""
        total = 0
        buf = memoryview(bytearray(_LINE_MAX))
        try:
            while True:
                n = response.readinto(buf)
                total += n
                if total > _INDEX_MAX:
                    raise VerifyError("the delta index is longer than %d bytes" % _INDEX_MAX)
                hasher.update(buf[:n])
                line += bytes(buf[:n])
                while b"\n" in line:
                    head, _, line = line.partition(b"\n")
                    if head.startswith(mine):
                        found = head
                if len(line) > _LINE_MAX or not n and line:
                    raise VerifyError("a line of the delta index is too long or unterminated")
                if not n:
                    break
        finally:
            response.close()
        if _hex(hasher.digest()) != index_sha.lower():
            raise VerifyError("the delta index does not match latest")
        if found:
            _, name, free_kb, sha, named, _ = parse_latest(found.decode())
            if sha:
                if not quiet:
                    _log("info", "taking the delta from version %s" % current)
                return name, free_kb, sha, int(named.get("size", "-1"))
        why = "none from version %s" % current
    except (DownloadError, VerifyError, OSError, ValueError) as e:
        why = "%s" % (e,)
    if not quiet:
        _log("info", "no delta (%s): taking the full release" % why)
    return None


def check_base(text, shipped, excluded, buf):
    # When the delta that uota.delta's `text` describes applies to this device: (the files
    # it deletes, only ever ones the installed release listed, before the install's own
    # filters; whether the release keeps device code in place). Else VerifyError.
    # `shipped`: hashes of the lower-cased paths the delta writes.
    lines = text.split("\n")
    if len(lines) < 3 or lines[0] != _read_version():
        raise VerifyError("the delta is for version %s, not this device's" % lines[0])
    deletes = lines[2:]
    if _file_sha(_FILES, buf) != lines[1]:
        raise VerifyError("the delta's base is not the release this device has")
    gone = []
    keeps_home = False
    with open(_FILES) as f:
        for entry in f:
            sha, size, path = entry.rstrip("\n").split(" ", 2)
            key = path.lower()
            if path in deletes:
                gone.append(path)
                continue
            if hash(key) in shipped or key in _OWN_FILES or _excluded(key, excluded):
                continue
            keeps_home = keeps_home or key.startswith(_HOME)
            st = _stat(path)
            if not st or st[6] != int(size) or _file_sha(path, buf) != sha:
                raise VerifyError("%r differs from the release this device had" % path)
    return gone, keeps_home


def _file_sha(path, buf):
    hasher = _sha256()
    with open(path, "rb") as f:
        _copy(f, buf, hasher.update)
    return _hex(hasher.digest())
