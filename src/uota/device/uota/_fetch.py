# Fetching: `latest` into a bounded buffer, and the archive streamed to flash, hashed on
# the fly and resumable.

from ._core import _STATE, VerifyError, _copy, _free_bytes, _hex, _remove, _sha256, const
from ._http import _request

_CHUNK = const(1024)


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
