"""`uota simulate`: a virtual device, a host folder, updated by the real device module.

The folder DIR is the device's filesystem: it holds `uota.cfg` and `version`
like a board's root. `simulate_device` runs, on the chosen runtime (see
`uota.runtime`), the script a board runs at boot and in main.py:

    recover()  ->  check_for_updates()  ->  install_new_firmware()

with the device module imported from this package (not from DIR) and its
logging at INFO. The script prints each call's result on a line starting with
`_RESULT_MARK`; everything else it prints is the device's log, in order.
"""

import ast
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
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
import uota
print({mark!r}, "recover", uota.recover())
found = uota.check_for_updates(pubkey_hash={pin!r})
print({mark!r}, "check_for_updates", found)
if found and {install!r}:
    print({mark!r}, "install_new_firmware", uota.install_new_firmware())
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
        # check_for_updates False without an error means up to date
        return self.results.get("install_new_firmware", True) is True


def read_version(root) -> Optional[str]:
    try:
        return (Path(root) / "version").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def simulate_device(root, runtime="cpython", install=True, pin=None, timeout=120) -> Simulation:
    """Run a boot's update steps on the virtual device at `root`; return what happened.

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
    script = _SCRIPT.format(mark=_RESULT_MARK, pin=(pin or "").encode(), install=install)
    try:
        run = run_device(runtime, root, script, module_dirs=[DEVICE_MODULE_DIR], timeout=timeout)
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
    return simulation


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
    lines += simulation.transcript
    lines += simulation.stderr.strip().splitlines()
    lines.append("version after: {}".format(simulation.version_after or "(none)"))
    return lines


def add_arguments(parser):
    parser.add_argument("--root", required=True, metavar="DIR", help="the device's filesystem: holds uota.cfg and version")
    parser.add_argument("--runtime", choices=RUNTIMES, default="cpython", help="what the device runs (default: cpython)")
    parser.add_argument("--no-install", action="store_true", help="check and download, but do not install")
    parser.add_argument("--pin", metavar="HASH", help="pubkey_hash for check_for_updates (see uota pin)")


def run(args):
    """Run recover, check_for_updates and install_new_firmware on a virtual device."""
    simulation = simulate_device(args.root, args.runtime, install=not args.no_install, pin=args.pin)
    for line in format_simulation(simulation):
        print(line)
    return 0 if simulation.ok else 1
