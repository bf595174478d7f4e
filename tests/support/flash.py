"""A flash chip whose power can be cut, and the filesystems boards put on it, on CPython.

`Flash` is 1 MB of 4 KB blocks. A *write* is one operation the filesystem driver sends to
the chip: a program (littlefs programs 32..128 bytes at a time, as MicroPython configures
it) or a block erase for littlefs, one 4 KB sector for FAT. `flash.cut_power_after(n)` lets
n more writes through; every later write (and erase) is silently lost, as if the board had
gone dark while the code kept running. `flash.writes` counts the writes asked for.

`LittleFs(flash)` and `Fat(flash)` mount the real C drivers (littlefs-python, fatfs-ng:
ChaN's FatFs) over it and are the `os` module the device code sees, with `open`:

    fs = LittleFs.format(Flash())
    install(device_module, fs)      # device_module.os = fs; device_module.open = fs.open
    ...
    flash.reboot(); fs = LittleFs(flash)   # a fresh mount of the same bytes

Errors are `OSError(errno)` as on MicroPython; `rename` replaces an existing file as
MicroPython's VFS does: littlefs natively, FAT by removing the target then renaming (the
`extmod/vfs_fat.c` recipe), so a cut can fall between the two.
"""

import errno
import sys

import fatfs
import littlefs
from fatfs import wrapper as fatfs_c
from littlefs import lfs

BLOCK_SIZE = 4096
FLASH_SIZE = 1024 * 1024
_DIR_MODE = 0x4000
_FILE_MODE = 0x8000


class Flash:
    """The chip: its bytes, a write counter and an optional power cut."""

    def __init__(self, image=None):
        self.image = bytearray(image) if image is not None else bytearray(b"\xff" * FLASH_SIZE)
        self.writes = 0
        self.programmed = 0  # bytes littlefs programmed (erases aside), for bench/delta.py
        self.cut_after = None

    def cut_power_after(self, writes):
        """Let `writes` more writes reach the chip and lose every one after them."""
        self.writes = 0
        self.cut_after = writes

    def reboot(self):
        """Power back on: writes count from zero and reach the chip again."""
        self.writes = 0
        self.cut_after = None

    @property
    def powered(self):
        return self.cut_after is None or self.writes < self.cut_after

    def read(self, offset, size):
        return bytes(self.image[offset : offset + size])

    def write(self, offset, data):
        if self.powered:
            self.image[offset : offset + len(data)] = data
        self.writes += 1


# ---------------------------------------------------------------- files


