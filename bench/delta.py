"""Delta against full: what one update costs a device in bytes on the wire, flash writes,
time and heap, for a one-file and a ten-file change of bench/memory.py's reference release
(40 files, about 300 KB).

A device holds release 1.0.0 as its full install left it (with its `uota.files`). Release
2.0.0 changes one (or ten) of its 36 modules and is built with `--delta-from` 1.0.0's
archive. "full" serves the same folder with `latest` lacking the `delta=` field, so the
device downloads the full archive, as every device on another version does.

- wire: bytes the server sent (headers and bodies) and requests, for one whole update
  (check_for_updates() then install_new_firmware()), on MicroPython 1.20's unix port;
- flash: bytes littlefs programmed for that update: the device module on CPython over
  littlefs-python (MicroPython's VfsLfs2 settings, 4 KB blocks; tests/support/flash.py);
- time: median of 5 whole updates on MicroPython 1.20's unix port (.py), unpaced loopback
  and paced at 250 KB/s;
- heap: the smallest `-X heapsize` that completes it, device code as .py, 1.20 and 1.28;
- and the bytes of a poll that finds nothing new, for the fleet figures of docs/hosting.md.

    PYTHONPATH=tests python bench/delta.py
"""

import shutil
import statistics
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path

from heap import PACED_RATE, _Handler, _Server, bisect, snapshot
from memory import reference_release
from support import flash
from support.power_cut import format_flash, load_device_module, tree_of
from support.releases import listed_files, read_tree, write_tree
from support.unix_port import UnixPortMissing, run, unix_micropython
from uota.build import build_release

ROOT = Path(__file__).resolve().parent.parent
DEVICE_DIR = ROOT / "src" / "uota" / "device"
VERSIONS = ("1.20.0", "1.28.0")
TIME_VERSION = "1.20.0"
RUNS = 5
TMP_NAME = "fw.tmp"

UPDATE = """
import gc, os, time
import uota
for folder in %r:
    os.chdir(folder)
    gc.collect()
    t0 = time.ticks_us()
    try:
        found = uota.check_for_updates(quiet=True)
        installed = found and uota.install_new_firmware(quiet=True)
    except MemoryError:
        found = installed = 'MemoryError'
    print('RUN', found, installed, time.ticks_diff(time.ticks_us(), t0))
"""


class _Counting:
    """A response stream that counts what it sends."""

    def __init__(self, stream, server):
        self.stream, self.server = stream, server

    def write(self, data):
        self.server.sent += len(data)
        return self.stream.write(data)

    def flush(self):
        self.stream.flush()

    def close(self):
        self.stream.close()

    @property
    def closed(self):
        return self.stream.closed


class _CountingHandler(_Handler):
    def setup(self):
        super().setup()
        self.wfile = _Counting(self.wfile, self.server)

    def do_GET(self):
        self.server.requests += 1
        super().do_GET()


