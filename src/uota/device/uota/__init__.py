# uota: over-the-air updates for MicroPython (and CPython) devices.
#
# The update flow, top to bottom, in this module; each step loads only the code it needs
# and drops it when done:
#   check_for_updates(): read uota.cfg (_cfg) -> recover -> the report of who asks
#                        (_fleet) -> GET latest (_fetch, _http, _response, _url,
#                        _latest; _pin when pinned) -> when uota.cfg lists keys, check
#                        latest's signature (_signature) -> compare versions; with a
#                        rollout, is this device offered it yet (_fleet) -> when latest
#                        names deltas, GET their index: is there one from this version
#                        (_index) -> GET the archive (or the delta) into tmp_filename,
#                        hashing as it streams, resumed with a Range request where an
#                        earlier try was cut (_fetch) -> check the whole archive
#                        (_verify, _tar, fed by _lookahead where the heap has room: names,
#                        kinds, sizes, space; the files the installed release listed in
#                        uota.files that this one drops, _listed; for a delta, that this
#                        device's files are exactly the release it applies to, _delta)
#                        -> check the delete list, the release's
#                        uota.cfg's if it has one, and merge that uota.cfg with the
#                        device's own settings (_cfg) -> when it moves updates to another
#                        url or pins, GET latest there: it must offer this release or a
#                        newer one (_fetch), signed by the keys it trusts, which must be
#                        keys (_signature) -> record it as ready, with what the install
#                        needs to know; a download refused on the way is recorded as such
#                        (_core._refuse); a delta that fails anywhere gives the full
#                        release, at once
#   status():            installed, pending and failed versions, the trial, the last
#                        error (_status)
#   install_new_firmware(): journal "installing" -> with trial_boots, the release goes on
#                        trial (_trial) -> one pass over the archive (_install, _tar)
#                        writing every file beside its target, renamed over (on trial, the
#                        old file copied into the backup first) -> delete list, then the
#                        dropped files -> version (the commit) -> remove archive and state
#   recover(): finishes an install that a reset interrupted; counts the boots of a release
#              on trial and rolls it back from its backup when they are spent (_trial);
#              call it first in boot.py.
#   confirm(): the release on trial works: its backup goes (_trial).
#
# On-flash state (all paths relative to the current directory, the device's root):
#   uota.state  "phase;version;size;sha256;archive;need\n", then one line per excluded
#               entry, one ":"-prefixed line per delete entry ("::" for a file the
#               previous release listed and this one drops), when the install must
#               write another uota.cfg than the release's (the device's own settings
#               kept) "=" and that text, then "end\n". phase: partial (downloading;
#               resumable as the hash is known), ready (downloaded, hash and archive
#               checked; need: the flash bytes its install takes at its peak),
#               installing (the journal), retry (the journal of an install that failed
#               other than by a power cut: recover() tries it once more), failed (it
#               failed again, or was rolled back: that release is not tried again, the
#               next one is; or its download was refused, a "?" line says why: it is
#               downloaded again after 2**size - 1 checks, `need` counts them down, see
#               _core._refuse). A "*N" line: the install puts the release on trial for N
#               boots. Replaced atomically (written beside, renamed over); a file
#               without its "end" line is ignored.
#   <path>.uota-new  a file being written; renamed over <path> once complete.
#   uota.swap, uota.trial, uota.bak/  new device code complete (_tree.swap_group); the
#               release on trial and its backup (_trial).
#
# MIT license.

import gc
import sys

from ._core import (VERSION, _BACKUP, _STATE, _TMP_SUFFIX, _TRIAL, DownloadError, UotaError, VerifyError,  # noqa: F401
                    _clear_state, _exists, _log, _read_state, _refuse, _remove, _stat, _write_state, const)

_FAILURES = (UotaError, OSError, ValueError, MemoryError)  # built once: a full heap may raise here
_MICROPYTHON = sys.implementation.name == "micropython"
_CHUNK = const(512)  # the archive's check reads it through one buffer of this size
_last_error = None  # why the last call of this boot failed, for status()


