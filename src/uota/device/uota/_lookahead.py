# The archive's decompressor, fed 1-3 KB at a time from the file, when the heap has room
# for that (_tar). MicroPython's decompressors read their input one byte per call: from the
# file itself, each byte is a file read (a system call on the unix port, a trip through the
# VFS on a board), which made most of the time a decompression took.

import gc
import io
import os

from ._core import const
from ._tar import _gunzip

_SIZE = const(3072)
_LOW = const(2048)  # topped up before a read (of at most 1 KB) when fewer bytes are left


class Lookahead:
    # readinto() as the decompressor's. self.io is what that reads: a BytesIO whose bytes up
    # to self.end are the file's, the unread ones from its position on. Once self.io is None
    # the decompressor reads the file itself.

    def __init__(self, path, f, bits):
        self.f, self.bits = f, bits
        self.spare = memoryview(bytearray(512))  # what the bytes move through
        self.size = os.stat(path)[6]
        self.taken = 0  # bytes read from the file so far
        self.io = io.BytesIO(_SIZE)
        self.end = self._load(_SIZE)
        self.io.seek(0)
        self.done = 0  # bytes decompressed so far
        self.gz = _gunzip(self.io, bits)

    def readinto(self, view):
        # At most len(view) <= 1024 bytes; the decompressor's errors are its own.
        if not self.io:
            return self.gz.readinto(view)
        self._top_up()
        again = False  # no local refers to the buffer: it is garbage when read again
        try:
            n = self.gz.readinto(view)
        except MemoryError:  # the window, allocated at the first read, found no room beside it
            again = True
        except (OSError, ValueError, EOFError):
            if not self._dry():
                raise
            again = True
        if again or self._dry():
            return self._from_file(view)
        self.done += n
        return n

    def _from_file(self, view):
        # Decompress again straight from the file, up to where the last read began.
        skip = self.done
        self.io = self.gz = None
        gc.collect()
        self.f.seek(0)
        self.gz = _gunzip(self.f, self.bits)
        while skip:
            n = self.gz.readinto(view[: min(skip, len(view))])
            if not n:
                raise EOFError
            skip -= n
        return self.gz.readinto(view)

    def _load(self, n):
        # Copy the file's next n bytes (fewer at its end) to self.io's position; the count.
        spare, done = self.spare, 0
        while done < n:
            got = self.f.readinto(spare if n - done >= 512 else spare[: n - done])
            if not got:
                break
            self.io.write(spare if got == 512 else spare[:got])
            done += got
        self.taken += done
        return done

    def _top_up(self):
        # When little is left unread, move it down and fill up behind it from the file. The
        # bytes move in whole 512-byte blocks (read ones among them, which go below the new
        # position): a slice of spare, an allocation, is made only at the file's end.
        src, spare, end = self.io, self.spare, self.end
        pos = src.tell()
        if end - pos >= _LOW or self.taken == self.size:
            return
        first = end - (end - pos + 511) // 512 * 512  # the block the unread bytes begin in
        new = min(first, self.size - self.taken)
        for at in range(first, end, 512):
            src.seek(at)
            src.readinto(spare)
            src.seek(at - new)
            src.write(spare)
        self._load(new)
        src.seek(pos - new)

    def _dry(self):
        # Whether the decompressor took every buffered byte while the file has more: it may
        # then have wanted more, and read an end of input where there is none.
        return self.io.tell() == self.end and self.taken < self.size
