"""Peak heap of a whole update on MicroPython's unix port: the smallest heap it completes in.

The WebAssembly runtimes (bench/memory.py) never collect garbage, so they count allocation
volume. MicroPython's unix port, built 32-bit (objects sized as on a microcontroller) by
../shared/micropython/build.sh, has the real garbage collector and a fixed heap: bisecting
`micropython -X heapsize=NNk` gives the smallest heap (to 1 KiB) at which a fresh device
completes `uota.check_for_updates()` then `uota.install_new_firmware()`, both True and the
installed tree byte-correct, from a real HTTP server on 127.0.0.1. That is what decides
whether an update runs on a board.

Measured for bench/memory.py's reference release built by `uota build` (a 4 KB window) and
by plain `tar -czf`, and the same release four times larger; for the device code as `.py`
(as mip installs it), as `.mpy` (each version's own mpy-cross) and frozen into the firmware
(1.28.0, with the device code's manifest.py); on MicroPython 1.20.0 and 1.28.0. Also the cost
of a boot with nothing pending (`import uota; uota.recover()`, and the boot.py that `uota init`
writes), and times on 1.20.0: the whole update, the install alone and
decompress-only of the same archive, from a server unpaced and paced at 250 KB/s.

    PYTHONPATH=tests python bench/heap.py [--original DIR] [--device-dir DIR] [--json FILE]

--original DIR: a folder with the original uOTA's uota.py (github:mkomon/uota lib/uota.py)
and micropython-lib's urequests.py and utarfile.py of April 2023, run on the same releases
the way its README says. Its code is not part of this repository (see docs/performance.md).
--device-dir DIR: the device code to measure (default src/uota/device), e.g. an older
uota.py from `git show`.
"""

import argparse
import hashlib
import http.server
import json
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from memory import publish_release, reference_release
from support.releases import read_tree, write_tree
from support.unix_port import CACHE, UnixPortMissing, compile_tree, run, unix_micropython
from uota.build import DEFAULT_WINDOW_BITS, build_release
from uota.device.uota._tar import window_bits
from uota.init import BOOT_SNIPPET
from uota.sign import keygen, sign_release

ROOT = Path(__file__).resolve().parent.parent

VERSIONS = ("1.20.0", "1.28.0")
DEVICE_DIR = ROOT / "src" / "uota" / "device"
HEAP_LO, HEAP_HI = 8, 256  # KiB, the bisection's bounds
CONFIRM_KIB = 8  # a smallest heap holds only if the next sizes up complete too
TIME_HEAP = 256  # KiB, the heap of the timed runs
TIME_VERSION = "1.20.0"
TIME_RUNS = 5
PACED_RATE = 250 * 1024  # bytes per second
BOOT_HEAP = 256  # KiB, the heap in which "heap left after boot" is read
TMP_NAME = "fw.tmp"
TRIAL_BOOTS = 2
TRIAL_RECORDS = ("uota.trial", "uota.bak/")

# A device on 1.0.0: a few files, one of which the release replaces, one it leaves alone.
OLD_FILES = {
    "version": "1.0.0\n",
    "main.py": "print('old main')\n",
    "lib/util.py": "A = 1\n",
    "lib/pkg0/module0.py": "OLD = True\n",
}

UPDATE = """
import gc
stage = 'import'
try:
    import uota
    stage = 'check'
    found = uota.check_for_updates()
    stage = 'install'
    installed = found and uota.install_new_firmware()
    print('RESULT', found, installed)
except MemoryError:
    print('RESULT MemoryError', stage)
"""

# The original's install_new_firmware() returns None whether it installed or not: the tree says.
UPDATE_ORIGINAL = """
stage = 'import'
try:
    import uota
    stage = 'check'
    found = uota.check_for_updates()
    stage = 'install'
    installed = found and uota.install_new_firmware() is None
    print('RESULT', found, installed)
except MemoryError:
    print('RESULT MemoryError', stage)
"""

BOOT = """
import gc
import uota
uota.recover()
gc.collect()
print('RESULT', gc.mem_free())
"""

# The boot.py `uota init` writes, as it writes it; it must not load uota when nothing is pending.
BOOT_INIT = BOOT_SNIPPET + """
import gc, sys
if 'uota' in sys.modules:
    raise SystemExit('uota was loaded with nothing pending')
gc.collect()
print('RESULT', gc.mem_free())
"""

