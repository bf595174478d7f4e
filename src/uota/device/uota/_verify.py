# The archive's check, in check_for_updates() right after the download: one pass over it,
# before the device plans to install it, for everything that could make the install fail
# or reach what it must not. The install then trusts it and decompresses it only once.

import os

from ._core import (_BACKUP, _DELTA, _FILES, _OWN_FILES, _RECORDS, _TMP_SUFFIX, UotaError, VerifyError, _exists, _free_bytes, _is_dir, _is_link, _read_state,
                    _stat, const)
from ._paths import _HOME, _excluded, _new_parent, _parents
from ._tar import _Tar

_PATHS_MAX = const(2000)  # distinct files and folders one archive may name
_CFG_MAX = const(4096)  # the largest uota.cfg


def check_archive(cfg, buf):
    # Check the download that uota.state records: (that record, the release's uota.cfg
    # text or None, flash bytes the install needs at its peak, the files the installed
    # release listed in uota.files that this one does not ship), or VerifyError.
    archive, excluded = cfg["tmp_filename"], cfg["excluded_files"]
    # The window first, while the heap has its largest free stretch; the record after.
    tar = _Tar(archive, buf)
    first = tar.next()
    state = _read_state()
    version = state[1]
    protected = (archive.lower(),) + _RECORDS  # compared lower-cased, as FAT finds names
    release_cfg = delta = None
    listed = False  # whether the release lists its files
    ships_home = False  # whether it ships device code where the running one is
    bsize = os.statvfs(".")[0]
    free = _free_bytes()
    # On trial (_trial) a copy of each file replaced stays in the backup, whose folders
    # mirror the release's: one for what it replaced, one for the marks of what it added.
    trial = 4 * bsize if cfg.get("trial_boots") else 0
    growth = peak = 3 * trial // 2
    checked = ""
    # Hashes of the lower-cased paths the archive makes files and folders (one path may not
    # be both), and of the folders already counted. A collision refuses a good archive,
    # which is safe; whole names would cost more RAM.
    files, folders = set(), set()
    try:
        for path in _members(tar, first):
            if not path:
                continue  # the root
            is_dir, size = tar.is_dir, tar.left
            key = path.lower()
            if _overwrites(path, key, protected):
                raise VerifyError("archive would overwrite %r" % path)
            if is_dir and size:
                raise VerifyError("archive has directory %r with data" % path)
            if path == _DELTA:
                if size > _CFG_MAX:
                    raise VerifyError("the archive's uota.delta is too large")
                delta = tar._read_small(size).decode()  # checked once the window is freed
                continue
            if path == "version":
                if size > 64 or tar._read_small(size).decode().strip() != version:
                    raise VerifyError("the archive's version file does not say %s" % version)
                continue
            if _excluded(key, excluded):
                continue
            parent = _new_parent(path, checked)
            if parent:
                for step in _parents(parent):  # each must be a directory, or be made one
                    growth += _new_folder(step, files, folders, bsize, trial)
                checked = parent
            if is_dir:
                growth += _new_folder(path, files, folders, bsize, trial)
                continue
            if hash(key) in folders:
                raise VerifyError("archive has %r as both a file and a folder" % path)
            files.add(hash(key))
            if len(files) + len(folders) > _PATHS_MAX:
                raise VerifyError("archive names more than %d paths" % _PATHS_MAX)
            if path == "uota.cfg":
                if size > _CFG_MAX:
                    raise VerifyError("the archive's uota.cfg is too large")
                release_cfg = tar._read_small(size).decode()  # checked once the window is freed
            listed = listed or path == _FILES
            ships_home = ships_home or key.startswith(_HOME)
            st = _stat(path)
            if _is_dir(st):
                raise VerifyError("archive has file %r where the device has a directory" % path)
            old = (st[6] + bsize - 1) // bsize * bsize if st else 0
            blocks = (size + bsize - 1) // bsize * bsize
            # the new file beside the old (and, on trial, the old one's copy), then the old goes
            peak = max(peak, growth + blocks + bsize + (old if trial else 0))
            growth += blocks - (0 if trial else old)
            if peak > free:  # refuse a decompression bomb at its first oversized member
                raise VerifyError("the release needs %d kB more than the %d kB free" % ((peak - free + 1023) // 1024, free // 1024))
    except ValueError:  # text members that are not UTF-8
        raise VerifyError("the archive's version or uota.cfg is not text")
    except MemoryError:  # a UotaError, not a VerifyError: the next try checks it again
        raise UotaError("not enough RAM to check the archive")
    finally:
        tar.close()
    tar = None  # frees the window for the record's lines, and for the code that reads them
    from ._listed import dropped

    if delta is not None:
        from ._delta import check_base

        lines, keeps_home = check_base(delta, listed, files, excluded, buf)
        return state, release_cfg, peak, dropped(lines, files, ships_home or keeps_home, protected)
    if not listed or not _exists(_FILES):  # not opened to fail: see _core._read_text
        return state, release_cfg, peak, ()
    try:
        with open(_FILES) as f:
            return state, release_cfg, peak, dropped(f, files, ships_home, protected)
    except OSError:  # a record that cannot be read keeps every file
        return state, release_cfg, peak, ()


def shipped(cfg, buf, paths):
    # {path: text} of the files of `paths` (canonical, at most _CFG_MAX bytes each) that the
    # download installs: excluded ones are not.
    tar = _Tar(cfg["tmp_filename"], buf)
    texts = {}
    try:
        path = tar.next()
        while path is not None:
            if path in paths and not tar.is_dir and tar.left <= _CFG_MAX and not _excluded(path.lower(), cfg["excluded_files"]):
                texts[path] = tar._read_small(tar.left).decode()
            path = tar.next()
    except ValueError:
        raise VerifyError("the archive's key file %r is not text" % path)
    finally:
        tar.close()
    return texts


def _overwrites(path, key, protected):
    return (key in protected or key.startswith(_BACKUP + "/") or key.endswith(_TMP_SUFFIX)
            or key in _OWN_FILES and key != path)


def _members(tar, path):
    while path is not None:
        yield path
        path = tar.next()


def _new_folder(path, files, folders, bsize, backup):
    # The flash a folder the archive makes or uses costs (none when it exists or was
    # counted already; `backup` more on trial); VerifyError where the device or the archive
    # has a file or a link.
    h = hash(path.lower())
    if h in folders:
        return 0
    if h in files:
        raise VerifyError("archive has %r as both a file and a folder" % path)
    folders.add(h)
    st = _stat(path)
    if st is None:
        return 2 * bsize + backup
    if not _is_dir(st) or _is_link(path):
        raise VerifyError("archive puts %r where the device has a file or a link" % path)
    return backup
