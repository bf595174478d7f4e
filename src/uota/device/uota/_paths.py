# Paths: one canonical form for archive members and uota.cfg entries, compared as FAT does.

from ._core import VerifyError, const

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

