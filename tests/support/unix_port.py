"""MicroPython's unix port, to measure the smallest heap a job needs.

The WebAssembly runtimes the other tests use never collect garbage, so they show how much an
update allocates. The unix port has the real garbage collector and a fixed heap
(`micropython -X heapsize=24k script.py` raises MemoryError when the job does not fit), and
a 32-bit build sizes objects as a microcontroller does: bisecting the heap size gives the
peak heap, what decides whether an update runs on a board.

    binary = unix_micropython("1.20.0")                  # built once, cached in .cache/
    frozen = unix_micropython("1.28.0", DEVICE_MANIFEST)  # uota frozen, as a board freezes it
    returncode, stdout, stderr = run(binary, device_root, script, 32, [module_dir])

The binaries are built by ../shared/micropython/build.sh (beside this repository) from
source kits of MicroPython's tags, with no network. Without that folder, unix_micropython()
raises UnixPortMissing, whose text says how to build the same binary; tests skip with it
(unix_micropython_or_skip).
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SHARED = REPO.parent / "shared" / "micropython"
CACHE = REPO / ".cache" / "micropython"
VERSIONS = ("1.20.0", "1.28.0")
# The device code's own manifest: what a board's firmware freezes (unix_micropython(v, DEVICE_MANIFEST)).
DEVICE_MANIFEST = REPO / "src" / "uota" / "device" / "manifest.py"
BUILD_TIMEOUT = 1800

# The flags build.sh passes to `make -C ports/unix` (keep in step with it).
MAKE_FLAGS = (
    "MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_PY_USSL=0 "
    "MICROPY_SSL_MBEDTLS=0 MICROPY_SSL_AXTLS=0 MICROPY_PY_THREAD=0 MICROPY_FORCE_32BIT=1"
)


class UnixPortMissing(RuntimeError):
    """The build kit is not there; the message says how to get the same binary elsewhere."""


def _missing(version, why):
    tag = "v1.17" if version == "1.17.0" else "v" + version  # MicroPython's tags since 1.20 say .0
    return UnixPortMissing(
        "MicroPython's unix port %s is not available: %s. It is built by build.sh from "
        "%s (a folder beside this repository with build.sh and micropython-%s-unix.tar.gz). "
        "To get the same binary elsewhere: `git clone --branch %s --depth 1 "
        "https://github.com/micropython/micropython && make -C micropython/mpy-cross && "
        "make -C micropython/ports/unix submodules && make -C micropython/ports/unix %s` "
        "(32-bit: needs gcc-multilib; add "
        "FROZEN_MANIFEST=<manifest.py> to freeze modules, e.g. src/uota/device/manifest.py), then copy "
        "ports/unix/build-standard/micropython and mpy-cross/build/mpy-cross to %s."
        % (version, why, SHARED, tag, tag, MAKE_FLAGS, CACHE / version)
    )


def manifest_inputs(manifest):
    """The manifest files and every file they freeze, as build.sh would read them.

    The manifest is run with stand-ins for the manifest API (module, package, include, ...)
    that only note the files.
    """
    inputs = []

    def add(path):
        path = Path(path)
        if path not in inputs:
            inputs.append(path)

    def evaluate(path):
        add(path)
        folder = path.parent

        def base(base_path):
            return (folder / base_path.replace("$(MPY_DIR)", "/nonexistent")).resolve()

        def module(name, base_path=".", **_):
            add(base(base_path) / name)

        def package(name, files=None, base_path=".", **_):
            root = base(base_path) / name
            for file in sorted(root.rglob("*.py")) if files is None else (root / f for f in files):
                add(file)

        def include(other, **_):
            other = base(other)
            evaluate(other / "manifest.py" if other.is_dir() else other)

        def ignore(*args, **kwargs):
            pass

        names = dict(module=module, package=package, include=include, freeze=ignore, require=ignore,
                     metadata=ignore, options=type("Options", (), {"__getattr__": lambda s, n: None})())
        if path.is_file():
            exec(compile(path.read_text(), str(path), "exec"), names)

    evaluate(Path(manifest).resolve())
    return inputs


def _manifest_key(manifest):
    """A hash of the manifest and of every file it freezes, so that a changed module rebuilds."""
    digest = hashlib.sha256()
    for path in manifest_inputs(manifest):
        digest.update(str(path).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_dir(version, manifest=None):
    """The cache folder of a build: .cache/micropython/<version>[-frozen-<hash>]."""
    return CACHE / (version if manifest is None else "%s-frozen-%s" % (version, _manifest_key(manifest)))


def unix_micropython(version, manifest=None) -> Path:
    """The unix port's `micropython` binary for version (1.20.0 or 1.28.0), built once.

    manifest: a MicroPython manifest file whose modules are frozen into the binary, as a
    board's firmware freezes them; each distinct manifest (and frozen file content) is its
    own build.
    """
    out = build_dir(version, manifest)
    binary = out / "micropython"
    if binary.is_file():
        return binary
    script = SHARED / "build.sh"
    if not script.is_file():
        raise _missing(version, "%s is absent" % script)
    if not (SHARED / ("micropython-v%s-unix.tar.gz" % version)).is_file():
        raise _missing(version, "there is no kit for %s in %s" % (version, SHARED))
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / (out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same one
        if binary.is_file():
            return binary
        partial = Path(tempfile.mkdtemp(prefix=out.name + ".building-", dir=CACHE))
        try:
            command = [str(script), version, str(partial)]
            if manifest is not None:
                command += ["--manifest", str(Path(manifest).resolve())]
            done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if done.returncode != 0 or not (partial / "micropython").is_file():
                raise RuntimeError("build.sh %s failed (%d):\n%s%s" % (
                    version, done.returncode, done.stdout[-3000:], done.stderr[-3000:]))
            if out.exists():
                shutil.rmtree(out)
            os.rename(partial, out)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return binary


def unix_micropython_or_skip(version, manifest=None) -> Path:
    """unix_micropython() for a test: without the build kit the test is skipped, with the
    text that says how to build the same binary."""
    import pytest  # only the tests skip; the benchmarks call unix_micropython()

    try:
        return unix_micropython(version, manifest)
    except UnixPortMissing as error:
        pytest.skip(str(error))


def mpy_cross(version) -> Path:
    """The mpy-cross built from the same tag: the .mpy it writes is what that version loads."""
    return unix_micropython(version).parent / "mpy-cross"


def compile_mpy(version, source, dest_folder, source_name=None):
    """Compile source (a .py file) with that version's mpy-cross into dest_folder; its path.
    source_name is the name the .mpy records (default: source's own name), as `uota init
    --mpy` and mip record a package-relative one: the device interns it."""
    dest = Path(dest_folder) / (Path(source).stem + ".mpy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(mpy_cross(version)), "-s", source_name or Path(source).name, "-o", str(dest), str(source)],
                   check=True, capture_output=True)
    return dest


def compile_tree(version, source_folder, dest_folder):
    """Compile every .py under source_folder into dest_folder, keeping a package's folders;
    each .mpy records its path relative to source_folder (uota/_core.py)."""
    for path in sorted(Path(source_folder).rglob("*.py")):
        relative = path.relative_to(source_folder)
        compile_mpy(version, path, Path(dest_folder) / relative.parent, relative.as_posix())
    return Path(dest_folder)


def run(binary, root, script, heap_kib, module_dirs=(), timeout=120):
    """Run script (text) on `micropython -X heapsize=<heap_kib>k` in the device folder root.

    The script file lives outside root (the device's files stay the device's); MICROPYPATH
    puts module_dirs first, then the device's root, then the frozen modules. Returns
    (returncode, stdout, stderr); a run past the timeout returns returncode None.
    """
    with tempfile.TemporaryDirectory(prefix="unix-port-script-") as folder:
        path = Path(folder) / "script.py"
        path.write_text(script)
        env = dict(os.environ)
        path_entries = [str(Path(d).resolve()) for d in module_dirs] + [str(Path(root).resolve()), ".frozen"]
        env["MICROPYPATH"] = ":".join(path_entries)
        try:
            done = subprocess.run(
                [str(binary), "-X", "heapsize=%dk" % heap_kib, str(path)],
                cwd=str(root), env=env, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            def text(data):
                return data.decode(errors="replace") if isinstance(data, bytes) else data or ""
            return None, text(e.stdout), text(e.stderr) + "\n(timed out after %ds)" % timeout
        return done.returncode, done.stdout, done.stderr
