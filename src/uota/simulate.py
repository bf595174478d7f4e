"""`uota simulate`: a virtual device, a host folder, updated by the real device module.

The folder DIR is the device's filesystem: it holds `uota.cfg` and `version`
like a board's root. `simulate_device` runs, on the chosen runtime (see
`uota.runtime`), the script a board runs at boot and in main.py:

    recover()  ->  check_for_updates()  ->  install_new_firmware()

with the updater the device has installed (DIR/lib/uota, as `uota init` and mip
put it) on MicroPython; this package's copy on CPython (lib/uota is the boards'
form, without the module only CPython needs) or when DIR has none; its
logging at INFO. Then
it boots what is installed, `boots` times: boot.py then main.py, each boot a
fresh run, so that a release that does not import, or that the runtime cannot
load (.mpy on CPython), is a failure and not "updated". A `machine` module
stands in for the board's: `machine.reset()` ends the boot. A boot still
running after `boot_timeout` seconds (an application's main loop) has booted.
The scripts print each result on a line starting with `_RESULT_MARK`;
everything else they print is the device's log, in order.
"""

import ast
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .errors import CommandError
from .runtime import RUNTIMES, DeviceTimeout, RuntimeUnavailable, run_device

DEVICE_MODULE_DIR = Path(__file__).resolve().parent / "device"
STEPS = ("recover", "check_for_updates", "install_new_firmware")

_RESULT_MARK = "uota-simulate:"
# Log to stdout so log lines and results keep their order. MicroPython's
# logging writes "LEVEL:name:message" like CPython's; the device logs every
# failure at ERROR.
_SCRIPT = """\
import sys, logging
{own}logging.basicConfig(level=logging.INFO, stream=sys.stdout)
import uota
print({mark!r}, "recover", uota.recover())
found = uota.check_for_updates(pubkey_hash={pin!r})
print({mark!r}, "check_for_updates", found)
if found and {install!r}:
    print({mark!r}, "install_new_firmware", uota.install_new_firmware())
"""
OWN_UPDATER = "sys.path.insert(0, 'lib')  # the board's /lib\n"
_BOOT_SCRIPT = """\
import sys
{lib}
def _run(name):
    try:
        source = open(name).read()
    except OSError:
        return
    exec(source, {{"__name__": "__main__"}})
try:
    _run("boot.py")
    _run("main.py")
    print({mark!r}, "boot", "ended")
except SystemExit:
    print({mark!r}, "boot", "reset")
"""
# What stands in for a board's machine module while the installed application boots.
_MACHINE = """\
def reset():
    raise SystemExit("machine.reset()")


def unique_id():
    return b"uota-simulate"
"""


@dataclass
class Simulation:
    """What happened on the virtual device."""

    runtime: str
    root: Path
    version_before: Optional[str]
    version_after: Optional[str] = None
    results: dict = field(default_factory=dict)  # step name -> what it returned
    transcript: List[str] = field(default_factory=list)  # log lines and "step: result", in order
    errors: List[str] = field(default_factory=list)  # the device's ERROR log lines
    updater: str = ""  # where the device code that ran came from
    boots: List[str] = field(default_factory=list)  # each boot's outcome: ended, reset, running, or why it failed
    stderr: str = ""
    returncode: int = 0

    @property
    def updated(self) -> bool:
        return self.results.get("install_new_firmware") is True

    @property
    def ok(self) -> bool:
        """The device ended up to date, updated, or (without install) downloaded, without error."""
        if self.returncode != 0 or self.errors or "check_for_updates" not in self.results:
            return False
        if any(boot.startswith("failed") for boot in self.boots):
            return False
        # check_for_updates False without an error means up to date
        return self.results.get("install_new_firmware", True) is True