BOOT_ON_TRIAL = BOOT_SNIPPET + """
import gc
if not open('uota.trial').read().endswith('\\n+'):
    raise SystemExit('the boot of the release on trial was not counted')
gc.collect()
print('RESULT', gc.mem_free())
"""

BOOT_ORIGINAL = """
import gc
import uota
gc.collect()
print('RESULT', gc.mem_free())
"""

EMPTY = """
import gc
gc.collect()
print('RESULT', gc.mem_free())
"""

# Times, in one process: DEVICES fresh device folders updated one after the other (chdir into
# each), then decompress-only of ARCHIVE into a reused 1 KB buffer, TIME_RUNS times.
TIME_SCRIPT = """
import gc, os, time
import uota
DEVICES = %r
ARCHIVE = %r
WBITS = %d
for folder in DEVICES:
    os.chdir(folder)
    gc.collect()
    t0 = time.ticks_us()
    found = uota.check_for_updates(%s)
    t1 = time.ticks_us()
    installed = found and %s
    t2 = time.ticks_us()
    print('RUN', found, installed, time.ticks_diff(t2, t0), time.ticks_diff(t2, t1))
try:
    import deflate
    def gunzip(f):
        return deflate.DeflateIO(f, deflate.GZIP, WBITS)
except ImportError:
    import uzlib
    def gunzip(f):
        return uzlib.DecompIO(f, 16 + WBITS)
try:
    from uota._lookahead import Lookahead  # uota's own reader, where there is one
    readers = (('DECOMPRESS', gunzip), ('LOOKAHEAD', lambda f: Lookahead(ARCHIVE, f, WBITS)))
except ImportError:
    readers = (('DECOMPRESS', gunzip),)
buf = bytearray(1024)
for i in range(len(DEVICES)):
    for label, reader in readers:
        gc.collect()
        f = open(ARCHIVE, 'rb')
        t0 = time.ticks_us()
        stream = reader(f)
        n = 0
        while True:
            got = stream.readinto(buf)
            if not got:
                break
            n += got
        t1 = time.ticks_us()
        f.close()
        print(label, n, time.ticks_diff(t1, t0))
"""


# ---------------------------------------------------------------- releases and servers


class _Handler(http.server.SimpleHTTPRequestHandler):
    rate = None  # bytes per second; None: as fast as the socket takes it

    def log_message(self, format, *args):
        pass

    def copyfile(self, source, outputfile):
        if not self.rate:
            return super().copyfile(source, outputfile)
        start, sent = time.monotonic(), 0
        while True:
            data = source.read(4096)
            if not data:
                break
            outputfile.write(data)
            sent += len(data)
            ahead = sent / self.rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a device that gave up mid-download
            super().handle_error(request, client_address)