def _public(action, quiet, a=None, b=None):
    # Closures and argument tuples would be allocated before the try: a nearly full heap
    # must still end in False, not in a MemoryError.
    global _last_error
    try:
        return action(quiet, a, b)
    except _FAILURES as e:
        gc.collect()
        try:
            _last_error = "%s" % (e,)
            _log("error", "uota: " + _last_error)
        except MemoryError:
            pass
        return False
    finally:
        gc.collect()


# The modules each step loads, unloaded when it is done: MicroPython then frees their code.
# Their names are interned: unloading allocates nothing, as it runs when the heap may be full.
_CFG_STEP = ("_cfg",)
_FETCH_STEP = ("_fetch", "_http", "_response", "_url", "_latest", "_pin", "_der", "_fleet", "_index")
_SIGNATURE_STEP = ("_signature", "_der")
_FLEET_STEP = ("_fleet",)
_VERIFY_STEP = ("_verify", "_tar", "_lookahead", "_delta", "_listed")
_CHECK_STEP = _FETCH_STEP + _VERIFY_STEP + _SIGNATURE_STEP + _FLEET_STEP + ("_cfg", "_paths")
_INSTALL_STEP = ("_install", "_tar", "_lookahead", "_paths", "_trial", "_tree")


def _unload(step):
    # An imported submodule is an attribute of this package; sys.modules has it by __name__.
    if _MICROPYTHON:
        for name in step:
            module = globals().pop(name, None)
            if module is not None:
                sys.modules.pop(module.__name__, None)


def check_for_updates(version_check=True, quiet=False, pubkey_hash=b""):
    """Download and check a newer release; True when it is ready to install."""
    try:
        return _public(_check, quiet, version_check, pubkey_hash)
    finally:
        _unload(_CHECK_STEP)


def _check(quiet, version_check, pubkey_hash, failed=None):
    cfg = _device_cfg()
    _recover(quiet)
    latest = _fetch_latest(cfg, pubkey_hash, _report(cfg))
    if cfg.get("keys"):  # before the version's order: an expired latest is a freeze attack
        _unload(_FETCH_STEP)  # the signature's big integers get the heap the HTTP code had
        _check_signature(cfg, latest)
    got = _fetch_release(cfg, latest, quiet, version_check, pubkey_hash, failed)
    latest = None  # garbage now, not an island in the heap the archive's check needs
    if got != "downloaded" and got != "delta":
        return got == "ready"
    _unload(_FETCH_STEP)
    gc.collect()  # what the download left is garbage now: the window gets one free stretch
    try:
        state, delete, need, new_cfg = _judge_download(cfg, pubkey_hash)
    except VerifyError as e:
        _remove(cfg["tmp_filename"])
        if got == "delta":  # the full release, now (its download replaces the delta's record)
            return _check(quiet, version_check, pubkey_hash, e)
        state = _read_state()
        if state:
            _refuse(state[1], state[3], state[7], e)
        raise
    # The device's trial_boots, not the release's: a release cannot take itself off trial.
    _write_state("ready", state[1], state[2], state[3], state[4], state[5], delete, need, new_cfg,
                 cfg.get("trial_boots", 0))
    return True


def _judge_download(cfg, pubkey_hash):
    # Every check of the whole download that uota.state records (`uota check` runs exactly
    # these): the archive, the delete list, the release's uota.cfg, the url and pins it moves
    # updates to and the keys it trusts. (that record, the delete list, the flash the install
    # needs, the uota.cfg text the install writes or None), or VerifyError.
    state, release_cfg, need, dropped = _check_archive(cfg)
    _unload(_VERIFY_STEP)
    delete, new_cfg, final = _plan_cfg(release_cfg, cfg, dropped)
    _unload(_CFG_STEP)
    keys = _check_keys(final["keys"], cfg) if final and final.get("keys") else None
    if final and (final["url"] != cfg["url"] or final.get("pins") != cfg.get("pins")):
        _reach(final, pubkey_hash, state[1], keys)
    return state, delete, need, new_cfg


