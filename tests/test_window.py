"""Small-window releases: `uota build --window-bits N` makes an ordinary .tar.gz that a device
unpacks with a 2**N byte window, so that an update fits in an ESP8266's heap.

Releases are built with `build_release`, served by a real HTTP server on 127.0.0.1 and installed
by the device module on each runtime (`runtime` fixture: cpython, mp120, mp129).
"""

import subprocess
import tarfile

import pytest

from uota.build import DEFAULT_WINDOW_BITS, build_release
from uota.device.uota import _tar
from uota.runtime import RUNTIMES

from support.fixtures_servers import run_uota
from support.releases import (Device, built_list, device_cfg, publish, read_tree, tar_cli,
                      without_download, write_tree)

OLD = {"main.py": "print('old')\n", "lib/util.py": "A = 1\n", "version": "1.0.0\n"}
NEW = {
    "main.py": "print('new')\n",
    "lib/util.py": "A = 2\n",
    # Text that repeats at distances beyond 512 bytes: the window size matters to it.
    "lib/table.py": "".join("ROW_%d = %r\n" % (i, "abcdefghij" * (i % 7)) for i in range(600)),
    "data.bin": bytes(range(256)) * 200,
}
BITS = [pytest.param(bits, id="wbits%d" % bits) for bits in (9, 12, 15)] + [
    pytest.param(None, id="default")
]

# The WebAssembly ports grow their heap on demand (MICROPY_GC_SPLIT_HEAP_AUTO), so a small
# `heapsize` never runs out. This prelude stands in for `deflate` on a board with HEAP bytes
# free when the install starts: each window, allocated at its stream's first read as
# MicroPython 1.29 does, must fit beside what the install has allocated so far. Nothing is
# collected while the script runs, so that sum bounds what is live: a pessimistic board.
BOARD_HEAP_PRELUDE = """
import gc, sys, deflate
HEAP = %d
START = gc.mem_alloc()
needed = 0

class _BoardWindow:
    def __init__(self, stream, window_bits):
        self.stream, self.window = stream, 1 << window_bits

    def readinto(self, buf):
        global needed
        need = gc.mem_alloc() - START + self.window
        needed = max(needed, need)
        if need > HEAP:
            raise MemoryError
        self.readinto = self.stream.readinto  # later reads go straight to deflate
        return self.stream.readinto(buf)

class _BoardDeflate:
    GZIP = deflate.GZIP

    def DeflateIO(self, stream, format, window_bits):
        return _BoardWindow(deflate.DeflateIO(stream, format, window_bits), window_bits)

sys.modules["deflate"] = _BoardDeflate()
"""


class BoardDevice(Device):
    """A MicroPython 1.29 device with `heap` bytes free for the install (see BOARD_HEAP_PRELUDE)."""

    def __init__(self, root, heap):
        super().__init__("micropython-1.29", root)
        self.heap = heap

    def update(self):
        """As Device.update; the check's garbage is collected before the install, as on a board."""
        return self.call(
            BOARD_HEAP_PRELUDE % self.heap
            + "found = uota.check_for_updates()\n"
            "gc.collect()\n"
            "START = gc.mem_alloc()\n"
            "installed = found and uota.install_new_firmware()\n"
            "print('heap needed', needed)\n"
            "print(found, installed)\n"
        )


def heap_needed(log):
    return int(next(line for line in log.splitlines() if line.startswith("heap needed")).split()[-1])


def build(tmp_path, dist, bits):
    """`uota build` of NEW as 1.1.0 with `bits` (None: the default); returns the archive path."""
    src = write_tree(tmp_path / "src", NEW)
    options = {} if bits is None else {"window_bits": bits}
    return build_release(src, "1.1.0", dist, **options).archive_path


def plain_tar_release(tmp_path, dist):
    archive = tar_cli(write_tree(tmp_path / "src", dict(NEW, version="1.1.0\n")), dist / "plain.tar.gz")
    publish(dist, "1.1.0", archive)
    return archive


