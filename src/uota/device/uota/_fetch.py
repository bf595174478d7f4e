# Fetching a release: `latest` into a bounded buffer, the version order, and the archive
# streamed to flash, hashed on the fly and resumed where an earlier try was cut.

from ._core import (_STATE, DownloadError, UotaError, VerifyError, _copy, _free_bytes, _hex, _log, _read_state,
                    _read_version, _refuse, _remove, _sha256, _stat, _write_state, const)
from ._http import _request
from ._latest import _LATEST_MAX, compare_versions, parse_latest

_CHUNK = const(1024)


def fetch_release(cfg, latest, quiet, version_check, pubkey_hash, failed=None):
    # When `latest` (fetch_latest's) names a newer release, download it, or its delta from
    # this device's version (_index, _delta) when it names one, and record it as partial;
    # the full release when `failed` (what made a delta fail in this check). Returns
    # "newest" (nothing to do), "ready" (downloaded and checked in an earlier boot),
    # "downloaded" or "delta" (a delta was).
    version, filename, free_kb, sha, named, _ = latest
    if not sha and cfg.get("require_hash"):
        raise VerifyError("latest gives no SHA-256, and uota.cfg says 'require_hash'")
    if version_check:
        current = _read_version()
        if current is None:
            raise VerifyError("no version file on the device")
        if compare_versions(version, current) <= 0:
            if not quiet:
                _log("info", "version %s is the newest" % current)
            return "newest"
    if "rollout" in named:  # offered to a share of the fleet: is this device in it yet?
        from ._fleet import in_rollout

        if not in_rollout(cfg, version, int(named["rollout"])):
            if not quiet:
                _log("info", "version %s is offered to %s%% of devices, not yet to this one" % (version, named["rollout"]))
            return "newest"
    archive, excluded = cfg["tmp_filename"], cfg["excluded_files"]
    state = _read_state()
    refusals = 0  # of this release so far (_refuse): they space out its downloads
    if state and state[0] == "failed" and state[1] == version and (not sha or state[3] == sha):
        why = state[10] or "failed to install"
        if why[:11] != "was refused":
            raise VerifyError("release %s %s: waiting for another" % (version, why))
        if state[7]:  # checks to let pass before it is downloaded again
            _write_state("failed", version, state[2], state[3], "", (), (), state[7] - 1, why=why)
            raise VerifyError("release %s %s: not downloaded again for %d more checks, unless latest changes"
                              % (version, why, state[7]))
        refusals = state[2]
    size = int(named.get("size", "-1"))
    if failed is not None and not quiet:
        _log("info", "delta failed (%s): taking the full release" % failed)
    # A download of the full release already under way is finished, not swapped for a delta.
    delta = failed is None and sha and "delta" in named and not (state and state[1] == version and state[3] == sha)
    if delta:
        from ._index import find_delta

        delta = find_delta(cfg, pubkey_hash, filename, named["delta"], quiet)
        if delta:
            filename, free_kb, sha, size = delta
    st = _stat(archive)
    offset = 0
    if state and state[1] == version and st and (state[3] == sha or not sha and state[0] == "ready"):
        if state[0] == "ready" and st[6] == state[2]:
            return "ready"
        if state[0] == "partial":
            offset, refusals = st[6], state[7]
    if not offset:
        _remove(_STATE)
    if free_kb * 1024 > _free_bytes() + offset:
        raise VerifyError("not enough free space: the release needs %d kB, %d kB free" % (free_kb, _free_bytes() // 1024))
    if not quiet:
        _log("info", "new version %s is available%s%s" % (version, " as a delta" if delta else "",
                                                         " (resuming at byte %d)" % offset if offset else ""))
    if sha:  # a download cut short can be resumed, and checked against the hash
        _write_state("partial", version, 0, sha, archive, excluded, (), refusals)
    retries = cfg.get("retries", 0)
    while True:
        try:
            size, sha = _download(cfg["url"] + filename, archive, cfg, pubkey_hash, sha, offset, free_kb, size)
            break
        except (VerifyError, DownloadError, OSError) as e:
            st = _stat(archive)
            got = st[6] if st else 0
            # A delta refused, or not to be had at all (a cut one is resumed): the full release
            if delta and (isinstance(e, VerifyError) or got <= offset):
                return fetch_release(cfg, latest, quiet, version_check, pubkey_hash, e)
            if isinstance(e, VerifyError):
                _refuse(version, sha, refusals, e)
                raise
            # The network: resumed after a pause, if uota.cfg says so; without a hash nothing was kept.
            if not retries or not sha:
                raise
            wait = min(1 << (cfg["retries"] - retries), 30)
            retries -= 1
            if not quiet:
                _log("info", "download cut (%s): resuming in %d s" % (e, wait))
            from time import sleep

            sleep(wait)
            offset = got
    _write_state("partial", version, size, sha, archive, excluded, (), refusals)  # whole, not checked yet
    return "delta" if delta else "downloaded"


def reach(cfg, pin, version, keys=None):
    # VerifyError unless the url a release moves updates to (cfg's) serves a latest that
    # offers `version` or a newer one, signed by one of `keys` ({path: PEM text}, the keys the
    # device trusts after the install) when it has any: a device sent elsewhere must be able
    # to update again.
    try:
        latest = fetch_latest(cfg, pin)
        served = latest[0]
        if keys:
            from ._signature import check_signature, unix_time

            check_signature(list(keys), latest[5], latest[4], unix_time(), keys.get)
    except (UotaError, OSError, ValueError) as e:
        raise VerifyError("the release moves updates to %s, where latest fails: %s" % (cfg["url"], e))
    if compare_versions(served, version) < 0:
        raise VerifyError("the release moves updates to %s, which offers only %s" % (cfg["url"], served))


def fetch_latest(cfg, pin, report=None):
    # parse_latest's fields of the latest at cfg's url, read into a bounded buffer: a few
    # bytes over the limit are read, so that parse_latest sees it is too long. `report`:
    # headers that say which device asks (_fleet's).
    response = _request(cfg["url"] + "latest", cfg, pin, 0, report)
    try:
        data = bytearray(_LATEST_MAX + 3)
        n = 0
        while n < len(data):
            got = response.readinto(memoryview(data)[n:])
            if not got:
                break
            n += got
    finally:
        response.close()
    try:
        text = bytes(data[:n]).decode()
    except ValueError:
        raise VerifyError("latest is not text")
    return parse_latest(text)


def _download(url, path, cfg, pin, sha, offset, free_kb=0, size=-1):
    # Stream url into path from byte `offset` (what an earlier try left), hashing on the fly.
    #
    # The archive is at most the size latest gives, else its free_kB (that counts the archive
    # too), else what fits in the free space: a longer one is refused by its Content-Length
    # before anything is written, or as it runs over. Returns (size, sha256 hex). A failed
    # download with a known hash is kept to be resumed, unless it cannot be the archive.
    buf = memoryview(bytearray(_CHUNK))
    hasher = _sha256()
    if offset:
        with open(path, "rb") as f:  # the bytes already there count towards the hash
            _copy(f, buf, hasher.update)
    response = _request(url, cfg, pin, offset)
    try:
        if response.status == 206 and response.range_start != offset:
            response.close()
            return _download(url, path, cfg, pin, sha, 0, free_kb, size)
        if response.status == 416:  # the file was whole when a cut lost its "ready" record
            response.left = response.length = 0  # so the hash of what is there decides
        if response.status == 200 and offset:  # the server ignores Range: start over
            hasher = _sha256()
            offset = 0
        if size >= 0:  # the bytes that may still come
            limit, why = size - offset, "the %d bytes latest gives" % size
        elif free_kb:
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