def read_version(root) -> Optional[str]:
    try:
        return (Path(root) / "version").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def simulate_device(root, runtime="cpython", install=True, pin=None, timeout=120, boots=0,
                    boot_timeout=10) -> Simulation:
    """Run a boot's update steps on the virtual device at `root`, then boot what is
    installed `boots` times; return what happened.

    Raises:
        CommandError: `root` or its uota.cfg is missing, an unknown runtime, or
            the runtime cannot run here (e.g. no Node.js) or timed out.
    """
    root = Path(root)
    if runtime not in RUNTIMES:
        raise CommandError("unknown runtime {!r} (choose from {})".format(runtime, ", ".join(RUNTIMES)))
    if not root.is_dir():
        raise CommandError("device folder {} does not exist".format(root))
    if not (root / "uota.cfg").is_file():
        raise CommandError("{} has no uota.cfg: it is not a device folder (see uota init)".format(root))
    simulation = Simulation(runtime, root, read_version(root))
    own = runtime != "cpython" and any((root / "lib" / "uota" / name).is_file()
                                       for name in ("__init__.py", "__init__.mpy"))
    simulation.updater = "the device's own, lib/uota" if own else "uota's package copy ({})".format(
        "on CPython" if runtime == "cpython" else "the device has no lib/uota")
    script = _SCRIPT.format(mark=_RESULT_MARK, pin=(pin or "").encode(), install=install, own=OWN_UPDATER if own else "")
    try:
        run = run_device(runtime, root, script, module_dirs=[] if own else [DEVICE_MODULE_DIR], timeout=timeout)
    except (RuntimeUnavailable, DeviceTimeout) as error:
        raise CommandError("{}: {}".format(runtime, error))
    simulation.version_after = read_version(root)
    simulation.stderr, simulation.returncode = run.stderr, run.returncode
    for line in run.stdout.splitlines():
        if line.startswith(_RESULT_MARK):
            step, value = line[len(_RESULT_MARK):].split()
            simulation.results[step] = ast.literal_eval(value)
            if step == "recover":  # False is the usual answer, not a failure
                value = _RECOVERED.get((simulation.results[step], bool(simulation.errors)), value)
            simulation.transcript.append("{}: {}".format(step, value))
        else:
            line = _one_uota(line)
            simulation.transcript.append(line)
            if line.startswith("ERROR:"):
                simulation.errors.append(line)
    for _ in range(boots):
        simulation.boots.append(_boot(root, runtime, boot_timeout))
    return simulation


def _boot(root, runtime, timeout):
    """Boot what the device at `root` has installed, once: "ended" (main.py returned),
    "reset" (it called machine.reset()), "running after N s", or "failed: why"."""
    with tempfile.TemporaryDirectory(prefix="uota-machine-") as stand_in:
        (Path(stand_in) / "machine.py").write_text(_MACHINE)
        try:
            if runtime == "cpython":  # this package's uota, then the application's lib/
                lib, module_dirs = "sys.path.append('lib')", [stand_in, DEVICE_MODULE_DIR]
            else:  # lib/ first, as on a board
                lib, module_dirs = "sys.path.insert(0, 'lib')", [stand_in]
            run = run_device(runtime, root, _BOOT_SCRIPT.format(mark=_RESULT_MARK, lib=lib), module_dirs=module_dirs,
                             timeout=timeout)
        except DeviceTimeout:
            return "running after {} s".format(timeout)
        except RuntimeUnavailable as error:
            raise CommandError("{}: {}".format(runtime, error))
    for line in run.stdout.splitlines():
        if line.startswith(_RESULT_MARK) and run.returncode == 0:
            return line.split()[-1]
    lines = (run.stderr or run.stdout).strip().splitlines()
    return "failed: " + (lines[-1] if lines else "exit status {}".format(run.returncode))


# recover()'s result, and whether it logged an error, in words.
_RECOVERED = {
    (True, False): "finished an interrupted install",
    (False, False): "nothing to finish",
    (False, True): "failed",
}


def _one_uota(line):
    """A log line "LEVEL:uota:uota: message" (the device's errors also start "uota: ",
    for a board's console without logging) with the name once: "LEVEL:uota:message"."""
    level, _, rest = line.partition(":uota:uota: ")
    return "{}:uota:{}".format(level, rest) if rest and ":" not in level else line


def format_simulation(simulation) -> List[str]:
    """The simulation as lines of text: versions around the device's transcript."""
    lines = ["version before: {}".format(simulation.version_before or "(none)")]
    if simulation.updater:
        lines.append("updater: {}".format(simulation.updater))
    lines += simulation.transcript
    lines += simulation.stderr.strip().splitlines()
    lines.append("version after: {}".format(simulation.version_after or "(none)"))
    lines += ["boot {}: {}".format(number, boot) for number, boot in enumerate(simulation.boots, 1)]
    return lines


def add_arguments(parser):
    parser.add_argument("--root", required=True, metavar="DIR", help="the device's filesystem: holds uota.cfg and version")
    parser.add_argument("--runtime", choices=RUNTIMES, default="cpython", help="what the device runs (default: cpython)")
    parser.add_argument("--no-install", action="store_true", help="check and download, but do not install")
    parser.add_argument("--pin", metavar="HASH", help="pubkey_hash for check_for_updates (see uota pin)")
    parser.add_argument("--boots", type=int, default=1, metavar="N",
                        help="then boot what is installed (boot.py, main.py) N times (default: 1; 0: none)")
    parser.add_argument("--boot-timeout", type=float, default=10, metavar="S",
                        help="a boot still running after S seconds has booted (default: 10)")


def run(args):
    """Run recover, check_for_updates and install_new_firmware on a virtual device."""
    simulation = simulate_device(args.root, args.runtime, install=not args.no_install, pin=args.pin, boots=args.boots,
                                 boot_timeout=args.boot_timeout)
    for line in format_simulation(simulation):
        print(line)
    return 0 if simulation.ok else 1
