# cutfs: an in-memory filesystem for MicroPython's VFS that loses power after N writes.
#
# A write is one call that changes the filesystem: open for writing (creates or empties
# the file), a file's write(), rename, remove, mkdir, rmdir. After the `cut_after`-th,
# every change is silently dropped, as on a board whose power is gone while the code runs.
# With `fail_at`, the fail_at-th write instead raises OSError(5) (EIO) and changes nothing,
# as a flash that reports an error; the writes before and after it go through. `trace`
# names every write in order ("rename a>b", "write a", ...), to pick the one to fail.
# Each change is whole once made (a rename replaces its target atomically, as littlefs
# does), or, with fat_rename, a rename onto a file is remove-then-rename as on FAT.
# The tree persists between scripts ("boots") as JSON in the device's real folder:
# {path: the bytes as a list of numbers, or null for a directory} (binascii is slow Python
# code on some WebAssembly builds; json is C everywhere).

import json
import os

try:
    import io
except ImportError:  # MicroPython 1.20
    import uio as io

MOUNT = "/cut"
_DIR = 0x4000
_FILE = 0x8000


class CutFS:
    def __init__(self, tree, fat_rename, cut_after, fail_at=None):
        self.files = tree  # path -> bytearray, or None for a directory
        self.fat_rename = fat_rename
        self.cut_after = cut_after
        self.fail_at = fail_at
        self.writes = 0
        self.trace = []

    def _change(self, what):
        """Count a write; True while it still reaches the flash. The fail_at-th raises EIO."""
        self.writes += 1
        self.trace.append(what)
        if self.writes == self.fail_at:
            raise OSError(5)  # EIO
        return self.cut_after is None or self.writes <= self.cut_after

    def _parent_is_dir(self, path):
        parent = path.rpartition("/")[0]
        if parent and self.files.get(parent, b"") is not None:
            raise OSError(2)  # ENOENT: no such directory

    def _get(self, path):
        path = path.strip("/")
        if path not in self.files and path not in ("", "."):
            raise OSError(2)  # ENOENT
        return path

    # the VFS protocol

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        pass

    def getcwd(self):
        return ""

    def ilistdir(self, path):
        folder = self._get(path)
        prefix = folder + "/" if folder not in ("", ".") else ""
        for name in list(self.files):
            if name.startswith(prefix) and "/" not in name[len(prefix) :]:
                yield (name[len(prefix) :], _DIR if self.files[name] is None else _FILE, 0)

    def stat(self, path):
        path = self._get(path)
        data = self.files.get(path)
        return (_DIR if data is None else _FILE, 0, 0, 0, 0, 0, 0 if data is None else len(data), 0, 0, 0)

    def statvfs(self, path):
        used = sum((len(d) + 4095) // 4096 + 1 for d in self.files.values() if d is not None)
        return (4096, 4096, 256, 256 - used, 256 - used, 0, 0, 0, 0, 255)

    def mkdir(self, path):
        path = path.strip("/")
        if path in self.files:
            raise OSError(17)  # EEXIST
        self._parent_is_dir(path)
        if self._change("mkdir " + path):
            self.files[path] = None

    def rmdir(self, path):
        path = self._get(path)
        if any(name.startswith(path + "/") for name in self.files):
            raise OSError(39)  # ENOTEMPTY
        if self._change("rmdir " + path):
            del self.files[path]

    def remove(self, path):
        path = self._get(path)
        if self.files[path] is None:
            raise OSError(21)  # EISDIR
        if self._change("remove " + path):
            del self.files[path]

    def rename(self, old, new):
        old, new = self._get(old), new.strip("/")
        self._parent_is_dir(new)
        if self.fat_rename and new in self.files:
            self.remove(new)
        if self._change("rename %s>%s" % (old, new)):
            self.files[new] = self.files.pop(old)

    def open(self, path, mode):
        path = path.strip("/")
        if "r" in mode:
            data = self.files[self._get(path)]
        else:
            self._parent_is_dir(path)
            data = self.files.get(path)
            if data is None or "w" in mode:
                data = bytearray()
            if self._change("open " + path):
                self.files[path] = data
        return CutFile(self, data, "b" not in mode, path)


class CutFile(io.IOBase):
    def __init__(self, fs, data, text, path):
        self.fs = fs
        self.data = data
        self.text = text
        self.path = path
        self.pos = 0

    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def read(self, size=-1):
        end = len(self.data) if size < 0 else min(len(self.data), self.pos + size)
        chunk = bytes(self.data[self.pos : end])
        self.pos = end
        return chunk.decode() if self.text else chunk

    def readline(self):
        end = self.data.find(b"\n", self.pos) + 1 or len(self.data)
        return self.read(end - self.pos)

    def __iter__(self):  # lines, as a VFS file gives them
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, buf):
        if self.fs._change("write " + self.path):
            self.data.extend(buf.encode() if isinstance(buf, str) else buf)
        return len(buf)

    def seek(self, offset):
        self.pos = offset

    def ioctl(self, request, arg):
        return 0  # flush and close have nothing to do

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def boot(image, fat_rename, cut_after, fail_at=None):
    """Load the tree from `image` (a file in the device folder), mount it and chdir into it."""
    with open(image) as f:
        saved = json.load(f)
    tree = {}
    for path, data in saved.items():
        tree[path.rstrip("/")] = None if data is None else bytearray(data)
    fs = CutFS(tree, fat_rename, cut_after, fail_at)
    os.mount(fs, MOUNT)
    os.chdir(MOUNT)
    return fs


def save(fs, image):
    tree = {}
    for path, data in fs.files.items():
        if data is None:
            tree[path + "/"] = None
        else:
            tree[path] = list(data)
    text = json.dumps(tree)  # one write: json.dump writes token by token, slowly on 1.20
    with open("/flash/" + image, "w") as f:
        f.write(text)