def _device_cfg():
    from ._cfg import _read_cfg

    cfg = _read_cfg()
    _unload(_CFG_STEP)
    return cfg


def _report(cfg):
    # The headers that report this device with its request for latest, unless uota.cfg
    # says 'report': False. Made before the HTTP code loads, so it does not split the heap.
    if not cfg.get("report", True):
        return None
    gc.collect()  # _cfg's code is garbage: _fleet loads low, not around it
    from ._fleet import report

    try:
        return report(cfg)
    finally:
        _unload(_FLEET_STEP)


def _fetch_latest(cfg, pubkey_hash, report):
    gc.collect()  # _fleet's code is garbage: the HTTP code loads low, not around it
    from ._fetch import fetch_latest

    return fetch_latest(cfg, pubkey_hash, report)


def _check_signature(cfg, latest):
    gc.collect()
    from ._signature import check_signature, unix_time

    check_signature(cfg["keys"], latest[5], latest[4], unix_time())
    _unload(_SIGNATURE_STEP)


def _fetch_release(cfg, latest, quiet, version_check, pubkey_hash, failed):
    gc.collect()
    from ._fetch import fetch_release

    return fetch_release(cfg, latest, quiet, version_check, pubkey_hash, failed)


def _check_archive(cfg):
    from ._verify import check_archive

    gc.collect()  # what compiling it left is garbage: the window gets one free stretch
    return check_archive(cfg, bytearray(_CHUNK))


def _plan_cfg(release_cfg, cfg, dropped):
    if release_cfg is None and not cfg["delete"] and not dropped:
        return [], None, None  # nothing to plan: _cfg's code is not loaded again
    gc.collect()  # the window is garbage now: compiling _cfg from source gets its stretch back
    from ._cfg import plan_cfg

    return plan_cfg(release_cfg, cfg, dropped)


def _reach(cfg, pubkey_hash, version, keys):
    gc.collect()
    from ._fetch import reach

    reach(cfg, pubkey_hash, version, keys)


def _check_keys(keys, cfg):
    gc.collect()
    from ._signature import check_keys

    texts = check_keys(keys, cfg, bytearray(_CHUNK))
    _unload(_VERIFY_STEP + _SIGNATURE_STEP)
    return texts


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
    gc.collect()  # the install's code is compiled (from source) into a heap without garbage
    from ._install import _install

    gc.collect()  # one free stretch for the gzip window
    _install(state, quiet)
    return True


def status():
    """{version, pending, failed, error, trial, boots_left}: what an application may report
    (docs/fleet.md)."""
    from ._status import status

    try:
        return status(_last_error)
    finally:
        _unload(("_status",) + _INSTALL_STEP)


def recover(quiet=False):
    """Call first in boot.py: finishes an interrupted install, counts the boots of a release
    on trial and rolls it back when they are spent. True when the release changed."""
    if not _exists(_STATE) and not _exists(_STATE + _TMP_SUFFIX) and not _exists(_TRIAL):
        return False
    try:
        return _public(_boot, quiet)
    finally:
        _unload(_INSTALL_STEP)  # the application runs next: leave it the heap


def _boot(quiet, _a, _b):
    done = _recover(quiet)
    if _exists(_TRIAL):
        from ._trial import count_boot

        done = count_boot(quiet) or done
    return done


def _recover(quiet, _a=None, _b=None):
    # Finish an interrupted install; True when one was completed.
    state = _read_state()
    if not state or state[0] not in ("installing", "retry"):
        return False
    from ._install import _finish

    gc.collect()
    return _finish(state, quiet)


def confirm():
    """Call once the release on trial works: its backup goes. True when one was on trial."""
    if not _exists(_TRIAL) and not _exists(_BACKUP):
        return False
    try:
        return _public(_confirm, True)
    finally:
        _unload(_INSTALL_STEP)


def _confirm(_quiet, _a, _b):
    from ._trial import confirm

    return confirm()
