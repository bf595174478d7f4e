# The index of delta releases (see _delta): is there a delta from this device's version?

from ._core import DownloadError, VerifyError, _hex, _log, _read_version, _sha256, const
from ._http import _request
from ._latest import parse_latest

_LINE_MAX = const(256)  # the longest line of an index
_INDEX_MAX = const(32768)  # the longest index: about 250 earlier releases


def find_delta(cfg, pin, filename, index_sha, quiet):
    # (delta archive, free_kB, sha256, size) for this device's version from the index that
    # latest names, or None (said why, unless quiet): the full release is taken then.
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
                return name, free_kb, sha, int(named.get("size", "-1"))
        why = "none from version %s" % current
    except (DownloadError, VerifyError, OSError, ValueError) as e:
        why = "%s" % (e,)
    if not quiet:
        _log("info", "no delta (%s): taking the full release" % why)
    return None
