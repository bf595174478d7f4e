"""Run Python code as a simulated device, on real MicroPython or on CPython.

A device is a host folder (its filesystem, and the working directory of the
script) plus real networking. Runtimes:

* ``micropython-1.20`` / ``micropython-1.29``: the MicroPython WebAssembly port
  from npm, run by Node (``wasm/runner.mjs``). The folder is copied into the
  port's in-memory filesystem at ``/flash`` and mirrored back after the run,
  so state persists across runs. ``socket`` and ``ssl`` are bridged to real
  TCP/TLS on the host (``wasm/socket_bridge.py``, ``wasm/ssl_bridge.py``).
* ``cpython``: ``sys.executable`` in the folder, isolated from site-packages,
  with MicroPython-flavoured ``socket``/``ssl`` wrappers over the real ones
  (``wasm/socket_cpython.py``, ``wasm/ssl_cpython.py``).

``python -m uota.runtime install`` pre-installs the MicroPython runtimes.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

RUNTIMES = ("cpython", "micropython-1.20", "micropython-1.29")
NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
NPM_VERSIONS = {"micropython-1.20": "1.20.0-297", "micropython-1.29": "1.29.0-6"}

WASM_DIR = Path(__file__).resolve().parent / "wasm"
RUNNER = WASM_DIR / "runner.mjs"

# Puts the MicroPython-flavoured socket/ssl in place once the real modules are
# loaded, then runs the script as __main__.
# CPython runs the device module with its real socket and ssl: that is the module's
# own CPython path, as on a Linux device.
_CPYTHON_BOOTSTRAP = """\
import sys
script, *import_dirs = sys.argv[1:]
del sys.argv[1:]
sys.path[0:0] = import_dirs
with open(script) as source:
    code = compile(source.read(), script, "exec")
exec(code, {"__name__": "__main__"})
"""

PathLike = Union[str, "os.PathLike[str]"]


class RuntimeUnavailable(RuntimeError):
    """A runtime cannot be used here (Node/npm missing, install failed)."""


class DeviceTimeout(RuntimeError):
    """The device script did not finish in time and was killed."""


@dataclass(frozen=True)
class DeviceRun:
    stdout: str
    stderr: str
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def cache_dir() -> Path:
    configured = os.environ.get("UOTA_RUNTIME_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "uota" / "micropython"


def ensure_micropython(runtime: str) -> Path:
    """Returns the npm package directory of `runtime`, installing it once."""
    if runtime not in NPM_VERSIONS:
        raise ValueError(f"not a MicroPython runtime: {runtime!r} (choose from {sorted(NPM_VERSIONS)})")
    version = NPM_VERSIONS[runtime]
    prefix = cache_dir() / version
    package = prefix / "node_modules" / NPM_PACKAGE
    if _installed_version(package) == version:
        return package
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeUnavailable(f"{runtime} needs Node.js and npm on PATH")
    prefix.mkdir(parents=True, exist_ok=True)
    # Parallel test processes may all get here; one installs, the others wait.
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(package) != version:
            _npm_install(npm, prefix, f"{NPM_PACKAGE}@{version}")
    if _installed_version(package) != version:
        raise RuntimeUnavailable(f"npm did not install {NPM_PACKAGE}@{version} into {prefix}")
    return package


def _installed_version(package: Path):
    try:
        return json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _npm_install(npm: str, prefix: Path, spec: str) -> None:
    command = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix), spec]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeUnavailable(f"npm install {spec} failed: {last_line}")


def run_device(
    runtime: str,
    root: PathLike,
    script: str,
    *,
    module_dirs: Iterable[PathLike] = (),
    heapsize: int = 4 * 1024 * 1024,
    timeout: float = 120,
) -> DeviceRun:
    """Runs `script` on a device whose filesystem is the folder `root`.

    `module_dirs` come first on the import path (then the device's own
    files). `heapsize` is the MicroPython heap; these builds never collect
    garbage while a script runs, so it must hold everything the script
    allocates. Raises DeviceTimeout after `timeout` seconds.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (choose from {RUNTIMES})")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    module_dirs = [str(Path(directory).resolve()) for directory in module_dirs]
    with tempfile.TemporaryDirectory(prefix="uota-device-") as scratch:
        script_path = Path(scratch) / "main.py"
        script_path.write_text(script)
        if runtime == "cpython":
            command = [sys.executable, "-I", "-S", "-u", "-c", _CPYTHON_BOOTSTRAP,  # -u: unbuffered, as a board's console
                       str(script_path), *module_dirs, ""]
        else:
            config = {
                "package": str(ensure_micropython(runtime)),
                "root": str(root),
                "script": str(script_path),
                "moduleDirs": module_dirs,
                "heapsize": heapsize,
            }
            node = shutil.which("node")
            if node is None:
                raise RuntimeUnavailable(f"{runtime} needs Node.js on PATH")
            command = [node, str(RUNNER), json.dumps(config)]
        try:
            result = subprocess.run(command, cwd=root, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            detail = ""
            for name, data in (("stdout", expired.stdout), ("stderr", expired.stderr)):
                text = (data or b"").decode(errors="replace").strip()
                detail += f"; {name} so far: {text[-500:]}" if text else ""
            raise DeviceTimeout(f"{runtime} device script killed after {timeout}s{detail}") from None
    return DeviceRun(
        stdout=result.stdout.decode(errors="replace"),
        stderr=result.stderr.decode(errors="replace"),
        returncode=result.returncode,
    )


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m uota.runtime install", file=sys.stderr)
        return 2
    for runtime in NPM_VERSIONS:
        print(f"{runtime}: {ensure_micropython(runtime)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