def serve(folder, rate=None):
    """A real HTTP server on 127.0.0.1 for folder; rate paces every response (bytes/s)."""
    handler = partial(type("Handler", (_Handler,), {"rate": rate}), directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Release:
    """One published release, its expected tree, and its servers (unpaced and paced)."""

    def __init__(self, key, label, src, dist, archive, trust=None, trial=0):
        """trust: the PEM public key a device needs (uota.cfg keys) for a signed release;
        trial: the trial_boots of the devices that take it."""
        self.key, self.label, self.src, self.dist, self.archive = key, label, src, dist, archive
        self.trust, self.trial = trust, trial
        self.files = read_tree(src)
        with tarfile.open(archive) as tar:  # `uota build` adds uota.files, which devices keep
            self.listed = tar.extractfile("uota.files").read() if "uota.files" in tar.getnames() else None
        self.wbits = window_bits(archive.read_bytes()[:64])
        self.servers = {}

    def url(self, rate=None):
        if rate not in self.servers:
            self.servers[rate] = serve(self.dist, rate)
        return "http://127.0.0.1:%d/" % self.servers[rate].server_address[1]

    def close(self):
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


def make_releases(work, scales=(1, 4)):
    """{key: Release}: x1 with `uota build`'s default window, the same to devices with
    trial_boots, the same signed (a 3072-bit key; the device trusts it), x1 by tar -czf, x4
    windowed."""
    releases = {}
    for scale in scales:
        src = work / ("src-x%d" % scale)
        reference_release(src, scale)
        dist = work / ("dist-x%d-window" % scale)
        archive = build_release(src, "2.0.0", dist).archive_path  # `uota build`'s default window
        key = "window-x%d" % scale
        releases[key] = Release(key, "%d KB window x%d" % ((1 << DEFAULT_WINDOW_BITS) // 1024, scale),
                                src, dist, archive)
        if scale == 1:
            releases["trial-x1"] = Release("trial-x1", "on trial, window x1", src, dist, archive, trial=TRIAL_BOOTS)
            dist = work / "dist-x1-signed"
            archive = build_release(src, "2.0.0", dist).archive_path
            private, public = keygen(work / "signing-key")
            sign_release(dist, private)
            releases["signed-x1"] = Release("signed-x1", "signed, window x1", src, dist, archive,
                                            public.read_text())
            dist = work / "dist-x1-tar"
            archive = publish_release(src, dist.mkdir() or dist, "tar")
            releases["tar-x1"] = Release("tar-x1", "tar -czf x1", src, dist, archive)
    return releases


# ---------------------------------------------------------------- devices and device code


def old_device(folder, url, trust=None, trial=0):
    """A device on the old tree; trusting the public key `trust` (PEM) when given; putting
    an install on trial for `trial` boots when given."""
    cfg = {"url": url, "tmp_filename": TMP_NAME, "excluded_files": [], "delete": []}
    files = dict(OLD_FILES)
    if trust:
        cfg["keys"] = ["ota.pub"]
        files["ota.pub"] = trust
    if trial:
        cfg["trial_boots"] = trial
    return write_tree(folder, dict(files, **{"uota.cfg": repr(cfg)}))


def tree_problem(folder, release, before):
    """None when folder holds exactly the old tree updated by the release (on trial: with
    its trial records); else what is wrong."""
    expected = dict(before)
    expected.update(release.files)
    if release.listed is not None:
        expected["uota.files"] = release.listed
    got = read_tree(folder)
    if release.trial:
        if "uota.trial" not in got:
            return "not on trial"
        got = {name: data for name, data in got.items() if not name.startswith(TRIAL_RECORDS)}
    if got.get("version", b"").strip() != b"2.0.0":
        return "version is %r" % got.get("version")
    expected.pop("version")
    got.pop("version")
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(name for name in set(expected) & set(got) if expected[name] != got[name])
    if missing or extra or wrong:
        return "missing %s, extra %s, different %s" % (missing[:3], extra[:3], wrong[:3])
    return None


class Code:
    """One form of device code: the module folders it needs, the binary that runs it."""

    def __init__(self, name, binaries, module_dirs, original=False):
        self.name, self.binaries, self.module_dirs, self.original = name, binaries, module_dirs, original

    def script(self):
        return UPDATE_ORIGINAL if self.original else UPDATE


def package_files(device_dir):
    """The device files mip installs, from package.json (device_dir's, else the repo's)."""
    spec = device_dir / "package.json"
    if not spec.is_file():
        spec = DEVICE_DIR / "package.json"
    return [(dest, source) for dest, source in json.loads(spec.read_text())["urls"]]


def snapshot(device_dir, work):
    """Copy the device files as mip would install them: one consistent version for every run."""
    folder = work / "code-py"
    folder.mkdir()
    for dest, source in package_files(device_dir):
        (folder / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(device_dir / source, folder / dest)
    return folder


def frozen_manifest(py_folder, device_dir):
    """device_dir's manifest.py (the repo's: src/uota/device/manifest.py) beside a copy of the
    files it freezes, in a cache folder named by their content, so that the build is cached.
    Device code without a manifest (an older uota.py) gets one freezing py_folder's files."""
    files = sorted(path.relative_to(py_folder).as_posix() for path in py_folder.rglob("*.py"))
    manifest = device_dir / "manifest.py"
    if manifest.is_file():
        text = manifest.read_text()
    else:
        text = "".join("module(%r, opt=3)\n" % name for name in files if "/" not in name)
    digest = hashlib.sha256(text.encode())
    for name in files:
        digest.update(name.encode() + b"\0" + (py_folder / name).read_bytes())
    folder = CACHE / "frozen-src" / digest.hexdigest()[:12]
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(py_folder / name, folder / name)
    (folder / "manifest.py").write_text(text)
    return folder / "manifest.py"


def device_codes(py_folder, work, original_dir, device_dir=DEVICE_DIR):
    """[Code]: uota as .py, .mpy and frozen; the original as .py and .mpy when given."""
    binaries = {version: unix_micropython(version) for version in VERSIONS}
    codes = []

    def mpy_folder(source_folder, name):
        folders = {}
        for version in VERSIONS:
            folders[version] = [compile_tree(version, source_folder, work / ("%s-mpy-%s" % (name, version)))]
        return folders

    codes.append(Code(".py", binaries, {v: [py_folder] for v in VERSIONS}))
    codes.append(Code(".mpy", binaries, mpy_folder(py_folder, "uota")))
    print("building 1.28.0 with the device code frozen (once per content) ...", flush=True)
    frozen = {"1.28.0": unix_micropython("1.28.0", frozen_manifest(py_folder, device_dir))}
    codes.append(Code("frozen", frozen, {"1.28.0": []}))
    if original_dir:
        original = work / "original-py"
        original.mkdir()
        for name in ("uota.py", "urequests.py", "utarfile.py"):
            shutil.copyfile(original_dir / name, original / name)
        codes.append(Code("original .py", binaries, {v: [original] for v in VERSIONS}, original=True))
        codes.append(Code("original .mpy", binaries, mpy_folder(original, "original"), original=True))
    return codes


# ---------------------------------------------------------------- probes


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def update_probe(code, version, release, work):
    """A function heap_kib -> (ok, why) that runs one whole update on a fresh device."""

    def probe(heap):
        device = Path(tempfile.mkdtemp(prefix="device-", dir=work))
        try:
            old_device(device, release.url(), release.trust, release.trial)
            before = read_tree(device)
            returncode, out, err = run(code.binaries[version], device, code.script(), heap,
                                       code.module_dirs[version])
            result = [line.split()[1:] for line in out.splitlines() if line.startswith("RESULT")]
            if returncode != 0 or not result or result[-1] != ["True", "True"]:
                log = [line for line in out.splitlines() if not line.startswith("RESULT")]
                if err.strip() or not result:
                    why = last_line(err) or last_line(out)
                else:  # what the script printed, and the device's last log line
                    why = " ".join(result[-1]) + (" (log: %s)" % log[-1].strip() if log else "")
                return False, why or "exit %s" % returncode
            problem = tree_problem(device, release, before)
            return (False, "installed tree wrong: " + problem) if problem else (True, "")
        finally:
            shutil.rmtree(device, ignore_errors=True)

    return probe


def bisect(probe, lo=HEAP_LO, hi=HEAP_HI):
    """Smallest heap in [lo, hi] KiB at which probe succeeds and keeps succeeding for the
    next CONFIRM_KIB sizes, with why the probe one KiB below failed; (None, why) when it
    fails even at hi. Fragmentation makes success non-monotonic (an update can complete in
    42 KiB, fail in 44 and complete from 48 on): the figure is the heap from which it holds."""
    ok, why = probe(hi)
    if not ok:
        return None, why
    bad, good, bad_why = lo - 1, hi, "below the bisection's lower bound"
    while good - bad > 1:
        middle = (bad + good) // 2
        ok, why = probe(middle)
        if ok:
            good = middle
        else:
            bad, bad_why = middle, why
    size = good + 1
    while size <= min(good + CONFIRM_KIB, hi):
        ok, why = probe(size)
        if not ok:
            good, bad_why = size + 1, why
        size += 1
    return good, bad_why


def measure_heaps(codes, releases, work):
    """{code: {release: {version: {"kib": n or None, "below": why}}}}."""
    heaps = {}
    for code in codes:
        keys = ["window-x1", "tar-x1"] if code.original else list(releases)
        for key in keys:
            for version in VERSIONS:
                if version not in code.binaries:
                    continue
                started = time.monotonic()
                kib, why = bisect(update_probe(code, version, releases[key], work))
                heaps.setdefault(code.name, {}).setdefault(key, {})[version] = {"kib": kib, "below": why}
                print("  %-14s %-20s %s: %s KiB (%.0f s)%s" % (
                    code.name, releases[key].label, version, kib, time.monotonic() - started,
                    "" if kib else "  fails: " + why), flush=True)
    return heaps


def boot_probe(binary, module_dirs, script, work, files=None):
    """files: written on the device too (a release on trial's record)."""
    def probe(heap):
        device = Path(tempfile.mkdtemp(prefix="boot-", dir=work))
        try:
            old_device(device, "http://127.0.0.1:9/")
            write_tree(device, files or {})
            returncode, out, err = run(binary, device, script, heap, module_dirs)
            result = [line.split()[1:] for line in out.splitlines() if line.startswith("RESULT")]
            if returncode != 0 or not result:
                return False, last_line(err) or last_line(out) or "exit %s" % returncode
            return True, int(result[-1][0])
        finally:
            shutil.rmtree(device, ignore_errors=True)

    return probe


def measure_boot(codes, work):
    """{code or "empty script": {version: {"kib": smallest heap, "free": bytes free at BOOT_HEAP}}}."""
    boot = {}
    binaries = {version: unix_micropython(version) for version in VERSIONS}
    rows = [("empty script", binaries, {v: [] for v in VERSIONS}, EMPTY)]
    rows += [(code.name, code.binaries, code.module_dirs, BOOT_ORIGINAL if code.original else BOOT)
             for code in codes]
    py = next(code for code in codes if code.name == ".py")
    rows.append(("init boot.py", py.binaries, py.module_dirs, BOOT_INIT))
    rows.append(("boot on trial", py.binaries, py.module_dirs, BOOT_ON_TRIAL))
    for name, bins, dirs, script in rows:
        for version, binary in bins.items():
            on_trial = {"uota.trial": "%d;1.0.0;%s\n" % (TRIAL_BOOTS, "0" * 64)} if name == "boot on trial" else None
            probe = boot_probe(binary, dirs[version], script, work, on_trial)
            kib, why = bisect(probe, lo=1)
            ok, free = probe(BOOT_HEAP)
            boot.setdefault(name, {})[version] = {"kib": kib, "free": free if ok else None,
                                                  "why": None if kib else why}
    return boot


def median(values):
    return statistics.median(values) / 1000  # us -> ms


def measure_times(codes, releases, work):
    """{code: {release: {pace: {"update": ms, "install": ms, "decompress": ms, "lookahead": ms or None}}}}
    on TIME_VERSION."""
    times = {}
    for code in codes:
        if code.name not in (".py", "original .py") or TIME_VERSION not in code.binaries:
            continue
        keys = ["window-x1", "tar-x1"] + (["signed-x1", "trial-x1"] if not code.original else [])
        for key in keys:
            release = releases[key]
            for rate in (None, PACED_RATE):
                folder = Path(tempfile.mkdtemp(prefix="time-", dir=work))
                devices = [old_device(folder / ("d%d" % i), release.url(rate), release.trust, release.trial)
                           for i in range(TIME_RUNS)]
                before = read_tree(devices[0])
                install = "uota.install_new_firmware() is None" if code.original else "uota.install_new_firmware()"
                script = TIME_SCRIPT % ([str(d) for d in devices], str(release.archive), release.wbits,
                                        "", install)
                returncode, out, err = run(code.binaries[TIME_VERSION], folder, script, TIME_HEAP,
                                           code.module_dirs[TIME_VERSION], timeout=600)
                runs = [line.split()[1:] for line in out.splitlines() if line.startswith("RUN")]
                decompress = [int(line.split()[2]) for line in out.splitlines() if line.startswith("DECOMPRESS")]
                lookahead = [int(line.split()[2]) for line in out.splitlines() if line.startswith("LOOKAHEAD")]
                problems = [tree_problem(d, release, before) for d in devices]
                if returncode != 0 or len(runs) != TIME_RUNS or any(r[:2] != ["True", "True"] for r in runs) \
                        or any(problems) or len(decompress) != TIME_RUNS:
                    raise SystemExit("timed runs failed (%s, %s): %s %s %s" % (
                        code.name, release.label, problems, out[-2000:], err[-2000:]))
                times.setdefault(code.name, {}).setdefault(key, {})["paced" if rate else "unpaced"] = {
                    "update": median([int(r[2]) for r in runs]),
                    "install": median([int(r[3]) for r in runs]),
                    "decompress": median(decompress),
                    "lookahead": median(lookahead) if lookahead else None,
                }
                shutil.rmtree(folder, ignore_errors=True)
    return times


# ---------------------------------------------------------------- tables


def cell(entry, width=8):
    if entry is None:
        return "%*s" % (width, "-")
    if entry["kib"] is None:
        return "%*s" % (width, "fails")
    return "%*d" % (width, entry["kib"])


def print_heap_table(figures, original_given):
    releases, heaps = figures["releases"], figures["heap"]
    print("\nSmallest heap for a whole update (check_for_updates + install_new_firmware), KiB")
    print("  MicroPython unix port, 32-bit, -X heapsize bisected between %d and %d KiB, then confirmed: "
          "the next %d KiB up complete too" % (HEAP_LO, HEAP_HI, CONFIRM_KIB))
    print("%-8s %-26s %8s %8s   %-18s %-18s" % ("device", "release", "1.20.0", "1.28.0",
                                                 "original 1.20.0", "original 1.28.0"))
    for form in (".py", ".mpy", "frozen"):
        for key, release in releases.items():
            row = heaps.get(form, {}).get(key, {})
            if key in ("window-x4", "signed-x1", "trial-x1") or form == "frozen":
                beside = "%-18s %-18s" % ("-", "-")
            elif original_given:
                original = heaps.get("original " + form, {}).get(key, {})
                beside = "%-18s %-18s" % (cell(original.get("1.20.0")).strip(), cell(original.get("1.28.0")).strip())
            else:
                beside = "not given (see docs/performance.md)"
            print("%-8s %-26s %s %s   %s" % (form, "%s (%dK)" % (release["label"], release["archive"] // 1024),
                                            cell(row.get("1.20.0")), cell(row.get("1.28.0")), beside))
    failures = ["    %s, %s, %s: %s" % (form, releases[key]["label"], version, entry["below"][:150])
                for form, rows in heaps.items() for key, row in rows.items()
                for version, entry in row.items() if entry["kib"] is None]
    if failures:
        print("  Fails even at %d KiB:" % HEAP_HI)
        print("\n".join(failures))
    print("  One KiB below the smallest heap, the update fails with (last line printed):")
    for form, rows in heaps.items():
        for key, row in rows.items():
            for version, entry in row.items():
                if entry["kib"] is not None:
                    print("    %s, %s, %s: %s" % (form, releases[key]["label"], version, entry["below"][:150]))


def print_boot_table(figures):
    boot = figures["boot"]
    print("\nA boot with nothing pending: `import uota; uota.recover()` (the original: `import uota`);")
    print("  init boot.py: the boot.py `uota init` writes, which loads uota only when an install is pending;")
    print("  boot on trial: the same with a release on trial, whose boot it counts")
    print("  smallest heap, KiB; heap free after it in a %d KiB heap, KiB; cost = the empty script's free less it"
          % BOOT_HEAP)
    print("%-14s %10s %10s %10s   %10s %10s %10s" % ("script", "1.20 min", "1.20 free", "1.20 cost",
                                                    "1.28 min", "1.28 free", "1.28 cost"))
    empty = boot["empty script"]
    reasons = []
    for name, row in boot.items():
        values = []
        for version in VERSIONS:
            entry = row.get(version)
            if entry is None:
                values += ["-", "-", "-"]
                continue
            if entry["kib"] is None:
                reasons.append("    %s on %s: %s" % (name, version, entry["why"][:150]))
            free = entry["free"]
            values += ["%d" % entry["kib"] if entry["kib"] else "fails",
                       "%.1f" % (free / 1024) if free is not None else "fails",
                       "%.1f" % ((empty[version]["free"] - free) / 1024) if free is not None else "-"]
        print("%-14s %10s %10s %10s   %10s %10s %10s" % ((name,) + tuple(values)))
    if reasons:
        print("  Fails even at %d KiB:" % HEAP_HI)
        print("\n".join(reasons))


def print_time_table(figures, original_given):
    releases, times = figures["releases"], figures["time"]
    print("\nTimes on MicroPython %s (unix port, %d KiB heap), median of %d runs in one process, ms"
          % (TIME_VERSION, TIME_HEAP, TIME_RUNS))
    print("  update: check_for_updates + install_new_firmware; install: install_new_firmware alone;")
    print("  decompress: the whole .tar.gz through %s into a reused 1 KB buffer, reading the file"
          % ("uzlib.DecompIO" if TIME_VERSION == "1.20.0" else "deflate.DeflateIO"))
    print("  (one read per byte, as the original's install does); lookahead: the same through uota's")
    print("  _lookahead, which feeds it 1-3 KB at a time, as uota's check and install do with heap to spare")
    print("%-14s %-18s %-9s %8s %8s %11s %16s %10s %16s" % (
        "device code", "release", "server", "update", "install", "decompress", "install/decomp.", "lookahead",
        "install/lookah."))
    for name, rows in times.items():
        for key, row in rows.items():
            for pace, entry in row.items():
                lookahead = entry.get("lookahead")
                print("%-14s %-18s %-9s %8.0f %8.0f %11.0f %16.2f %10s %16s" % (
                    name, releases[key]["label"], "%d KB/s" % (PACED_RATE // 1024) if pace == "paced" else "unpaced",
                    entry["update"], entry["install"], entry["decompress"], entry["install"] / entry["decompress"],
                    "%.0f" % lookahead if lookahead else "-",
                    "%.2f" % (entry["install"] / lookahead) if lookahead else "-"))
    if not original_given:
        print("%-14s %-18s not given (see docs/performance.md)" % ("original .py", "tar -czf x1"))


def print_tables(figures, original_given):
    print("\nDevice code: %s, sha256 %s" % (figures["device_code"]["dir"], figures["device_code"]["sha256"][:16]))
    if figures["heap"]:
        print_heap_table(figures, original_given)
    if figures["boot"]:
        print_boot_table(figures)
    if figures["time"]:
        print_time_table(figures, original_given)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, metavar="DIR",
                        help="the original uOTA's uota.py with urequests.py and utarfile.py")
    parser.add_argument("--device-dir", type=Path, default=DEVICE_DIR, metavar="DIR",
                        help="the device code to measure (default: src/uota/device)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--skip", action="append", default=[], choices=["heap", "boot", "time"],
                        help="leave out a part (repeatable)")
    args = parser.parse_args()
    try:
        for version in VERSIONS:
            unix_micropython(version)
    except UnixPortMissing as error:  # not a failure of the code measured: say how to get it
        print("skipped: %s" % error)
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="uota-heap-") as tmp:
        work = Path(tmp)
        py_folder = snapshot(args.device_dir.resolve(), work)
        files = sorted(path.relative_to(py_folder).as_posix() for path in py_folder.rglob("*") if path.is_file())
        code_hash = hashlib.sha256()
        for name in files:  # one file: the sha256 of its bytes, as before
            code_hash.update((name.encode() + b"\0" if len(files) > 1 else b"") + (py_folder / name).read_bytes())
        figures = {
            "device_code": {"dir": str(args.device_dir), "sha256": code_hash.hexdigest(), "files": files},
            "original": str(args.original) if args.original else None,
            "units": "heap in KiB (smallest -X heapsize that completes), free in bytes, times in ms",
        }
        codes = device_codes(py_folder, work, args.original, args.device_dir.resolve())
        releases = make_releases(work)
        figures["releases"] = {key: {"label": r.label, "archive": r.archive.stat().st_size, "files": len(r.files),
                                     "bytes": sum(map(len, r.files.values())), "window_bits": r.wbits}
                               for key, r in releases.items()}
        try:
            figures["heap"] = measure_heaps(codes, releases, work) if "heap" not in args.skip else {}
            figures["boot"] = measure_boot(codes, work) if "boot" not in args.skip else {}
            figures["time"] = measure_times(codes, releases, work) if "time" not in args.skip else {}
        finally:
            for release in releases.values():
                release.close()
    print_tables(figures, args.original is not None)
    print("\n(%.0f s)" % (time.monotonic() - started))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
        print("figures: %s" % args.json)


if __name__ == "__main__":
    main()
