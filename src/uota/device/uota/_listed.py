# The files the installed release listed in uota.files that a new one drops: read by the
# archive's check (_verify) once its window is freed.

from ._core import VerifyError, _is_dir, _stat
from ._paths import _HOME, _safe_path
from ._verify import _overwrites


def dropped(lines, files, ships_home, protected):
    # Of the files named by `lines` of uota.files (SHA256HEX SIZE PATH), those on the device
    # that go once the new files are in place: never what this release ships, what a release
    # may not write, nor the running device code unless the release ships device code in its
    # place. A hash collision keeps a file, which is safe; so does a record that cannot be read.
    dropped = []
    try:
        for line in lines:
            path = line.rstrip("\n").split(" ", 2)[-1]
            key = path.lower()
            if hash(key) in files or _overwrites(path, key, protected) or not ships_home and key.startswith(_HOME):
                continue
            try:
                if _safe_path(path) != path:
                    continue  # ./x names x: only one spelling counts
            except VerifyError:
                continue
            st = _stat(path)
            if st and not _is_dir(st):
                dropped.append(path)
    except (OSError, ValueError):  # a record that cannot be read, or is not text
        return ()
    return dropped
