"""The lookahead: on MicroPython, when the heap has room for it, the archive reaches the
decompressor through a 2 KB buffer filled from the file, not one file read per byte
(src/uota/device/uota/_lookahead.py). An archive that spends more than the buffer holds on
one 512-byte record, or a window that finds no room beside the buffer, is decompressed again
straight from the file up to where it was: the same bytes, only slower.

The archives here are real gzip files that `gzip -d` and Python's tarfile read; some have
deflate blocks that make no output spliced into them (valid, and what no compressor
writes in such numbers). Device scripts run on MicroPython 1.20 and 1.29 (WebAssembly).
"""

import hashlib
import io
import random
import tarfile
import zlib

import pytest

from support.releases import (Device, assert_update_changes_nothing, device_cfg, publish, read_tree,
                              write_tree)

MICROPYTHONS = [pytest.param("micropython-1.20", id="mp120"), pytest.param("micropython-1.29", id="mp129")]
FILES = {
    "main.py": b"print('new')\n" * 300,
    "lib/table.py": "".join("ROW_%d = %r\n" % (i, "abcdefghij" * (i % 7)) for i in range(400)).encode(),
    "data.bin": bytes(range(256)) * 40,
    "lib/blob.bin": random.Random(9).randbytes(12000),  # stored as it is: the lookahead refills
}
READ_LINES = len(FILES) + 2  # what READ_ALL prints
EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"  # byte-aligned: not last, stored, length 0

# Reads every member of a.tar.gz with the device's tar reader: whether the lookahead is on
# before and after, and each member's path and SHA-256.
READ_ALL = """
import binascii, hashlib
from uota._tar import _Tar
buf = memoryview(bytearray(1024))  # as the install passes it
tar = _Tar('a.tar.gz', buf)
print('lookahead', getattr(tar.gz, 'io', None) is not None)
try:
    while True:
        path = tar.next()
        if path is None:
            break
        h = hashlib.sha256()
        n = tar.readinto(buf)
        while n:
            h.update(buf[:n])
            n = tar.readinto(buf)
        print(path, binascii.hexlify(h.digest()).decode())
    print('lookahead', getattr(tar.gz, 'io', None) is not None)
except Exception as e:
    print('error', type(e).__name__, e)
tar.close()
"""


