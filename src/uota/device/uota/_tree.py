# Folders on flash, for the install and the trial's backup (neither check_for_updates() nor
# a boot with nothing pending loads this): made, removed, and device code swapped in.

import os

from ._core import _SWAP, _TMP_SUFFIX, _is_dir, _is_link, _remove, _stat, _write_atomic
from ._paths import _parents


def _makedirs(path, made=None):
    # made(folder), when given, before each folder is made
    for step in _parents(path):
        if not _is_dir(_stat(step)):
            if made:
                made(step)
            os.mkdir(step)


def _remove_tree(path, keep=None):
    # Remove path, a file or a folder with all it holds; keep(file) first, when given. A
    # link is removed, never followed.
    if _is_link(path) or not _is_dir(_stat(path)):
        if keep and _stat(path):
            keep(path)
        _remove(path)
        return
    for entry in os.listdir(path):
        _remove_tree(path + "/" + entry, keep)
    os.rmdir(path)


def swap_group(folder):
    # Put the complete new device code written beside the old in folder (as *.uota-new) in
    # place. uota.swap marks the group whole: boot.py's snippet finishes the renames before
    # it imports uota (init.BOOT_SNIPPET), so a reset never leaves old and new code mixed.
    _write_atomic(_SWAP, folder)
    for name in os.listdir(folder):
        if name.endswith(_TMP_SUFFIX):
            os.rename(folder + "/" + name, folder + "/" + name[: -len(_TMP_SUFFIX)])
    _remove(_SWAP)
