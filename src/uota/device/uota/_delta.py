# Delta releases: an archive holding only what changed since one earlier release.
#
# `latest` names them with "delta=SHA256": the hash of FILENAME.deltas, whose lines read
# like latest's, "FROM_VERSION;DELTA_ARCHIVE;free_kB;sha256;size=N". The delta archive is
# an ordinary release archive (version, the changed files, the whole release's uota.files)
# plus a uota.delta member: the version it applies to, the SHA-256 of that release's
# uota.files, then the files to delete, one per line. A device takes it only when its
# version and uota.files are that release's and every file it keeps is as that record
# says; else, or when anything about the delta fails, it takes the full release.

from ._core import _FILES, _OWN_FILES, VerifyError, _copy, _hex, _read_version, _sha256, _stat
from ._paths import _HOME, _excluded


def check_base(text, listed, shipped, excluded, buf):
    # When the delta that uota.delta's `text` describes applies to this device: (the lines
    # of its uota.files that name the files the delta deletes; whether the release keeps
    # device code in place). Else VerifyError. `listed`: whether the delta has the release's
    # uota.files; `shipped`: hashes of the lower-cased paths the delta writes.
    lines = text.split("\n")
    if not listed or len(lines) < 3 or lines[0] != _read_version():
        raise VerifyError("the delta does not apply to version %s, or lists no files" % _read_version())
    deletes = lines[2:]
    try:
        if _file_sha(_FILES, buf) != lines[1]:
            raise VerifyError("the delta's base is not the release this device has")
        gone = []
        keeps_home = False
        with open(_FILES) as f:
            for entry in f:
                sha, size, path = entry.rstrip("\n").split(" ", 2)
                key = path.lower()
                if path in deletes:
                    gone.append(entry)
                elif not (hash(key) in shipped or key in _OWN_FILES or _excluded(key, excluded)):
                    keeps_home = keeps_home or key.startswith(_HOME)
                    st = _stat(path)
                    if not st or st[6] != int(size) or _file_sha(path, buf) != sha:
                        raise VerifyError("%r differs from the release this device had" % path)
    except (OSError, ValueError):
        raise VerifyError("the delta's base cannot be checked")
    return gone, keeps_home


def _file_sha(path, buf):
    hasher = _sha256()
    with open(path, "rb") as f:
        _copy(f, buf, hasher.update)
    return _hex(hasher.digest())