def make_device(device, url):
    write_tree(device.root, OLD)
    write_tree(device.root, {"uota.cfg": device_cfg(url)})
    return device


def installed(before, built=True):
    """The device's tree once NEW is installed; a release `uota build` made lists its files."""
    tree = dict(before, **{name: data.encode() if isinstance(data, str) else data for name, data in NEW.items()},
                version=b"1.1.0")
    if built:
        tree["uota.files"] = built_list(NEW, "1.1.0")
    return tree


@pytest.mark.parametrize("bits", BITS)
def test_archive_is_an_ordinary_tar_gz_that_declares_its_window(tmp_path, dist, bits):
    archive = build(tmp_path, dist, bits)

    assert _tar.window_bits(archive.read_bytes()[:64]) == (bits or DEFAULT_WINDOW_BITS)
    unpacked_by_tar = tmp_path / "tar"
    unpacked_by_tar.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(unpacked_by_tar)], check=True)
    unpacked_by_python = tmp_path / "python"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked_by_python)
    expected = dict({name: data.encode() if isinstance(data, str) else data for name, data in NEW.items()},
                    version=b"1.1.0\n", **{"uota.files": built_list(NEW, "1.1.0")})
    assert read_tree(unpacked_by_tar) == read_tree(unpacked_by_python) == expected


@pytest.mark.parametrize("bits", BITS + [pytest.param("tar", id="tar-czf")])
def test_release_installs(runtime, tmp_path, dist, server, bits):
    if bits == "tar":
        plain_tar_release(tmp_path, dist)
    else:
        build(tmp_path, dist, bits)
    device = make_device(Device(runtime, tmp_path / "device"), server.url)
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == installed(before, built=bits != "tar")


@pytest.mark.skipif("micropython-1.29" not in RUNTIMES, reason="needs MicroPython 1.29")
def test_heap_that_fits_a_4k_window_refuses_a_32k_one_before_writing(tmp_path, dist, server):
    build(tmp_path, dist, 12)
    roomy = make_device(BoardDevice(tmp_path / "roomy", 1 << 30), server.url)
    result, log = roomy.update()
    assert result == "True True", log
    smallest = heap_needed(log)  # the least heap this 12-bit release installs with
    plain_tar_release(tmp_path, dist)
    device = make_device(BoardDevice(tmp_path / "device", smallest), server.url)

    before = device.files()
    result, log = device.update()

    assert result == "False False"
    assert without_download(device.files()) == before  # the download is kept: RAM may be free later
    assert "not enough RAM for the 32768-byte window" in log
    assert "--window-bits" in log
    build(tmp_path, dist, 12)  # the same heap installs the 4 KB-window release (on a device
    fresh = make_device(BoardDevice(tmp_path / "fresh", smallest), server.url)  # without the kept download)
    before = fresh.files()
    result, log = fresh.update()
    assert result == "True True", log
    assert fresh.files() == installed(before)
    assert heap_needed(log) == smallest


@pytest.mark.parametrize("bits, shown", [(9, "0.5 KB (wbits 9)"), (12, "4 KB (wbits 12)"), ("tar", "32 KB (wbits 15)")])
def test_check_reports_the_window(tmp_path, dist, server, bits, shown):
    if bits == "tar":
        plain_tar_release(tmp_path, dist)
    else:
        build(tmp_path, dist, bits)

    result = run_uota("check", server.url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "window:    " + shown in result.stdout


@pytest.mark.parametrize("bits", ["8", "16"])
def test_window_outside_9_to_15_is_a_one_line_error(tmp_path, dist, bits):
    src = write_tree(tmp_path / "src", NEW)

    result = run_uota("build", src, "--version", "1.1.0", "--out", dist, "--window-bits", bits)

    assert result.returncode == 1
    assert result.stderr == "uota: --window-bits must be 9 to 15, not {}\n".format(bits)
    assert list(dist.iterdir()) == []
