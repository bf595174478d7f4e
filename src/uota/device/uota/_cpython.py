# What CPython alone needs: a board never loads this module.

import uuid
import zlib

from ._core import VerifyError

_CHUNK = 1024


class ZlibStream:
    # A streaming gzip reader with readinto() that bounds its output, as MicroPython's
    # deflate.DeflateIO and uzlib.DecompIO are.

    def __init__(self, f):
        self.f = f
        self.z = zlib.decompressobj(47)
        self.pending = b""

    def readinto(self, buf):
        try:
            while not self.pending:
                if self.z.eof:
                    return 0
                data = self.z.unconsumed_tail or self.f.read(_CHUNK)
                if not data:
                    raise VerifyError("archive is truncated")
                self.pending = self.z.decompress(data, len(buf))
        except zlib.error as e:
            raise VerifyError("archive is not a valid gzip file: %s" % e)
        n = min(len(self.pending), len(buf))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def unique_id():
    # What machine.unique_id() is on a board: this machine's hardware address.
    return uuid.getnode().to_bytes(6, "big")
