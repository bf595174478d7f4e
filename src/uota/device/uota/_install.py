# Install: one pass over the archive that check_for_updates() checked, writing each file
# beside its target and renaming it over, under the journal. New device code (a release
# that updates uota itself) is renamed in place as a group once all of it is written, so
# that a reset never leaves a mix of old and new modules for boot.py to import: uota.swap
# marks the group complete, and boot.py's snippet finishes the renames before it imports.

import os

from ._core import (_DELTA, _STATE, _TMP_SUFFIX, VerifyError, _clear_state, _copy, _exists, _finish_rename,
                    _free_bytes, _is_dir, _log, _read_version, _remove, _stat, _write_atomic, _write_state, const)
from ._paths import _HOME, _excluded, _new_parent
from ._tree import _makedirs, _remove_tree, swap_group
from ._tar import _Tar

_CHUNK = const(512)  # the copy's buffer: small, so that the window finds its stretch in the smallest heaps


def _install(state, quiet):
    # Apply the checked archive under the journal.
    #
    # An install that fails all the same, for any reason but a power cut (which stops the
    # code: recover() finishes that), is tried once more by the next recover(); failing
    # again, it deletes the archive and remembers the release as failed, so that the device
    # stops retrying it and takes the next release.
    if state[0] == "ready" and state[7] > _free_bytes():  # the application wrote since the check
        raise VerifyError("the install needs %d kB free, %d kB are" % (state[7] // 1024, _free_bytes() // 1024))
    try:
        _apply(state, quiet)
    except Exception:
        if state[0] != "retry":
            _write_state("retry", *state[1:])
            raise
        _remove(state[4])
        _write_state("failed", *state[1:6])  # what it would delete, the space it needs: moot
        if state[9]:  # the backup puts the last confirmed release back now
            from ._trial import roll_back

            roll_back(quiet, "failed to install, and was rolled back")
        raise


def _apply(state, quiet):
    version, excluded = state[1], state[5]
    buf = memoryview(bytearray(_CHUNK))
    made = ""
    home = ""  # the running device code's folder, as the release spells it, when it ships code there
    keep = None  # on trial: keep(path, buf) backs a file up before it changes
    if state[9]:  # compiled before the window (and the lookahead) take their share of the heap
        from ._trial import begin, keep, new_folder
    # Read and written before the window takes its share of the heap: a window that does not
    # fit then fails the install as any failure does (_install), no file of the application
    # changed yet.
    reinstall = _read_version() == version
    _write_state("retry" if state[0] == "retry" else "installing", *state[1:])
    tar = _Tar(state[4], buf)
    try:
        path = tar.next()  # the window is allocated now
        if keep:
            begin(version, state[3], state[9], buf)
        if reinstall:
            _remove("version")  # only the new version file may commit it
        while path is not None:
            if not (path in ("", "version", _DELTA) or _excluded(path.lower(), excluded)):
                folder = path if tar.is_dir else _new_parent(path, made)
                if folder:
                    _makedirs(folder, keep and new_folder)  # also when the archive has no directory entries
                    made = folder
                if path == "uota.cfg" and state[8] is not None:
                    if keep:
                        keep(path, buf)
                    _write_atomic(path, state[8])  # the release's, with the device's own settings
                elif not tar.is_dir:
                    key = path.lower()
                    group = key.startswith(_HOME) and "/" not in key[len(_HOME):]
                    if group:
                        home = path[: len(_HOME) - 1]
                    _write_member(tar, path, buf, not group, keep)
            path = tar.next()
    finally:
        tar.close()
    if home:
        swap_group(home)
    for entry in state[6]:
        if entry[0] != ":":
            _remove_tree(entry, keep)
        elif not _is_dir(_stat(entry[1:])):  # dropped by the release: a file, never a folder
            _remove_tree(entry[1:], keep)
    _write_atomic("version", version)  # the commit point
    _clear_state(state)
    if not quiet:
        _log("info", "installed version %s" % version)


def _write_member(tar, path, buf, rename=True, keep=None):
    # rename False: device code, put in place with its group (swap_group); it stays meanwhile.
    tmp = path + _TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            _copy(tar, buf, f.write)
        if keep:
            keep(path, buf)
        if rename:
            os.rename(tmp, path)  # the file is always its old or its new content
    except Exception:  # not a power cut: leave no temporary file behind
        try:
            _finish_rename(path)
        except OSError:
            pass
        _remove(tmp)
        raise


def _finish(state, quiet):
    # Finish the install the journal `state` records; True when done.
    if _read_version() == state[1]:  # committed: only the clean-up was cut short
        _clear_state(state)
        return True
    if not _exists(state[4]):
        _remove(_STATE)
        raise VerifyError("an install of %s was interrupted and its archive is gone" % state[1])
    if not quiet:
        _log("info", "finishing the install of %s" % state[1])
    _install(state, quiet)
    return True
