# The archive: tar in gzip, read through one buffer.

import gc

from ._core import UotaError, VerifyError, _number, const
from ._paths import _safe_path

_ROOM = const(24576)  # heap free beside the window for the lookahead (3.5 KB) to take its share
_MEMBERS_MAX = const(2000)
_SMALL_MEMBER_MAX = const(4096)  # `version`, `uota.cfg` and pax/GNU name records


def _gunzip(f, wbits):
    # A stream of the decompressed gzip file f with readinto(); wbits sizes its window.
    try:
        import deflate  # MicroPython >= 1.21

        return deflate.DeflateIO(f, deflate.GZIP, wbits)
    except ImportError:
        pass
    try:
        import uzlib  # MicroPython < 1.21
    except ImportError:  # CPython, whose zlib has no such stream: code a board never loads
        from ._cpython import ZlibStream

        return ZlibStream(f)
    return uzlib.DecompIO(f, 16 + wbits)


def window_bits(header):
    # The deflate window an archive was made with: gzip FEXTRA subfield "uw", else 15.
    #
    # A release built with a small window can be unpacked with that much RAM; a plain
    # `tar -czf` archive says nothing and needs the full 32 KB.
    n = len(header)
    if n < 12 or header[0] != 0x1F or header[1] != 0x8B or not header[3] & 4:
        return 15
    end = min(12 + (header[10] | header[11] << 8), n)
    pos = 12
    while pos + 4 <= end:
        size = header[pos + 2] | header[pos + 3] << 8
        if header[pos] == 0x75 and header[pos + 1] == 0x77 and size == 1 and pos + 4 < end:
            bits = header[pos + 4]
            if 9 <= bits <= 15:
                return bits
        pos += 4 + size
    return 15


class _Tar:
    # Members of a .tar.gz, read through one 512-byte view of the shared buffer.

    def __init__(self, path, buf):
        self.f = open(path, "rb")
        self.buf = buf = memoryview(buf)  # sliced without copying
        self.block = buf[:512]
        try:
            self.bits = window_bits(buf[: self.f.readinto(buf[:64])])
            self.f.seek(0)
            self.gz = None
            # Only MicroPython's gc tells the free heap; CPython's zlib shim reads 1 KB at a time.
            if hasattr(gc, "mem_free") and gc.mem_free() >= (1 << self.bits) + _ROOM:
                try:
                    from ._lookahead import Lookahead

                    self.gz = Lookahead(path, self.f, self.bits)
                except MemoryError:  # the window matters, the lookahead does not
                    gc.collect()
                    self.f.seek(0)
            self.gz = self.gz or _gunzip(self.f, self.bits)
        except MemoryError:  # not the archive's fault: it is checked again at the next try
            self.f.close()
            raise UotaError("no RAM for the archive's %d-byte window" % (1 << self.bits))
        except (OSError, ValueError, EOFError):  # MicroPython < 1.21 reads the header here
            self.f.close()
            raise VerifyError("archive is not a gzip file")
        self.left = 0  # unread data of the current member
        self.pad = 0
        self.count = 0
        self.is_dir = False

    def close(self):
        self.f.close()

    def _fill(self, view):
        n = 0
        while n < len(view):
            got = self._read(view if n == 0 else view[n:])
            if not got:
                raise VerifyError("archive is truncated")
            n += got

    def _read(self, view):
        try:
            return self.gz.readinto(view)
        except (OSError, ValueError):  # what MicroPython's decompressors raise on corrupt data
            raise VerifyError("archive is not a valid gzip file")
        except EOFError:  # ... and on a gzip stream cut short
            raise VerifyError("archive is truncated")
        except MemoryError:  # deflate allocates its window at the first read
            raise UotaError(
                "not enough RAM for the %d-byte window this archive needs: build the release "
                "with a smaller uota build --window-bits than %d" % (1 << self.bits, self.bits)
            )

    def readinto(self, buf):
        if self.left <= 0:
            return 0
        view = buf if self.left >= len(buf) else buf[: self.left]
        self._fill(view)
        self.left -= len(view)
        return len(view)

    def _skip_rest(self):
        self.left += self.pad
        self.pad = 0
        while self.left > 0:
            n = min(self.left, 512)
            self._fill(self.block if n == 512 else self.block[:n])
            self.left -= n

    def next(self):
        # The next member's path (its kind in is_dir, its size in left), or None at the end.
        name = None
        size = None
        while True:
            self._skip_rest()
            self._fill(self.block)
            if not any(self.block):
                self._finish()
                return None
            self.count += 1
            if self.count > _MEMBERS_MAX:
                raise VerifyError("archive has more than %d members" % _MEMBERS_MAX)
            kind, member_size, header_name = self._header()
            self.left = member_size
            self.pad = -member_size % 512
            if kind in "xgL":  # pax records or a GNU long name for the next member
                if member_size > _SMALL_MEMBER_MAX:
                    raise VerifyError("archive has an oversized extended header")
                data = self._read_small(member_size)
                if kind == "L":
                    name = _text(data, 0, len(data))
                else:
                    name, size = _pax(data, name, size)
                continue
            if size is not None:
                self.left = size
                self.pad = -size % 512
            self.is_dir = kind == "5"
            return _safe_path(name or header_name)

    def _read_small(self, size):
        data = bytearray(size)
        self._fill(memoryview(data))
        self.left = 0
        return bytes(data)

    def _header(self):
        b = self.block
        total = sum(b) + 8 * 32  # the checksum field counts as spaces
        for i in range(148, 156):
            total -= b[i]
        if _number(b, 148, 156, 8) != total:
            raise VerifyError("archive has a corrupt tar header")
        if b[124] & 0x80:
            raise VerifyError("archive member too large")
        size = max(_number(b, 124, 136, 8), 0)
        name = _text(b, 0, 100)
        if b[345] and b[257] == 117 and b[262] == 0:  # POSIX "ustar\0": a prefix field
            name = _text(b, 345, 500) + "/" + name
        kind = chr(b[156]) if b[156] else "0"
        if kind not in "05xgL":
            raise VerifyError("archive member %r is not a regular file or directory" % name)
        return kind, size, name

    def _finish(self):
        # Read the gzip stream to its end so that its CRC is checked.
        while self._read(self.buf):
            pass


def _text(buf, start, end):
    # a NUL-terminated tar header field as text
    stop = start
    while stop < end and buf[stop]:
        stop += 1
    try:
        return str(memoryview(buf)[start:stop], "utf-8")
    except ValueError:  # also for GNU long names, read outside _header
        raise VerifyError("archive has a member name that is not UTF-8")


def _pax(data, name, size):
    # "<len> key=value\n" records; only path and size matter here
    pos = 0
    try:
        while pos < len(data):
            space = data.index(b" ", pos)
            end = pos + int(data[pos:space])
            if end <= space:  # a length of 0 (or less) would read the same record forever
                raise ValueError
            key, _, value = bytes(data[space + 1 : end - 1]).partition(b"=")
            if key == b"path":
                name = value.decode()
            elif key == b"size":
                size = int(value)
                if size < 0:  # would skew the free-space estimate and the stream position
                    raise ValueError
            pos = end
    except ValueError:
        raise VerifyError("archive has a corrupt pax header")
    return name, size
