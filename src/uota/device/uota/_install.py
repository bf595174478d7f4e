# Install: one validating pass over the archive before the first write, then one that
# writes each file beside its target and renames it over, under the journal.

import os

from ._core import (_OWN_FILES, _STATE, _TMP_SUFFIX, VerifyError, _clear_state, _collect, _copy,
                    _exists, _finish_rename, _free_bytes, _is_dir, _is_link, _log, _read_version,
                    _remove, _stat, _write_atomic, _write_state, const)
from ._cfg import check_cfg, parse_cfg
from ._paths import _excluded, _new_parent, _parents
from ._tar import _Tar

_CHUNK = const(1024)
_PATHS_MAX = const(2000)  # distinct files and folders one archive may name
_SMALL_MEMBER_MAX = const(4096)  # the largest uota.cfg


def _validate(state, cfg, buf):
    """One pass over the archive before anything is written: everything that could make
    the install fail or reach what it must not (names, kinds, sizes, space, the release's
    uota.cfg) is checked here.

    Returns (new uota.cfg text or None, delete list).
    """
    version, archive, excluded = state[1], state[4], state[5]
    protected = (archive.lower(), _STATE)  # compared lower-cased, as FAT finds names
    new_cfg = None
    bsize = os.statvfs(".")[0]
    free = _free_bytes()
    growth = peak = 0
    checked = ""
    # Hashes of the lower-cased paths the archive makes files and folders (one path may not
    # be both), and of the folders already counted. A collision refuses a good archive,
    # which is safe; whole names would cost more RAM.
    files, folders = set(), set()
    tar = _Tar(archive, buf)
    try:
        while True:
            path = tar.next()
            if path is None:
                break
            if not path:
                continue  # the root
            is_dir, size = tar.is_dir, tar.left
            key = path.lower()
            if key in protected or key.endswith(_TMP_SUFFIX) or key in _OWN_FILES and key != path:
                raise VerifyError("archive would overwrite %r" % path)
            if is_dir and size:
                raise VerifyError("archive has directory %r with data" % path)
            if path == "version":
                if size > 64 or tar._read_small(size).decode().strip() != version:
                    raise VerifyError("the archive's version file does not say %s" % version)
                continue
            if _excluded(key, excluded):
                continue
            parent = _new_parent(path, checked)
            if parent:
                for step in _parents(parent):  # each must be a directory, or be made one
                    growth += _new_folder(step, files, folders, bsize)
                checked = parent
            if is_dir:
                growth += _new_folder(path, files, folders, bsize)
                continue
            if hash(key) in folders:
                raise VerifyError("archive has %r as both a file and a folder" % path)
            files.add(hash(key))
            if len(files) + len(folders) > _PATHS_MAX:
                raise VerifyError("archive names more than %d paths" % _PATHS_MAX)
            if path == "uota.cfg":
                if size > _SMALL_MEMBER_MAX:
                    raise VerifyError("the archive's uota.cfg is too large")
                new_cfg = tar._read_small(size).decode()
                check_cfg(parse_cfg(new_cfg))
            st = _stat(path)
            if _is_dir(st):
                raise VerifyError("archive has file %r where the device has a directory" % path)
            old = st[6] if st else 0
            blocks = (size + bsize - 1) // bsize * bsize
            peak = max(peak, growth + blocks + bsize)
            growth += blocks - (old + bsize - 1) // bsize * bsize
            if peak > free:  # refuse a decompression bomb at its first oversized member
                raise VerifyError("the release needs %d kB more than the %d kB free" % ((peak - free + 1023) // 1024, free // 1024))
    except ValueError:  # text members that are not UTF-8
        raise VerifyError("the archive's version or uota.cfg is not text")
    except MemoryError:
        raise VerifyError("not enough RAM to check the archive")
    finally:
        tar.close()
    delete = check_cfg(parse_cfg(new_cfg))["delete"] if new_cfg else cfg["delete"]
    kept = protected + _OWN_FILES + tuple(excluded)
    for entry in delete:
        key = entry.lower()
        for name in kept:  # neither the entry, nor a folder holding it, nor one under it
            if _excluded(key, (name,)) or _excluded(name, (key,)):
                raise VerifyError("uota.cfg: delete may not name %r" % entry)
        for step in _parents(entry):
            if step != entry and _is_link(step):
                raise VerifyError("uota.cfg: delete may not reach through the link %r" % step)
    return new_cfg, delete


def _new_folder(path, files, folders, bsize):
    """The flash a folder the archive makes or uses costs (none when it exists or was
    counted already); VerifyError where the device or the archive has a file or a link."""
    h = hash(path.lower())
    if h in folders:
        return 0
    if h in files:
        raise VerifyError("archive has %r as both a file and a folder" % path)
    folders.add(h)
    st = _stat(path)
    if st is None:
        return 2 * bsize
    if not _is_dir(st) or _is_link(path):
        raise VerifyError("archive puts %r where the device has a file or a link" % path)
    return 0


def _makedirs(path):
    for step in _parents(path):
        if not _is_dir(_stat(step)):
            os.mkdir(step)


def _write_member(tar, path, buf):
    tmp = path + _TMP_SUFFIX
    try:
        with open(tmp, "wb") as f:
            _copy(tar, buf, f.write)
        os.rename(tmp, path)  # the file is always its old or its new content
    except Exception:  # not a power cut: leave no temporary file behind
        try:
            _finish_rename(path)
        except OSError:
            pass
        _remove(tmp)
        raise


def _install(state, cfg, quiet):
    """Validate, then apply. A refused archive changes nothing and is deleted.

    An install that fails all the same, for any reason but a power cut (which stops the
    code: recover() finishes that), is tried once more by the next recover(); failing
    again, it deletes the archive and remembers the release as failed, so that the device
    stops retrying it and takes the next release.
    """
    buf = memoryview(bytearray(_CHUNK))
    try:
        plan = _validate(state, cfg, buf)
    except VerifyError:
        _clear_state(state)
        raise
    _collect()  # the first pass's gzip window
    try:
        _apply(state, plan, buf, quiet)
    except Exception:
        if state[0] == "retry":
            _remove(state[4])
            _write_state("failed", *state[1:])
        else:
            _write_state("retry", *state[1:])
        raise


def _apply(state, plan, buf, quiet):
    new_cfg, delete = plan
    version, excluded = state[1], state[5]
    made = ""
    tar = _Tar(state[4], buf)
    try:
        path = tar.next()  # the window is allocated now, while nothing has changed yet
        _write_state("retry" if state[0] == "retry" else "installing", *state[1:])
        if _read_version() == version:
            _remove("version")  # a reinstall: only the new version file may commit it
        while path is not None:
            if not (path in ("", "version", "uota.cfg") or _excluded(path.lower(), excluded)):
                folder = path if tar.is_dir else _new_parent(path, made)
                if folder:
                    _makedirs(folder)  # also when the archive has no directory entries
                    made = folder
                if not tar.is_dir:
                    _write_member(tar, path, buf)
                _collect()
            path = tar.next()
    finally:
        tar.close()
    if new_cfg is not None:
        _write_atomic("uota.cfg", new_cfg)
    for entry in delete:
        _remove_tree(entry)
    _write_atomic("version", version)  # the commit point
    _clear_state(state)
    if not quiet:
        _log("info", "installed version %s" % version)


def _remove_tree(path):
    # a link is removed, never followed
    if _is_link(path) or not _is_dir(_stat(path)):
        _remove(path)
        return
    for entry in os.listdir(path):
        _remove_tree(path + "/" + entry)
    os.rmdir(path)


def _finish(state, cfg, quiet):
    """Finish the install the journal `state` records; True when done."""
    if _read_version() == state[1]:  # committed: only the clean-up was cut short
        _clear_state(state)
        return True
    if not _exists(state[4]):
        _remove(_STATE)
        raise VerifyError("an install of %s was interrupted and its archive is gone" % state[1])
    if not quiet:
        _log("info", "finishing the install of %s" % state[1])
    _install(state, cfg, quiet)
    return True
