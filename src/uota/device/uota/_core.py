# uota's core: errors, firmware shims, filesystem helpers and the state file, which
# every phase uses. See __init__.py for the update flow and the on-flash state.

import gc
import os
import sys

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


VERSION = "0.1.0"

_TMP_SUFFIX = ".uota-new"
_STATE = "uota.state"
_SWAP = "uota.swap"  # while there, new device code is complete beside the old (_install)
_TRIAL = "uota.trial"  # the release on trial and its boots (_trial)
_BACKUP = "uota.bak"  # what the install on trial replaced, deleted and added (_trial)
_FILES = "uota.files"  # what the installed release installed: SHA256HEX SIZE PATH per file
_DELTA = "uota.delta"  # in a delta archive, what it applies to (_delta); never installed
_OWN_FILES = ("version", "uota.cfg", "uota.state", _FILES)  # written by uota alone
_RECORDS = (_STATE, _SWAP, _TRIAL, _BACKUP)  # uota's records: no release writes or deletes them


class UotaError(Exception):
    """Base of every error this module reports."""


class DownloadError(UotaError):
    """The server or the network failed us."""


class VerifyError(UotaError):
    """What the server sent, or what is on flash, is not acceptable."""


# ---------------------------------------------------------------- compatibility shims


def _log(level, msg):
    # A logging module that fails (MicroPython 1.20's frozen one calls time.time(), which
    # some ports lack) must not turn an update's result into an exception: print instead.
    try:
        import logging

        getattr(logging.getLogger("uota"), level)(msg)
    except Exception:
        print(msg)


# Collecting between files keeps a board's small heap unfragmented; CPython needs no help.
_collect = gc.collect if sys.implementation.name == "micropython" else (lambda: None)


def _sha256():
    try:
        import hashlib
    except ImportError:
        import uhashlib as hashlib
    return hashlib.sha256()


def _hex(digest):
    import binascii

    return binascii.hexlify(digest).decode()


# ---------------------------------------------------------------- files


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


def _exists(path):
    return _stat(path) is not None


def _is_dir(st):
    # Whether a stat result (None for a missing path) is a directory's.
    return st is not None and st[0] & 0x4000 != 0


def _is_link(path):
    # Only CPython's os has lstat: MicroPython's filesystems have no links.
    try:
        return os.lstat(path)[0] & 0xF000 == 0xA000
    except (AttributeError, OSError):
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _finish_rename(path):
    # FAT renames onto a file by removing it first: a cut or an error between the two
    # leaves the target missing and its complete new content beside it.
    if not _exists(path) and _exists(path + _TMP_SUFFIX):
        os.rename(path + _TMP_SUFFIX, path)


def _read_text(path):
    # path's text, or None when it cannot be read. Looked for first: on MicroPython 1.20's
    # unix port a failed open() leaves an object whose finaliser closes another descriptor.
    if not _exists(path):
        return None
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_version():
    _finish_rename("version")
    text = _read_text("version")
    return text.strip() if text is not None else None


def _free_bytes():
    st = os.statvfs(".")
    # Capped below 2**30 so it stays a small int: MicroPython allocates for larger ones,
    # on every comparison in the download loop.
    return min(st[0] * st[3], 0x3FFFFFFF)


def _copy(src, buf, dest, hasher=None, limit=-1, why=""):
    # Copy src to dest through buf (readinto); return the byte count, at most limit
    # (VerifyError "the archive is larger than <why>" beyond it) when limit >= 0.
    total = 0
    while True:
        n = src.readinto(buf)
        if not n:
            return total
        chunk = buf if n == len(buf) else buf[:n]
        total += n
        if 0 <= limit < total:
            raise VerifyError("the archive is larger than " + why)
        if hasher:
            hasher.update(chunk)
        dest(chunk)


def _number(buf, start, end, base):
    # The number written at buf[start:end] (leading spaces, then digits), or -1.
    value = -1
    for i in range(start, end):
        c = buf[i] | 0x20  # lower-case hex letters; digits are unchanged
        digit = c - 48 if 48 <= c <= 57 else c - 87 if 97 <= c <= 102 else 99
        if digit < base:
            value = (value if value > 0 else 0) * base + digit
        elif value >= 0 or c != 32:
            break  # the end of the digits: ';' extensions, NUL or space after them
    return value


def _plain(text, extra):
    # Whether text holds only ASCII letters, digits and the characters of extra.
    for c in text:
        if not ("0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z" or c in extra):
            return False
    return True


# ---------------------------------------------------------------- state file


def _write_atomic(path, text):
    tmp = path + _TMP_SUFFIX
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # atomic on littlefs; FAT removes then renames: recover() mends


def _write_state(phase, version, size, sha, archive, excluded, delete=(), need=0, cfg=None, trial=0, why=None):
    lines = ["%s;%s;%d;%s;%s;%d" % (phase, version, size, sha, archive, need)]
    lines.extend(excluded)
    for entry in delete:
        lines.append(":" + entry)  # ':', '=', '*' and '?' are in no safe path
    if cfg is not None:
        lines.append("=" + cfg)  # a dict literal written by repr(): one line
    if trial:
        lines.append("*%d" % trial)  # the install keeps a backup: the release is on trial
    if why:
        lines.append("?" + why.replace("\n", " "))  # why a failed release failed
    lines.append("end\n")
    _write_atomic(_STATE, "\n".join(lines))


def _refuse(version, sha, refusals, error):
    # Remember release `version` (sha: its SHA-256) as refused for `error`, the refusals+1-th
    # time: it is downloaded again only after 2**refusals - 1 more checks (63 at most; the
    # first time at the next one: the network may have spoiled it), or once latest names
    # another release. A partial record keeps the count in its `need` field meanwhile.
    _write_state("failed", version, refusals + 1, sha, "", (), (), min((1 << refusals) - 1, 63),
                 why="was refused: %s" % error)


def _read_state():
    # The state record, or None. A half-replaced one (FAT) is finished first.
    if not _exists(_STATE) and _exists(_STATE + _TMP_SUFFIX):
        if _state_from(_STATE + _TMP_SUFFIX):
            os.rename(_STATE + _TMP_SUFFIX, _STATE)
    _remove(_STATE + _TMP_SUFFIX)
    return _state_from(_STATE)


def _state_from(path):
    text = _read_text(path)
    if text is None:
        return None
    lines = text.split("\n")
    if len(lines) < 3 or lines[-2] != "end":
        return None
    fields = lines[0].split(";")
    if len(fields) != 6 or not fields[2].isdigit() or not fields[5].isdigit():
        return None
    excluded, delete, cfg, trial, why = [], [], None, 0, None
    for entry in lines[1:-2]:
        if entry[:1] == ":":
            delete.append(entry[1:])
        elif entry[:1] == "=":
            cfg = entry[1:]
        elif entry[:1] == "*":
            trial = int(entry[1:])
        elif entry[:1] == "?":
            why = entry[1:]
        else:
            excluded.append(entry)
    return fields[0], fields[1], int(fields[2]), fields[3], fields[4], excluded, delete, int(fields[5]), cfg, trial, why


def _clear_state(state):
    _remove(state[4])
    _remove(_STATE)
