"""Install throughput: the time to install a downloaded release over the time to only
decompress the same archive to nowhere (the floor), on the same runtime, in the same run.

The device first downloads the reference release (bench/memory.py); a second run times the
floor, with the device module's own reader of the archive (its decompressor, fed through the
lookahead where the heap has room) and buffer size (512 bytes), then install_new_firmware().

    PYTHONPATH=tests python bench/throughput.py [--runtime micropython-1.29 ...]
"""

import argparse
import tempfile
from pathlib import Path

from support.fixtures_runtime import DEVICE_MODULE_DIR
from memory import old_device, publish_release, reference_release, result_of, serve
from uota.runtime import run_device

ROOT = Path(__file__).resolve().parent.parent

DOWNLOAD = "import uota\nprint('RESULT', uota.check_for_updates(quiet=True))\n"
TIME_INSTALL = """
import time, uota
from uota import _lookahead, _tar  # compiled before the clock starts
now = getattr(time, "ticks_ms", None) or (lambda: time.perf_counter() * 1000)
buf = memoryview(bytearray(512))  # the install's (_install._CHUNK, a const MicroPython does not export)
start = now()
tar = _tar._Tar("fw.tmp", buf)  # the install's own reader: through the lookahead where it fits
while tar.gz.readinto(buf):
    pass
floor = now() - start
tar.close()
start = now()
installed = uota.install_new_firmware(quiet=True)
print("RESULT", installed, floor, now() - start)
"""
VARIANTS = (12, "tar")


def measure(runtime, src, variant, work):
    """(floor ms, install ms) for one release on one runtime."""
    dist = Path(tempfile.mkdtemp(dir=work))
    publish_release(src, dist, variant)
    server = serve(dist)
    try:
        device = old_device(Path(tempfile.mkdtemp(dir=work)), "http://127.0.0.1:%d/" % server.server_address[1])
        assert result_of(run_device(runtime, device, DOWNLOAD, module_dirs=[DEVICE_MODULE_DIR])) == ["True"]
    finally:
        server.shutdown()
    installed, floor, install = result_of(run_device(runtime, device, TIME_INSTALL, module_dirs=[DEVICE_MODULE_DIR]))
    assert installed == "True", "the install failed"
    return float(floor), float(install)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", action="append", dest="runtimes",
                        help="repeatable; default: micropython-1.29, cpython")
    args = parser.parse_args()
    runtimes = args.runtimes or ["micropython-1.29", "cpython"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("install time against decompressing the same archive to nowhere (target <= 1.3)")
        print("%-8s %-6s %-17s %10s %12s %7s" % ("release", "window", "runtime", "floor ms", "install ms", "ratio"))
        for scale in (1, 4):
            src = work / ("src%d" % scale)
            reference_release(src, scale)
            for variant in VARIANTS:
                for runtime in runtimes:
                    floor, install = measure(runtime, src, variant, work)
                    print("%-8s %-6s %-17s %10.0f %12.0f %7.2f" % (
                        "x%d" % scale, variant, runtime, floor, install, install / floor))
        print("  install = one pass over the archive (check_for_updates() validated it), each file written")
        print("  beside its target and renamed over it, under the journal.")


if __name__ == "__main__":
    main()