def tar_bytes(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzip_with(raw, at=0, filler=b""):
    """raw as a gzip file, with `filler` (deflate blocks that make no output) spliced in after
    the compressed form of raw[:at]."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    head = compressor.compress(raw[:at]) + compressor.flush(zlib.Z_SYNC_FLUSH)  # ends byte-aligned
    return head + filler + compressor.compress(raw[at:]) + compressor.flush()


def empty_fixed_blocks(count):
    """count empty fixed-Huffman blocks (10 bits each), then an empty stored block, which
    pads to the next byte as the rest of the stream expects."""
    bits = [0, 1, 0] + [0] * 7  # not last, type 01 (fixed), end-of-block (code 0000000)
    stream = bits * count + [0, 0, 0]  # not last, type 00 (stored)
    stream += [0] * (-len(stream) % 8)
    packed = bytes(sum(bit << i for i, bit in enumerate(stream[at : at + 8])) for at in range(0, len(stream), 8))
    return packed + b"\x00\x00\xff\xff"


FILLERS = {"stored": EMPTY_STORED_BLOCK * 1000, "fixed": empty_fixed_blocks(4000)}


def expected_reading(files, lookahead_after):
    lines = ["lookahead True"]
    lines += ["%s %s" % (name, hashlib.sha256(data).hexdigest()) for name, data in files.items()]
    return lines + ["lookahead %s" % lookahead_after]


def read_on_device(runtime, tmp_path, archive, prelude=""):
    device = Device(runtime, tmp_path / "device")
    (device.root / "a.tar.gz").write_bytes(archive)
    return device.run(prelude + READ_ALL).stdout.strip().splitlines()


@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_an_archive_is_read_through_the_lookahead(runtime, tmp_path):
    archive = gzip_with(tar_bytes(FILES))

    assert read_on_device(runtime, tmp_path, archive)[-READ_LINES:] == expected_reading(FILES, True)


@pytest.mark.parametrize("filler", list(FILLERS))
@pytest.mark.parametrize("where", ["first-member", "middle", "end-of-archive"])
@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_an_archive_that_outruns_the_lookahead_is_read_again_from_the_file(runtime, tmp_path, filler, where):
    raw = tar_bytes(FILES)
    at = {"first-member": 512, "middle": len(raw) // 2, "end-of-archive": len(raw) - 1024}[where]
    archive = gzip_with(raw, at, FILLERS[filler])
    assert zlib.decompress(archive, 16 + 15) == raw

    assert read_on_device(runtime, tmp_path, archive)[-READ_LINES:] == expected_reading(FILES, False)


# deflate.DeflateIO as on a board whose heap has room for the lookahead but not, beside it,
# for the window: that fails when the decompressor reads a BytesIO (the lookahead), at once
# (as MicroPython 1.20 allocates it) or at the first read (as 1.29 does).
NO_ROOM_BESIDE_THE_LOOKAHEAD = """
import deflate, io, sys

class _NoRoom:
    def readinto(self, buf):
        raise MemoryError

class _Deflate:
    GZIP = deflate.GZIP

    def DeflateIO(self, stream, format, window_bits):
        if isinstance(stream, io.BytesIO):
            if %r:
                raise MemoryError
            return _NoRoom()
        return deflate.DeflateIO(stream, format, window_bits)

sys.modules['deflate'] = _Deflate()
"""


@pytest.mark.parametrize("at_once", [True, False], ids=["when-made", "at-first-read"])
def test_a_window_without_room_beside_the_lookahead_reads_from_the_file(tmp_path, at_once):
    archive = gzip_with(tar_bytes(FILES))

    lines = read_on_device("micropython-1.29", tmp_path, archive, NO_ROOM_BESIDE_THE_LOOKAHEAD % at_once)

    assert lines[-READ_LINES:] == ["lookahead %s" % (not at_once)] + expected_reading(FILES, False)[1:]


@pytest.mark.parametrize("cut", [2047, 2048, 2049, 3072, -8, -1])
@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_an_archive_cut_short_is_an_error_wherever_the_lookahead_stands(runtime, tmp_path, cut):
    archive = gzip_with(tar_bytes(FILES))

    lines = read_on_device(runtime, tmp_path, archive[:cut])

    assert lines[-1] in ("error VerifyError archive is truncated", "error VerifyError archive is not a valid gzip file")


@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_an_archive_cut_inside_blocks_that_outrun_the_lookahead_is_an_error(runtime, tmp_path):
    raw = tar_bytes(FILES)
    archive = gzip_with(raw, len(raw) // 2, FILLERS["stored"])
    cut = archive.index(FILLERS["stored"]) + 3000

    lines = read_on_device(runtime, tmp_path, archive[:cut])

    assert lines[-1] in ("error VerifyError archive is truncated", "error VerifyError archive is not a valid gzip file")


OLD = {"main.py": "print('old')\n", "version": "1.0.0\n"}


def spliced_release(dist, filler=b""):
    raw = tar_bytes(dict(FILES, version=b"1.1.0\n"))
    archive = dist / "spliced.tar.gz"
    archive.write_bytes(gzip_with(raw, len(raw) // 2, filler))
    publish(dist, "1.1.0", archive)


def test_a_release_that_outruns_the_lookahead_installs(runtime, tmp_path, dist, server):
    spliced_release(dist, FILLERS["fixed"])
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": device_cfg(server.url)}))
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert read_tree(device.root) == dict(before, **FILES, version=b"1.1.0")


def test_a_release_with_a_flipped_byte_past_the_lookahead_changes_nothing(runtime, tmp_path, dist, server):
    spliced_release(dist)
    archive = dist / "spliced.tar.gz"
    data = bytearray(archive.read_bytes())
    data[3000] ^= 0x55
    archive.write_bytes(bytes(data))
    publish(dist, "1.1.0", archive)
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": device_cfg(server.url)}))

    log = assert_update_changes_nothing(device, "False False")

    assert "archive" in log