class _File:
    """What MicroPython's open() returns: text for 'r'/'w'/'a', bytes with 'b'."""

    def __init__(self, fs, handle, text):
        self.fs = fs
        self.handle = handle
        self.text = text

    def read(self, size=-1):
        if size >= 0:
            data = self.fs._read(self.handle, size)
        else:
            parts = []
            while True:
                part = self.fs._read(self.handle, BLOCK_SIZE)
                if not part:
                    break
                parts.append(part)
            data = b"".join(parts)
        return data.decode() if self.text else data

    def readinto(self, buf):
        data = self.fs._read(self.handle, len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            byte = self.fs._read(self.handle, 1)
            if not byte:
                break
            line += byte
        return line.decode() if self.text else line

    def __iter__(self):  # lines, as MicroPython's files give them
        return iter(self.readline, "" if self.text else b"")

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        return self.fs._write(self.handle, bytes(data))

    def seek(self, offset):
        self.fs._seek(self.handle, offset)

    def close(self):
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.fs._close(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stat_tuple(is_dir, size):
    # MicroPython's os.stat: st_mode first, st_size at index 6
    return (_DIR_MODE if is_dir else _FILE_MODE, 0, 0, 0, 0, 0, size, 0, 0, 0)


def _file_mode(mode):
    """'r', 'w' or 'a' and whether the file is text, for the modes the device code uses."""
    kind = mode.replace("b", "")
    if kind not in ("r", "w", "a"):
        raise OSError(errno.EINVAL)
    return kind, "b" not in mode


def install(device_package, fs):
    """Make the device package use fs: its modules' globals shadow the builtins `os` and `open`."""
    set_in_package(device_package, "os", fs)
    set_in_package(device_package, "open", fs.open)


def set_in_package(package, name, value):
    """Set a global `name` of the package and of each of its loaded modules."""
    for module_name, module in list(sys.modules.items()):
        if module_name == package.__name__ or module_name.startswith(package.__name__ + "."):
            setattr(module, name, value)


# ---------------------------------------------------------------- littlefs


class _FlashContext(littlefs.UserContext):
    """littlefs's block device callbacks, sent to the chip."""

    def __init__(self, flash):
        self.flash = flash

    def read(self, cfg, block, off, size):
        return self.flash.read(block * BLOCK_SIZE + off, size)

    def prog(self, cfg, block, off, data):
        self.flash.programmed += len(data)
        self.flash.write(block * BLOCK_SIZE + off, data)
        return 0

    def erase(self, cfg, block):
        self.flash.write(block * BLOCK_SIZE, b"\xff" * BLOCK_SIZE)
        return 0

    def sync(self, cfg):
        return 0


def _lfs_call(function, *args):
    # littlefs's error codes are negated errno values; MicroPython raises OSError(-code)
    try:
        return function(*args)
    except littlefs.LittleFSError as e:
        raise OSError(-e.code) from None


def _lfs_config(flash):
    return lfs.LFSConfig(
        context=_FlashContext(flash),
        block_size=BLOCK_SIZE,
        block_count=FLASH_SIZE // BLOCK_SIZE,
        read_size=32,
        prog_size=32,
        cache_size=128,
        lookahead_size=32,
        block_cycles=100,
    )


class LittleFs:
    """littlefs v2 set up as MicroPython's VfsLfs2 does (read/prog 32, cache 128, lookahead 32)."""

    def __init__(self, flash):
        self.flash = flash
        self.cfg = _lfs_config(flash)
        self.fs = lfs.LFSFilesystem()
        _lfs_call(lfs.mount, self.fs, self.cfg)

    @classmethod
    def format(cls, flash):
        _lfs_call(lfs.format, lfs.LFSFilesystem(), _lfs_config(flash))
        return cls(flash)

    # os functions

    def stat(self, path):
        st = _lfs_call(lfs.stat, self.fs, path)
        is_dir = st.type == lfs.LFSStat.TYPE_DIR
        return _stat_tuple(is_dir, 0 if is_dir else st.size)

    def remove(self, path):
        if self.stat(path)[0] == _DIR_MODE:
            raise OSError(errno.EISDIR)
        _lfs_call(lfs.remove, self.fs, path)

    def rmdir(self, path):
        if self.stat(path)[0] != _DIR_MODE:
            raise OSError(errno.ENOTDIR)
        _lfs_call(lfs.remove, self.fs, path)

    def rename(self, old, new):
        _lfs_call(lfs.rename, self.fs, old, new)

    def mkdir(self, path):
        _lfs_call(lfs.mkdir, self.fs, path)

    def listdir(self, path="."):
        handle = _lfs_call(lfs.dir_open, self.fs, path)
        names = []
        try:
            while True:
                entry = _lfs_call(lfs.dir_read, self.fs, handle)
                if entry is None:
                    return names
                if entry.name not in (".", ".."):
                    names.append(entry.name)
        finally:
            lfs.dir_close(self.fs, handle)

    def statvfs(self, path):
        blocks = FLASH_SIZE // BLOCK_SIZE
        free = blocks - _lfs_call(lfs.fs_size, self.fs)
        return (BLOCK_SIZE, BLOCK_SIZE, blocks, free, free, 0, 0, 0, 0, 255)

    def getcwd(self):
        return "/"

    def open(self, path, mode="r"):
        kind, text = _file_mode(mode)
        flags = {"r": "r", "w": "w", "a": "a"}[kind]
        return _File(self, _lfs_call(lfs.file_open, self.fs, path, flags), text)

    # what _File needs

    def _read(self, handle, size):
        return _lfs_call(lfs.file_read, self.fs, handle, size)

    def _write(self, handle, data):
        return _lfs_call(lfs.file_write, self.fs, handle, data)

    def _seek(self, handle, offset):
        _lfs_call(lfs.file_seek, self.fs, handle, offset, 0)

    def _close(self, handle):
        _lfs_call(lfs.file_close, self.fs, handle)


# ---------------------------------------------------------------- FAT


class _SectorDisk(fatfs.diskio.Disk):
    """FatFs's disk callbacks, sent to whichever chip is mounted: a multi-sector write is
    one write per sector, in order, so a cut can fall between them."""

    flash = None

    def ioctl_get_sector_count(self):
        return FLASH_SIZE // BLOCK_SIZE

    def ioctl_get_sector_size(self):
        return BLOCK_SIZE

    def ioctl_get_block_size(self):
        return 1

    def read(self, sector, count):
        return self.flash.read(sector * BLOCK_SIZE, count)

    def write(self, sector, count, buff):
        for done in range(0, count, BLOCK_SIZE):
            self.flash.write(sector * BLOCK_SIZE + done, bytes(buff[done : done + BLOCK_SIZE]))


class _FatDrive:
    """The one FatFs drive slot these tests use (fatfs-ng has ten a process and frees none)."""

    def __init__(self):
        self.disk = _SectorDisk()
        self.prefix = fatfs_c.Partition(self.disk)._adjust_path("")  # b"0:"
        self.volume = None

    def mount(self, flash):
        """Mount flash in place of what was mounted; (the volume handle, the path prefix)."""
        self.disk.flash = flash
        volume = fatfs_c.FATFS_Handle()  # a new one: nothing cached from before
        _fat_check(fatfs_c.pyf_mount(volume, self.prefix, 1))
        # FatFs writes into the volume it replaces: that one may be freed only now
        self.volume = volume
        return volume, self.prefix


_drive = None


def _fat_drive():
    global _drive
    if _drive is None:
        _drive = _FatDrive()
    return _drive


# FatFs results as the errno values MicroPython's vfs_fat.c raises
_FAT_ERRNO = {
    fatfs_c.PY_FR_NO_FILE: errno.ENOENT,
    fatfs_c.PY_FR_NO_PATH: errno.ENOENT,
    fatfs_c.PY_FR_EXIST: errno.EEXIST,
    fatfs_c.PY_FR_DENIED: errno.EACCES,
    fatfs_c.PY_FR_INVALID_NAME: errno.EINVAL,
}


def _fat_check(result):
    if result != fatfs_c.PY_FR_OK:
        raise OSError(_FAT_ERRNO.get(result, errno.EIO))


class Fat:
    """FAT (FatFs, one FAT copy, 4 KB sectors and clusters) as MicroPython's VfsFat uses it.

    One Fat is mounted at a time in a process: mounting another replaces it.
    """

    def __init__(self, flash):
        self.flash = flash
        self.volume, self.drive = _fat_drive().mount(flash)

    @classmethod
    def format(cls, flash):
        drive = _fat_drive()
        drive.disk.flash = flash
        _fat_check(fatfs_c.pyf_mkfs(drive.prefix, n_fat=1, workarea_size=BLOCK_SIZE))
        return cls(flash)

    def _path(self, path):
        return self.drive + b"/" + path.encode()

    # os functions

    def stat(self, path):
        info = fatfs_c.FILINFO_Handle()
        _fat_check(fatfs_c.pyf_stat(self._path(path), info))
        is_dir = info.is_directory()
        return _stat_tuple(is_dir, 0 if is_dir else info.get_size())

    def remove(self, path):
        if self.stat(path)[0] == _DIR_MODE:
            raise OSError(errno.EISDIR)
        _fat_check(fatfs_c.pyf_unlink(self._path(path)))

    def rmdir(self, path):
        if self.stat(path)[0] != _DIR_MODE:
            raise OSError(errno.ENOTDIR)
        _fat_check(fatfs_c.pyf_unlink(self._path(path)))

    def rename(self, old, new):
        # vfs_fat.c: f_rename refuses an existing target, so remove it and rename again
        result = fatfs_c.pyf_rename(self._path(old), self._path(new))
        if result == fatfs_c.PY_FR_EXIST:
            self.remove(new)
            result = fatfs_c.pyf_rename(self._path(old), self._path(new))
        _fat_check(result)

    def mkdir(self, path):
        _fat_check(fatfs_c.pyf_mkdir(self._path(path)))

    def listdir(self, path="."):
        folder = fatfs_c.DIR_Handle()
        info = fatfs_c.FILINFO_Handle()
        _fat_check(fatfs_c.pyf_opendir(folder, self._path("" if path == "." else path)))
        names = []
        try:
            while True:
                _fat_check(fatfs_c.pyf_readdir(folder, info))
                name = info.get_name()
                if not name:
                    return names
                names.append(name)
        finally:
            fatfs_c.pyf_closedir(folder)

    def statvfs(self, path):
        clusters, free = _fat_clusters(self.flash)
        return (BLOCK_SIZE, BLOCK_SIZE, clusters, free, free, 0, 0, 0, 0, 255)

    def getcwd(self):
        return "/"

    def open(self, path, mode="r"):
        kind, text = _file_mode(mode)
        flags = {
            "r": fatfs_c.PY_FA_READ,
            "w": fatfs_c.PY_FA_WRITE | fatfs_c.PY_FA_CREATE_ALWAYS,
            "a": fatfs_c.PY_FA_WRITE | fatfs_c.PY_FA_OPEN_APPEND,
        }[kind]
        handle = fatfs_c.FIL_Handle()
        _fat_check(fatfs_c.pyf_open(handle, self._path(path), flags))
        return _File(self, handle, text)

    # what _File needs

    def _read(self, handle, size):
        result, data = fatfs_c.pyf_read(handle, size)
        _fat_check(result)
        return data

    def _write(self, handle, data):
        result, written = fatfs_c.pyf_write(handle, data)
        _fat_check(result)
        if written < len(data):
            raise OSError(errno.ENOSPC)  # vfs_fat.c's answer to a short write
        return written

    def _seek(self, handle, offset):
        _fat_check(fatfs_c.pyf_lseek(handle, offset))

    def _close(self, handle):
        _fat_check(fatfs_c.pyf_close(handle))


def _fat_clusters(flash):
    """(data clusters, free ones), counted in the FAT on the chip (FAT12 or FAT16).

    fatfs-ng has no f_getfree; a FAT sector FatFs still holds in its window is not counted.
    """
    boot = flash.read(0, 64)
    sector_size = int.from_bytes(boot[11:13], "little")
    per_cluster = boot[13]
    reserved = int.from_bytes(boot[14:16], "little")
    fats = boot[16]
    root_sectors = (int.from_bytes(boot[17:19], "little") * 32 + sector_size - 1) // sector_size
    total = int.from_bytes(boot[19:21], "little") or int.from_bytes(boot[32:36], "little")
    fat_size = int.from_bytes(boot[22:24], "little")
    clusters = (total - reserved - fats * fat_size - root_sectors) // per_cluster
    table = flash.read(reserved * sector_size, fat_size * sector_size)
    free = 0
    for cluster in range(2, clusters + 2):
        if clusters < 4085:  # FAT12: 12-bit entries packed in pairs
            pair = int.from_bytes(table[cluster * 3 // 2 : cluster * 3 // 2 + 2], "little")
            entry = pair >> 4 if cluster & 1 else pair & 0xFFF
        else:
            entry = int.from_bytes(table[cluster * 2 : cluster * 2 + 2], "little")
        free += entry == 0
    return clusters, free
