# uota: over-the-air updates for MicroPython (and CPython) devices.
#
# The update flow, top to bottom, in this module; each step loads only the code it needs:
#   check_for_updates(): recover -> read uota.cfg (_cfg) -> GET latest (_fetch, _http,
#                        _response, _pin when pinned) -> compare versions (_latest) -> GET the archive into
#                        tmp_filename, hashing as it streams (resumed with a Range request
#                        when an earlier try was cut) -> check the whole archive (_verify,
#                        _tar: names, kinds, sizes, space, the release's uota.cfg) ->
#                        record it as ready, with what the install needs to know
#   install_new_firmware(): journal "installing" -> one pass over the archive (_install,
#                        _tar) writing every file beside its target, renamed over ->
#                        delete list -> version (the commit) -> remove archive and state
#   recover(): finishes an install that a reset interrupted; call it first in boot.py.
#
# On-flash state (all paths relative to the current directory, the device's root):
#   uota.state  "phase;version;size;sha256;archive;need\n", one excluded entry per line,
#               one ":"-prefixed delete entry per line, then "end\n". phase: partial
#               (downloading; resumable as the hash is known), ready (downloaded, hash
#               and archive checked; need: the flash bytes its install takes at its
#               peak), installing (the journal),
#               retry (the journal of an install that failed other than by a power cut:
#               recover() tries it once more), failed (it failed again: the archive is
#               deleted, that release is not tried again, the next one is).
#               Replaced atomically (written beside, renamed over); a file without its
#               "end" line is ignored.
#   <path>.uota-new  a file being written; renamed over <path> once complete.
#
# MIT license.

import gc
import sys

from ._core import (VERSION, _STATE, _TMP_SUFFIX, DownloadError, UotaError, VerifyError,  # noqa: F401
                    _clear_state, _exists, _free_bytes, _log, _read_state, _read_version,
                    _remove, _stat, _write_state, const)

_FAILURES = (UotaError, OSError, ValueError, MemoryError)  # built once: a full heap may raise here
_MICROPYTHON = sys.implementation.name == "micropython"
_CHUNK = const(1024)  # the archive's check reads it through one buffer of this size


def _public(action, quiet, a=None, b=None):
    # Closures and argument tuples would be allocated before the try: a nearly full heap
    # must still end in False, not in a MemoryError.
    try:
        return action(quiet, a, b)
    except _FAILURES as e:
        gc.collect()
        try:
            _log("error", "uota: %s" % (e,))
        except MemoryError:
            pass
        return False
    finally:
        gc.collect()


def _step(*names):
    return tuple((__name__ + "." + name, name) for name in names)


# The modules each step loads, unloaded when it is done: MicroPython then frees their
# code. Built here, as _unload runs when the heap may be full.
_FETCH_STEP = _step("_fetch", "_http", "_response", "_latest", "_pin")
_CHECK_STEP = _FETCH_STEP + _step("_verify", "_tar", "_paths", "_cfg")
_INSTALL_STEP = _step("_install", "_tar", "_paths", "_cfg")


def _unload(step):
    if _MICROPYTHON:
        for module, name in step:
            sys.modules.pop(module, None)
            globals().pop(name, None)


def check_for_updates(version_check=True, quiet=False, pubkey_hash=b""):
    """Download and check a newer release; True when it is ready to install."""
    try:
        return _public(_check, quiet, version_check, pubkey_hash)
    finally:
        _unload(_CHECK_STEP)


def _check(quiet, version_check, pubkey_hash):
    from ._cfg import _read_cfg
    from ._verify import check_archive  # loaded first: loading code into a full heap can hang 1.20

    cfg = _read_cfg()
    _recover(quiet)
    got = _fetch_release(cfg, quiet, version_check, pubkey_hash)
    if got != "downloaded":
        return got == "ready"
    _unload(_FETCH_STEP)
    gc.collect()
    # Read again: what the download left is garbage now, and the gzip window gets one free
    # stretch rather than the gaps between its leftovers.
    state = _read_state()
    try:
        delete, need = check_archive(state[1], state[4], cfg, bytearray(_CHUNK))
    except VerifyError:
        _clear_state(state)
        raise
    _write_state("ready", state[1], state[2], state[3], state[4], state[5], delete, need)  # 1.17: no args after *
    return True


def _fetch_release(cfg, quiet, version_check, pubkey_hash):
    """Fetch latest and, when it names a newer release, download it and record it as
    partial. Returns "newest" (nothing to do), "ready" (downloaded and checked in an
    earlier boot) or "downloaded"."""
    from ._fetch import _download, _fetch_small
    from ._latest import _LATEST_MAX, compare_versions, parse_latest

    text = _fetch_small(cfg["url"] + "latest", cfg, pubkey_hash, _LATEST_MAX)
    try:
        text = text.decode()
    except ValueError:
        raise VerifyError("latest is not text")
    version, filename, free_kb, sha = parse_latest(text)
    if version_check:
        current = _read_version()
        if current is None:
            raise VerifyError("no version file on the device")
        if compare_versions(version, current) <= 0:
            if not quiet:
                _log("info", "version %s is the newest" % current)
            return "newest"
    archive, excluded = cfg["tmp_filename"], cfg["excluded_files"]
    state = _read_state()
    if state and state[0] == "failed" and state[1] == version and (not sha or state[3] == sha):
        raise VerifyError("release %s failed to install: waiting for another" % version)
    st = _stat(archive)
    offset = 0
    if state and state[1] == version and st and (state[3] == sha or not sha and state[0] == "ready"):
        if state[0] == "ready" and st[6] == state[2]:
            return "ready"
        if state[0] == "partial":
            offset = st[6]
    if not offset:
        _remove(_STATE)
    if free_kb * 1024 > _free_bytes() + offset:
        raise VerifyError("not enough free space: the release needs %d kB, %d kB free" % (free_kb, _free_bytes() // 1024))
    if not quiet:
        _log("info", "new version %s is available%s" % (version, " (resuming at byte %d)" % offset if offset else ""))
    if sha:  # a download cut short can be resumed, and checked against the hash
        _write_state("partial", version, 0, sha, archive, excluded)
    size, sha = _download(cfg["url"] + filename, archive, cfg, pubkey_hash, sha, offset, free_kb)
    _write_state("partial", version, size, sha, archive, excluded)  # whole, not checked yet
    return "downloaded"


def install_new_firmware(quiet=False):
    """Install the release that check_for_updates() downloaded; True when done."""
    try:
        return _public(_install_downloaded, quiet)
    finally:
        _unload(_INSTALL_STEP)


def _install_downloaded(quiet, _a, _b):
    if _recover(quiet):
        return True
    state = _read_state()
    if not state or state[0] != "ready":
        raise VerifyError("no verified download to install")
    st = _stat(state[4])
    if not st or st[6] != state[2]:
        _clear_state(state)
        raise VerifyError("the downloaded archive is missing or incomplete")
    from ._install import _install

    gc.collect()  # one free stretch for the gzip window
    _install(state, quiet)
    return True


def recover(quiet=False):
    """Call first in boot.py: finishes an install a reset interrupted. Cheap otherwise."""
    if not _exists(_STATE) and not _exists(_STATE + _TMP_SUFFIX):
        return False
    try:
        return _public(_recover, quiet)
    finally:
        _unload(_INSTALL_STEP)  # the application runs next: leave it the heap


def _recover(quiet, _a=None, _b=None):
    """Finish an interrupted install; True when one was completed."""
    state = _read_state()
    if not state or state[0] not in ("installing", "retry"):
        return False
    from ._install import _finish

    gc.collect()
    return _finish(state, quiet)
