# Paths: one canonical form for archive members and uota.cfg entries, compared as FAT does;
# and the folders they make and remove.

import os

from ._core import _SWAP, _TMP_SUFFIX, VerifyError, _is_dir, _is_link, _remove, _stat, _write_atomic, const

_NAME_MAX = const(255)  # longest member path
_COMPONENT_MAX = const(246)  # 255, the longest name on littlefs and FAT, less the suffix
_FAT_REFUSES = '\\:*?"<>|'
# The running device code's folder, "lib/uota/" as mip installs it, lower-cased: no release
# removes it, and an install puts new device code in place as a group.
_HOME = __file__[: __file__.rfind("/") + 1].lstrip("/").lower() or "/"


def _safe_path(name):
    # name in the one canonical form of a path, "" for the root; else VerifyError.
    #
    # Canonical: printable ASCII components joined by single '/', none empty, '.' or '..',
    # none starting with a space or ending with a dot or a space (FAT drops those), none
    # holding a character FAT refuses or '~' before a digit (a FAT short-name alias), none
    # too long to take the temporary suffix. Tar's leading './' and trailing '/' are
    # dropped. Paths are compared lower-cased: FAT ignores case.
    if name.startswith("./"):
        name = name[2:]
    if name.endswith("/"):
        name = name[:-1]
    if name in ("", "."):
        return ""
    if len(name) > _NAME_MAX:
        raise VerifyError("unsafe path %r..." % name[:32])
    prev = "/"
    run = 0  # length of the component so far
    for c in name:
        if c == "/":
            if prev in "/. ":
                break
            run = 0
        else:
            run += 1
            if c < " " or c > "~" or c in _FAT_REFUSES or run > _COMPONENT_MAX:
                break
            if c == " " and prev == "/" or prev == "~" and "0" <= c <= "9":
                break
        prev = c
    else:
        if prev not in "/. ":
            return name
    raise VerifyError("unsafe path %r" % name)


def _excluded(key, excluded):
    # Whether the lower-cased path key is an excluded entry or under one.
    for i in range(len(excluded)):  # indexing: a list iterator would be allocated per member
        entry = excluded[i]
        if key.startswith(entry) and (len(key) == len(entry) or key[len(entry)] == "/"):
            return True
    return False


def _new_parent(path, known):
    # path's directory, when it is not `known` (the one the previous member was in).
    cut = path.rfind("/")
    if cut <= 0 or (cut == len(known) and path.startswith(known)):
        return None
    return path[:cut]


def _parents(path):
    # each directory on the way to path, and path itself: "a/b" -> "a", "a/b"
    slash = path.find("/")
    while slash > 0:
        yield path[:slash]
        slash = path.find("/", slash + 1)
    yield path


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
