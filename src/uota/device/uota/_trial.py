# Trial boots: with 'trial_boots': N in uota.cfg, an install keeps what it replaces, deletes
# and adds, and the release is on trial until the application calls uota.confirm(). When N
# boots pass without it, recover() puts the last confirmed release back exactly.
#
# On flash:
#   uota.trial        "N;version;sha256\n" of the release on trial, then one "+" per boot
#                     counted. Written before the install changes anything; removed first
#                     by confirm(), last by a rollback.
#   uota.bak/old/P    a copy of each file P the install replaced or deleted, made before P
#                     changes. Copied, not renamed: a rename across folders that a cut
#                     interrupts can leave FAT with two names on one cluster chain (removing
#                     either frees the other's content), and hid unrelated entries of the
#                     folder on littlefs until its next write (power-cut sweeps).
#   uota.bak/new/P    an empty mark for each file P the install added, and
#                     uota.bak/new/F/.uota-new for each folder F it made.
# A file with either entry is not backed up again, so an install cut and finished, or a
# second install before confirm(), keeps the last confirmed release. Every step of a
# rollback can be cut and done again.

import os

from ._core import (_BACKUP, _TMP_SUFFIX, _TRIAL, _copy, _exists, _is_dir, _log, _read_text, _remove, _stat,
                    _write_atomic, _write_state)
from ._paths import _HOME
from ._tree import _makedirs, _remove_tree, swap_group

_OLD = _BACKUP + "/old"
_NEW = _BACKUP + "/new"


def begin(version, sha, boots, buf):
    # The install of `version` (its archive's sha256) starts, with its journal written.
    if not _exists(_TRIAL):
        _remove_tree(_BACKUP)  # what a confirm() cut short left: it would hide what changes
    _write_atomic(_TRIAL, "%d;%s;%s\n" % (boots, version, sha))
    keep("version", buf)


def keep(path, buf=None):
    # Before file `path` changes or goes: a copy of it in the backup (through buf), or a
    # mark that the install adds it.
    old, new = _OLD + "/" + path, _NEW + "/" + path
    if _exists(old) or _exists(new):
        return
    st = _stat(path)
    target = old if st else new
    _makedirs(target[: target.rfind("/")])
    if st:
        _copy_file(path, old, buf)
    else:
        open(new, "w").close()


def _copy_file(source, target, buf=None):
    # source's content to target, written beside it and renamed over it: always whole.
    if buf is None:  # the delete list's files: the install's buffer is not passed that far
        buf = memoryview(bytearray(256))
    with open(source, "rb") as src, open(target + _TMP_SUFFIX, "wb") as dest:
        _copy(src, buf, dest.write)
    os.rename(target + _TMP_SUFFIX, target)


def new_folder(folder):
    # Before the install makes folder: a mark that a rollback removes it.
    mark = _NEW + "/" + folder
    _makedirs(mark)
    open(mark + "/" + _TMP_SUFFIX, "w").close()


def trial():
    # (boots allowed, version, sha256, boots counted) of the release on trial, or None.
    text = _read_text(_TRIAL)
    if text is None:
        return None
    end = text.find("\n")
    fields = text[:end].split(";")
    if end < 0 or len(fields) != 3 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1], fields[2], len(text) - end - 1


def count_boot(quiet):
    # At boot: one more boot of the release on trial, or, N boots past, its rollback (True).
    on_trial = trial()
    if on_trial is None or on_trial[3] >= on_trial[0]:
        roll_back(quiet)
        return True
    with open(_TRIAL, "a") as f:
        f.write("+")
    return False


def confirm():
    # End the trial: the release stays, its backup goes. True when one was on trial and has
    # booted (a confirm() before the release ever ran proves nothing).
    on_trial = trial()
    if on_trial and not on_trial[3]:
        return False
    _remove(_TRIAL)  # the commit: a backup without uota.trial is garbage (begin)
    _remove_tree(_BACKUP)
    return on_trial is not None


def roll_back(quiet, why=None):
    # Put the last confirmed release back and remember the one on trial as failed, for `why`.
    if not _exists(_TRIAL):
        return  # a backup without it is what a cut confirm() left (begin)
    on_trial = trial()
    if on_trial:
        why = why or "was rolled back: not confirmed in %d boots" % on_trial[0]
        _write_state("failed", on_trial[1], 0, on_trial[2], "", (), why=why)
    buf = memoryview(bytearray(512))
    _undo(_OLD, "", buf)  # device code goes beside its target, to be put in place as a group
    home = _HOME[:-1]
    if _is_dir(_stat(home)):
        swap_group(home)
    _undo(_NEW, "", buf)
    _remove_tree(_BACKUP)
    _remove(_TRIAL)
    if not quiet:
        _log("warning", "uota: rolled back %s, which was not confirmed" % (on_trial[1] if on_trial else "a release"))


def _undo(root, folder, buf):
    # Each file under root/folder: restored to its path (old), or the file it marks removed
    # (new); then the folders the install made, and the emptied backup folders.
    here = root + "/" + folder[:-1] if folder else root
    if not _is_dir(_stat(here)):
        return
    made = False
    for name in os.listdir(here):
        path = folder + name
        if _is_dir(_stat(root + "/" + path)):
            _undo(root, path + "/", buf)
        elif name == _TMP_SUFFIX:
            made = True  # marks a folder the install made: removed once emptied
            continue
        elif root == _NEW:
            _remove(path)
        elif not name.endswith(_TMP_SUFFIX):  # else a copy a cut left unfinished
            if folder:
                _makedirs(folder[:-1])
            _copy_file(root + "/" + path, path + _TMP_SUFFIX if folder.lower() == _HOME else path, buf)
        _remove(root + "/" + path)
    if made:
        try:
            os.rmdir(folder[:-1])
        except OSError:
            pass  # gone already, or the application keeps files there
        _remove(here + "/" + _TMP_SUFFIX)
    os.rmdir(here)