def serve(folder, rate=None):
    """A real HTTP server on 127.0.0.1 that counts the requests and bytes it answers."""
    handler = partial(type("Handler", (_CountingHandler,), {"rate": rate}), directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    server.sent = server.requests = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def changed(files, count):
    """files with `count` of its modules rewritten (a new line added at their top)."""
    files = dict(files)
    for name in sorted(name for name in files if name.endswith(".py"))[:count]:
        files[name] = b"CHANGED = True\n" + files[name]
    return files


class Case:
    """Release 2.0.0 changing `count` files of 1.0.0, built with a delta, served in two ways."""

    def __init__(self, work, old, old_files, count):
        self.label = "%d file%s changed" % (count, "" if count == 1 else "s")
        self.old_files = old_files
        self.new_files = changed(old_files, count)
        src = write_tree(work / ("src-%d" % count), self.new_files)
        self.dist = {"delta": work / ("dist-%d-delta" % count), "full": work / ("dist-%d-full" % count)}
        release = build_release(src, "2.0.0", self.dist["delta"], delta_from=[old.archive_path])
        shutil.copytree(self.dist["delta"], self.dist["full"])
        (self.dist["full"] / "latest").write_text(release.latest_line.split(";delta=")[0] + "\n")
        self.old_tree = dict(old_files, **{"version": b"1.0.0", "uota.files": listed_files(old.archive_path)})
        self.new_listed = listed_files(release.archive_path)
        self.sizes = {"full": release.archive_path.stat().st_size, "delta": release.deltas[0].size}

    def device(self, folder, url):
        cfg = {"url": url, "tmp_filename": TMP_NAME, "excluded_files": [], "delete": []}
        return write_tree(folder, dict(self.old_tree, **{"uota.cfg": repr(cfg)}))

    def check_tree(self, folder):
        got = read_tree(folder)
        expected = dict(self.new_files, **{"uota.files": self.new_listed})
        got.pop("uota.cfg")
        if got.pop("version", b"").strip() != b"2.0.0" or got != {k: v for k, v in expected.items() if k != "version"}:
            raise SystemExit("%s: the device did not end at 2.0.0 exactly" % self.label)


def flash_programmed(case, mode, url):
    """Bytes littlefs programs for one whole update (CPython device code on littlefs)."""
    cfg = {"url": url, "tmp_filename": TMP_NAME, "excluded_files": [], "delete": []}
    chip, fs = format_flash(flash.LittleFs, tree_of(dict(case.old_tree, **{"uota.cfg": repr(cfg)})))
    module = load_device_module()
    flash.set_in_package(module, "_log", lambda level, message: None)
    chip.reboot()
    flash.install(module, flash.LittleFs(chip))
    chip.programmed = 0
    if not (module.check_for_updates(quiet=True) and module.install_new_firmware(quiet=True)):
        raise SystemExit("%s, %s: the update on littlefs failed" % (case.label, mode))
    return chip.programmed


def timed_updates(binary, code, case, mode, rate, work):
    """(median ms of RUNS whole updates, bytes sent per update, requests per update)."""
    server = serve(case.dist[mode], rate)
    try:
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        folder = Path(tempfile.mkdtemp(prefix="delta-time-", dir=work))
        devices = [case.device(folder / ("d%d" % i), url) for i in range(RUNS)]
        returncode, out, err = run(binary, folder, UPDATE % [str(d) for d in devices], 256, [code], timeout=600)
        runs = [line.split()[1:] for line in out.splitlines() if line.startswith("RUN")]
        if returncode != 0 or len(runs) != RUNS or any(r[:2] != ["True", "True"] for r in runs):
            raise SystemExit("%s, %s: timed updates failed: %s %s" % (case.label, mode, out[-2000:], err[-2000:]))
        for device in devices:
            case.check_tree(device)
        return statistics.median(int(r[2]) for r in runs) / 1000, server.sent // RUNS, server.requests // RUNS
    finally:
        server.shutdown()
        server.server_close()


def poll_bytes(binary, code, case, work):
    """Bytes the server sends a device that polls and finds nothing new (it is on 2.0.0)."""
    server = serve(case.dist["delta"])
    try:
        folder = Path(tempfile.mkdtemp(prefix="delta-poll-", dir=work))
        device = case.device(folder / "d", "http://127.0.0.1:%d/" % server.server_address[1])
        (device / "version").write_text("2.0.0")
        returncode, out, err = run(binary, folder, UPDATE % [str(device)], 256, [code])
        if "RUN False False" not in out or server.requests != 1:
            raise SystemExit("the poll failed: %s %s" % (out[-2000:], err[-2000:]))
        return server.sent
    finally:
        server.shutdown()
        server.server_close()


def smallest_heap(binary, code, case, mode, work):
    server = serve(case.dist[mode])
    url = "http://127.0.0.1:%d/" % server.server_address[1]

    def probe(heap):
        folder = Path(tempfile.mkdtemp(prefix="delta-heap-", dir=work))
        try:
            device = case.device(folder / "d", url)
            returncode, out, err = run(binary, folder, UPDATE % [str(device)], heap, [code])
            runs = [line.split()[1:] for line in out.splitlines() if line.startswith("RUN")]
            return returncode == 0 and bool(runs) and runs[0][:2] == ["True", "True"], (out + err)[-200:]
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        return bisect(probe)[0]
    finally:
        server.shutdown()
        server.server_close()


def main():
    try:
        binaries = {version: unix_micropython(version) for version in VERSIONS}
    except UnixPortMissing as missing:
        sys.exit("bench/delta.py needs MicroPython's unix port: %s" % missing)
    with tempfile.TemporaryDirectory(prefix="uota-delta-") as scratch:
        work = Path(scratch)
        reference_release(work / "src-old", 1)
        old_files = read_tree(work / "src-old")
        old_files.pop("version")
        write_tree(work / "src-1.0.0", old_files)
        old = build_release(work / "src-1.0.0", "1.0.0", work / "dist-old")
        code = snapshot(DEVICE_DIR, work)
        print("Delta against full release, reference release (%d files, %d KB), MicroPython unix port"
              % (len(old_files), sum(map(len, old_files.values())) // 1024))
        print("| change | download | archive bytes | wire bytes | requests | flash bytes programmed"
              " | time unpaced ms | time 250 KB/s ms | heap 1.20 / 1.28 KiB |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        full_by_count, delta_by_count = {}, {}
        for count in (1, 10):
            case = Case(work, old, old_files, count)
            row = {}
            for mode in ("full", "delta"):
                unpaced, sent, requests = timed_updates(binaries[TIME_VERSION], code, case, mode, None, work)
                paced, _, _ = timed_updates(binaries[TIME_VERSION], code, case, mode, PACED_RATE, work)
                server = serve(case.dist[mode])
                try:
                    programmed = flash_programmed(case, mode, "http://127.0.0.1:%d/" % server.server_address[1])
                finally:
                    server.shutdown()
                    server.server_close()
                heaps = [smallest_heap(binaries[version], code, case, mode, work) for version in VERSIONS]
                row[mode] = (case.sizes[mode], sent, requests, programmed, unpaced, paced, heaps)
                print("| %s | %s | %d | %d | %d | %d | %.0f | %.0f | %s |" % (
                    case.label, mode, case.sizes[mode], sent, requests, programmed, unpaced, paced,
                    " / ".join(str(h) for h in heaps)), flush=True)
            if count == 1:
                poll = poll_bytes(binaries[TIME_VERSION], code, case, work)
            full_by_count[count] = row["full"][1:3]
            delta_by_count[count] = row["delta"][1:3]
            full, delta = row["full"], row["delta"]
            print("| %s | delta / full | %.1f %% | %.1f %% | | %.1f %% | %.0f %% | %.0f %% | |" % (
                case.label, 100 * delta[0] / full[0], 100 * delta[1] / full[1], 100 * delta[3] / full[3],
                100 * delta[4] / full[4], 100 * delta[5] / full[5]), flush=True)


        print("A poll that finds nothing new: 1 request, %d bytes from the server." % poll)
        print_fleet_costs(poll, full_by_count[1], delta_by_count[1], delta_by_count[10])


FLEETS = (1000, 10000, 100000)  # devices
POLL_MINUTES = (5, 15, 60)


def print_fleet_costs(poll, full, delta_one, delta_ten):
    """Requests and bytes a day at the origin (no CDN) for N devices polling every T
    minutes, and for one release a day reaching every device: (bytes, requests) per update."""
    print("\nA fleet, per day, from these figures: N devices polling every T minutes, and one "
          "release reaching all of them")
    print("| devices | poll every | polls: requests | polls: bytes | full release | delta, 1 file | delta, 10 files |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for devices in FLEETS:
        for minutes in POLL_MINUTES:
            polls = devices * 24 * 60 // minutes
            updates = ["%s in %s requests" % (_size(devices * sent), _count(devices * requests))
                       for sent, requests in (full, delta_one, delta_ten)]
            print("| %s | %d min | %s | %s | %s |" % (_count(devices), minutes, _count(polls), _size(polls * poll),
                                                     " | ".join(updates)))


def _size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return "%.1f %s" % (n / scale, unit)
    return "%d B" % n


def _count(n):
    return "{:,}".format(n)


if __name__ == "__main__":
    main()
