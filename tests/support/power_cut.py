"""Power-cut sweeps: cut an update at every write, reboot, recover, and judge the device.

A device starts with release A (`OLD`, with `uota.cfg` excluding `wifi.json` and giving the
device's own `device_id`, which B's `uota.cfg` lacks and the install keeps); a real HTTP
server on 127.0.0.1 (`uota serve`) offers release B (`NEW`: changed files, a new
subdirectory, a file bigger than a flash block, and a new `uota.cfg` whose `delete` list
removes one of A's files), built by `uota build`; B does not ship another file that A's
`uota.files` lists, so the install removes it too. One case:

  1. power on the image of A; update (check_for_updates, install_new_firmware) with the
     power cut after write N; whatever the code does next is lost;
  2. reboot; optionally cut again after write M of recover(); reboot;
  3. recover(), then judge the tree byte for byte, `version` included:
       new      exactly B, nothing left behind;
       old      exactly A, plus at most the legal leftovers of an unfinished download:
                `fw.tmp` (the archive, partial or whole) and `uota.state` holding a
                complete record in phase partial or ready;
       bricked  anything else: neither tree, a file missing or changed, a stray
                `*.uota-new`, a journal left `installing`, recover() reporting an error;
  4. update again without a cut: it must end at exactly B with nothing left behind,
     or the case is bricked too.

Two kinds of device: the device module on CPython over littlefs or FAT (`flash.py`, real C
filesystem code, writes are block-device writes), and real MicroPython (WebAssembly,
`uota.runtime`) over an in-memory VFS (`device_fs/cutfs.py`), writes are VFS calls.
"""

import ast
import importlib
import importlib.util
import itertools
import json
import random
import sys
import tempfile
import types
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from uota.build import build_release
from uota.serve import start_server

from support import flash
from support.fixtures_runtime import DEVICE_MODULE_DIR
from support.releases import Device, device_cfg, files_list, listed_files, write_tree

CUTFS_DIR = Path(__file__).resolve().parent / "device_fs"
ARCHIVE = "fw.tmp"
STATE = "uota.state"

OLD_VERSION, NEW_VERSION = "1.0.0", "2.0.0"
OLD = {
    "boot.py": "import uota\nuota.recover()\n",
    "main.py": "print('release A')\n",
    "lib/util.py": "A = 1\n",
    "lib/retired.py": "GONE = True\n",  # B's uota.cfg deletes it
    "lib/dropped.py": "DROPPED = True\n",  # A's uota.files lists it, B does not ship it
    "wifi.json": '{"ssid": "home"}\n',  # excluded: never overwritten
    "version": OLD_VERSION,
}
NEW = {
    "boot.py": "import uota\nuota.recover()\n",  # unchanged
    "main.py": "print('release B')\n",
    "lib/util.py": "A = 2\n" * 40,
    "lib/deep/more.py": "B = 3\n",
    "assets/blob.bin": random.Random(7).randbytes(9000),  # incompressible, over a block
    "wifi.json": '{"ssid": "factory"}\n',  # in the archive, excluded on the device
}
SHARED = {"lib/shared.bin": random.Random(8).randbytes(6000)}  # in A and B alike: no delta carries it
DELETED = ["lib/retired.py"]
DROPPED = ["lib/dropped.py"]


def _bytes(data):
    return data.encode() if isinstance(data, str) else data


class Releases:
    """A and B for one server URL: B published in `dist`, and both trees as devices hold them.
    With `delta`, both also hold SHARED, A's uota.files is that of A built by `uota build`,
    and B's `latest` names a delta from A."""

    def __init__(self, dist, url, trial_boots=0, delta=False):
        trial = {"trial_boots": trial_boots} if trial_boots else {}
        self.old_cfg = device_cfg(url, device_id="board-7", **trial)  # the device's own: the install keeps it
        self.new_cfg = device_cfg(url, delete=DELETED, **trial)
        old = dict(OLD, **{"uota.cfg": self.old_cfg}, **(SHARED if delta else {}))
        new_files = dict(NEW, **{"uota.cfg": self.new_cfg}, **(SHARED if delta else {}))
        old_list, delta_from = files_list(old), []
        if delta:
            old_source = write_tree(Path(dist) / "src-a", {name: data for name, data in old.items() if name != "version"})
            delta_from = [build_release(old_source, OLD_VERSION, Path(dist) / "a").archive_path]
            old_list = listed_files(delta_from[0])
        archive = build_release(write_tree(Path(dist) / "src", new_files), NEW_VERSION, dist,
                                delta_from=delta_from).archive_path
        self.old_tree = tree_of(dict(old, **{"uota.files": old_list}))  # as A's install left it
        new = dict(old)
        new.update((name, data) for name, data in new_files.items() if name not in ("wifi.json", "uota.cfg"))
        for name in DELETED + DROPPED:
            del new[name]
        installed_cfg = repr(dict(ast.literal_eval(self.new_cfg), device_id="board-7"))
        self.new_tree = tree_of(dict(new, **{"uota.cfg": installed_cfg, "version": NEW_VERSION,
                                            "uota.files": listed_files(archive)}))


def tree_of(files):
    """{path: bytes} plus each directory as {path + '/': None}: the shape every walk returns."""
    tree = {}
    for name, data in files.items():
        tree[name] = _bytes(data)
        for cut in range(len(name)):
            if name[cut] == "/":
                tree[name[: cut + 1]] = None
    return _canonical_cfg(tree)


def _canonical_cfg(tree):
    """tree with uota.cfg's keys in sorted order: the install writes a merged uota.cfg with
    repr(), whose key order differs between CPython and MicroPython; the settings are what
    count. A uota.cfg that does not parse stays as it is."""
    try:
        cfg = ast.literal_eval(tree["uota.cfg"].decode())
        tree["uota.cfg"] = repr(dict(sorted(cfg.items()))).encode()
    except (KeyError, AttributeError, ValueError, SyntaxError, UnicodeDecodeError):
        pass
    return tree


@contextmanager
def served_releases(trial_boots=0, delta=False):
    """Releases B served over HTTP on 127.0.0.1 for the length of the block; with
    trial_boots, both releases' uota.cfg put an install on trial for that many boots; with
    delta, the device on A takes B's delta from A."""
    with tempfile.TemporaryDirectory(prefix="uota-power-cut-") as dist:
        server = start_server(dist)
        try:
            yield Releases(dist, server.url, trial_boots, delta)
        finally:
            server.shutdown()


# ---------------------------------------------------------------- judging a device


def judge(tree, releases, recover_errors=()):
    """('new' | 'old' | 'bricked', why) for the tree a device holds after recover()."""
    if recover_errors:
        return "bricked", "recover() reported: %s" % "; ".join(recover_errors)
    if tree == releases.new_tree:
        return "new", ""
    kept = {path: data for path, data in tree.items() if path not in (ARCHIVE, STATE)}
    if kept == releases.old_tree and _legal_state(tree.get(STATE)):
        return "old", ""
    nearer = releases.old_tree if tree.get("version") != _bytes(NEW_VERSION) else releases.new_tree
    return "bricked", _difference(kept, nearer) or "uota.state: %r" % tree.get(STATE)


def _legal_state(record):
    # an unfinished download: resumable (partial) or verified (ready), never an install
    if record is None:
        return True
    text = record.decode(errors="replace")
    return text.split(";")[0] in ("partial", "ready") and text.endswith("\nend\n")


def _difference(tree, expected):
    missing = sorted(set(expected) - set(tree))
    extra = sorted(set(tree) - set(expected))
    changed = sorted(p for p in set(tree) & set(expected) if tree[p] != expected[p])
    parts = ["%s %s" % (what, ", ".join(paths)) for what, paths in
             (("missing", missing), ("extra", extra), ("changed", changed)) if paths]
    return "; ".join(parts)


class Tally:
    """Outcomes of a sweep: counts, and the cut points that bricked with their reasons."""

    def __init__(self, scenario, writes):
        self.scenario = scenario
        self.writes = writes  # of an uninterrupted update: the cut points are 1..writes
        self.counts = Counter()
        self.bricked = []
        self.leaks = None  # cases that ended with less free space than an uncut update

    def add(self, cut, outcome, why, leaked=None):
        self.counts[outcome] += 1
        if leaked is not None:  # measured on the block-device filesystems only
            self.leaks = (self.leaks or 0) + leaked
        if outcome == "bricked":
            self.bricked.append((cut, why))

    @property
    def cases(self):
        return sum(self.counts.values())

    def report(self):
        """The bricked cases, one per line, for an assertion message."""
        return "\n".join("cut %s: %s" % (cut, why) for cut, why in self.bricked)


def cut_points(total, sample=None, seed=1):
    """1..total, or `sample` of them: the first, the last and a seeded random rest."""
    points = list(range(1, total + 1))
    if sample is None or sample >= total:
        return points
    rest = random.Random(seed).sample(points[1:-1], max(sample - 2, 0))
    return sorted({1, total, *rest})


# ---------------------------------------------------------------- CPython over littlefs / FAT


_copies = itertools.count()


def load_device_module():
    """A private copy of the device package with all its modules loaded, so that their `os`,
    `open` and `_log` can be replaced (flash.install, flash.set_in_package)."""
    name = "uota_on_flash_%d" % next(_copies)
    folder = DEVICE_MODULE_DIR / "uota"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    for module in sorted(folder.glob("_*.py")):
        importlib.import_module("%s.%s" % (name, module.stem))
    # gc.collect() keeps a board's heap small; on CPython it costs 20 ms a call and nothing else
    flash.set_in_package(package, "gc", types.SimpleNamespace(collect=lambda: None))
    return package


def format_flash(filesystem, tree):
    """A new chip formatted with filesystem (flash.LittleFs or flash.Fat) holding tree, a
    `tree_of` shape: (the chip, the mounted filesystem)."""
    chip = flash.Flash()
    fs = filesystem.format(chip)
    for path, data in sorted(tree.items()):  # a folder before its files
        if data is None:
            fs.mkdir(path[:-1])
        else:
            with fs.open(path, "wb") as f:
                f.write(data)
    return chip, fs


class FlashDevice:
    """The device module on CPython over a filesystem class (flash.LittleFs or flash.Fat),
    starting from tree (a `tree_of` shape; releases.old_tree when not given)."""

    def __init__(self, filesystem, releases, tree=None):
        self.filesystem = filesystem
        self.releases = releases
        self.module = load_device_module()
        flash.set_in_package(self.module, "_log", self._log)  # keeps what it reports, prints nothing
        self.errors = []
        chip, self.fs = format_flash(filesystem, releases.old_tree if tree is None else tree)
        self.image_of_old = bytes(chip.image)

    def _log(self, level, message):
        if level == "error":
            self.errors.append(message)

    def boot(self, chip):
        """Mount chip (a reboot) and point the device module at it."""
        chip.reboot()
        self.fs = self.filesystem(chip)
        flash.install(self.module, self.fs)

    def update(self):
        """check_for_updates then install_new_firmware; True when both said yes."""
        return bool(self.module.check_for_updates(quiet=True) and self.module.install_new_firmware(quiet=True))

    def tree(self, folder=""):
        tree = {}
        for name in self.fs.listdir(folder or "."):
            path = folder + name
            if self.fs.stat(path)[0] & 0x4000:
                tree[path + "/"] = None
                tree.update(self.tree(path + "/"))
            else:
                with self.fs.open(path, "rb") as f:
                    tree[path] = f.read()
        return tree if folder else _canonical_cfg(tree)

    def writes_of_update(self):
        """W: the writes an uninterrupted update makes (which must end at B)."""
        chip = flash.Flash(self.image_of_old)
        self.boot(chip)
        assert self.update() and self.tree() == self.releases.new_tree
        self.free_after_update = self.fs.statvfs(".")[3]
        return chip.writes

    def writes_of_recover(self, update_cut):
        chip = self._cut_update(update_cut)
        self.boot(chip)
        self.module.recover(quiet=True)
        return chip.writes

    def _cut_update(self, cut):
        chip = flash.Flash(self.image_of_old)
        self.boot(chip)
        chip.cut_power_after(cut)
        try:
            self.update()
        except Exception:  # the board is off: what the code does now reaches no flash
            pass
        return chip

    def case(self, update_cut, recover_cut=None):
        """One power cut (two with recover_cut): ('old' | 'new' | 'bricked', why, leaked)."""
        leaked = False
        try:
            chip = self._cut_update(update_cut)
            if recover_cut is not None:
                self.boot(chip)
                chip.cut_power_after(recover_cut)
                try:
                    self.module.recover(quiet=True)
                except Exception:
                    pass
            self.boot(chip)
            self.errors = []
            self.module.recover(quiet=True)
            outcome, why = judge(self.tree(), self.releases, self.errors)
            if outcome != "bricked":
                self.update()
                problem = _difference(self.tree(), self.releases.new_tree)
                if problem:
                    outcome, why = "bricked", "the next update did not finish the job: " + problem
                leaked = self.fs.statvfs(".")[3] < self.free_after_update
        except Exception as e:  # a mount that fails, recover() raising, an unreadable tree
            outcome, why = "bricked", "%s: %s" % (type(e).__name__, e)
        return outcome, why, leaked


def sweep_flash(filesystem, releases, sample=None, scenario=None):
    """Cut an update at every write (or a sample); the Tally of outcomes."""
    device = FlashDevice(filesystem, releases)
    tally = Tally(scenario or "update cut, %s" % filesystem.__name__, device.writes_of_update())
    for cut in cut_points(tally.writes, sample):
        tally.add(cut, *device.case(cut))
    return tally


def sweep_flash_recover(filesystem, releases, update_sample=None, recover_sample=3, seed=2, scenario=None):
    """Cut an update, then cut recover() too: for each update cut, up to recover_sample cuts."""
    device = FlashDevice(filesystem, releases)
    tally = Tally(scenario or "update cut, recover cut, %s" % filesystem.__name__, device.writes_of_update())
    for cut in cut_points(tally.writes, update_sample, seed):
        recover_writes = device.writes_of_recover(cut)
        for second in cut_points(recover_writes, recover_sample, seed + cut):
            tally.add("%d+%d" % (cut, second), *device.case(cut, second))
    return tally


# ---------------------------------------------------------------- real MicroPython over cutfs

_MP_IMAGE = "cutfs.json"  # the in-memory filesystem between boots, in the device folder
_MP_UPDATE = "uota.check_for_updates(quiet=True) and uota.install_new_firmware(quiet=True)"
_MP_RECOVER = "uota.recover(quiet=True)"
_MP_BOOT = """
import cutfs
fs = cutfs.boot(%r, %r, %r, %r)
try:
    %s
except Exception as e:  # during an update: the board is off; during recover(): a failure
    print("ERROR: raised", repr(e))
cutfs.save(fs, %r)
print("WRITES", fs.writes)
"""


def _image_text(tree):
    return json.dumps({p: None if d is None else list(d) for p, d in tree.items()})


def _image_tree(text):
    return _canonical_cfg({p: None if d is None else bytes(d) for p, d in json.loads(text).items()})


class Boot:
    """What one boot of MicroPython over cutfs did: its writes, its error lines, the tree
    it left, and all it printed."""

    def __init__(self, writes, errors, tree, output):
        self.writes, self.errors, self.tree, self.output = writes, errors, tree, output


class MicroPythonDevice:
    """The device module on real MicroPython over cutfs, a VFS that cuts after N write calls.

    fat_rename: rename onto an existing file is remove-then-rename (two writes), as FAT's.
    """

    def __init__(self, runtime, releases, folder, fat_rename=False):
        self.releases = releases
        self.fat_rename = fat_rename
        self.device = Device(runtime, folder, module_dirs=(DEVICE_MODULE_DIR, CUTFS_DIR))
        self.image = self.device.root / _MP_IMAGE

    def boot(self, action, cut=None, fail_at=None):
        """Run action (one line; `fs` is the cutfs) in one boot, the power cut after write
        `cut`, write `fail_at` raising OSError(EIO) (cutfs.boot); its Boot."""
        result = self.device.run(_MP_BOOT % (_MP_IMAGE, self.fat_rename, cut, fail_at, action, _MP_IMAGE))
        output = result.stdout + result.stderr
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        writes = int(result.stdout.split("WRITES")[-1])
        return Boot(writes, errors, _image_tree(self.image.read_text()), output)

    def start_with(self, tree):
        """Power on next with tree (a `tree_of` shape) in the flash."""
        self.image.write_text(_image_text(tree))

    def _start_with_old(self):
        self.start_with(self.releases.old_tree)

    def writes_of_update(self):
        self._start_with_old()
        boot = self.boot(_MP_UPDATE)
        assert boot.tree == self.releases.new_tree
        return boot.writes

    def case(self, update_cut):
        """One power cut on real MicroPython: ('old' | 'new' | 'bricked', why)."""
        self._start_with_old()
        self.boot(_MP_UPDATE, update_cut)
        recovered = self.boot(_MP_RECOVER)
        outcome, why = judge(recovered.tree, self.releases, recovered.errors)
        if outcome != "bricked":
            problem = _difference(self.boot(_MP_UPDATE).tree, self.releases.new_tree)
            if problem:
                outcome, why = "bricked", "the next update did not finish the job: " + problem
        return outcome, why


def sweep_micropython(runtime, releases, folder, sample=None, fat_rename=False, scenario=None):
    device = MicroPythonDevice(runtime, releases, folder, fat_rename)
    tally = Tally(scenario or "update cut, %s" % runtime, device.writes_of_update())
    for cut in cut_points(tally.writes, sample):
        tally.add(cut, *device.case(cut))
    return tally


# ---------------------------------------------------------------- trial boots
#
# With trial_boots (served_releases(trial_boots=N)), three more operations are cut at every
# write: the install that keeps a backup, confirm(), and the rollback recover() makes once
# N boots passed without confirm(). Each case then goes on uncut to the end of the trial,
# and must end at exactly A (rolled back, B remembered as failed) or exactly B (confirmed).

TRIAL_RECORDS = ("uota.trial", "uota.bak/")


def judge_trial(tree, releases, errors=()):
    """('new' | 'old' | 'bricked', why) after a cut install on trial and a boot: new is B
    with its trial records (uota.trial, the backup), old is as judge() has it."""
    if "uota.trial" not in tree:
        outcome, why = judge(tree, releases, errors)
        return ("bricked", "B installed without its trial") if outcome == "new" else (outcome, why)
    if errors:
        return "bricked", "; ".join(errors)
    problem = _difference({p: d for p, d in tree.items() if not p.startswith(TRIAL_RECORDS)}, releases.new_tree)
    return ("bricked", "on trial: " + problem) if problem else ("new", "")


def judge_rolled_back(tree, releases, errors=()):
    """('old' | 'bricked', why): exactly A, with uota.state remembering B as failed."""
    if errors:
        return "bricked", "; ".join(errors)
    problem = _difference({p: d for p, d in tree.items() if p != STATE}, releases.old_tree)
    if problem:
        return "bricked", problem
    state = (tree.get(STATE) or b"").decode(errors="replace")
    if not state.startswith("failed;%s;" % NEW_VERSION):
        return "bricked", "uota.state: %r" % state
    return "old", ""


class FlashTrial:
    """A device on CPython over a flash filesystem, driven one boot (step) at a time."""

    def __init__(self, filesystem, releases):
        self.device = FlashDevice(filesystem, releases)
        self.releases = releases

    def start(self, image=None):
        self.chip = flash.Flash(self.device.image_of_old if image is None else image)
        self.errors = []

    def step(self, action, cut=None):
        """One boot doing action ('update', 'recover' or 'confirm'), cut after write `cut`;
        its writes. Errors of an uncut step add to self.errors."""
        device = self.device
        device.boot(self.chip)
        device.errors = []
        if cut is not None:
            self.chip.cut_power_after(cut)
        try:
            {"update": device.update, "recover": lambda: device.module.recover(quiet=True),
             "confirm": device.module.confirm}[action]()
        except Exception as e:
            device.errors.append("%s: %s" % (type(e).__name__, e))
        if cut is None:
            self.errors += device.errors
        return self.chip.writes

    def image(self):
        return bytes(self.chip.image)

    def tree(self):
        self.device.boot(self.chip)
        return self.device.tree()


class MicroPythonTrial:
    """The same on real MicroPython over cutfs: each step is one run of the runtime."""

    ACTIONS = {"update": _MP_UPDATE, "recover": _MP_RECOVER, "confirm": "uota.confirm()"}

    def __init__(self, runtime, releases, folder, fat_rename=False):
        self.device = MicroPythonDevice(runtime, releases, folder, fat_rename)
        self.releases = releases

    def start(self, image=None):
        self.current = self.releases.old_tree if image is None else image
        self.device.start_with(self.current)
        self.errors = []

    def step(self, action, cut=None):
        boot = self.device.boot(self.ACTIONS[action], cut)
        self.current = boot.tree
        if cut is None:
            self.errors += boot.errors
        return boot.writes

    def image(self):
        return self.current

    def tree(self):
        return self.current


def _trial_install_case(machine, boots, cut):
    machine.start()
    machine.step("update", cut)
    machine.step("recover")
    outcome, why = judge_trial(machine.tree(), machine.releases, machine.errors)
    if outcome == "bricked":
        return outcome, why
    if outcome == "old":
        machine.step("update")
    for _ in range(boots + 1):  # never confirmed
        machine.step("recover")
    rolled, problem = judge_rolled_back(machine.tree(), machine.releases, machine.errors)
    return (outcome, why) if rolled == "old" else ("bricked", "the rollback after it: " + problem)


def _trial_confirm_case(machine, image, cut):
    machine.start(image)
    machine.step("confirm", cut)
    machine.step("recover")
    machine.step("confirm")  # the application confirms at each boot
    for _ in range(3):
        machine.step("recover")
    problem = _difference(machine.tree(), machine.releases.new_tree)
    if problem or machine.errors:
        return "bricked", problem or "; ".join(machine.errors)
    return "new", ""


def _trial_rollback_case(machine, image, cut):
    machine.start(image)
    machine.step("recover", cut)
    machine.step("recover")
    outcome, why = judge_rolled_back(machine.tree(), machine.releases, machine.errors)
    if outcome == "old":
        rolled_back = machine.tree()
        machine.step("update")  # B is remembered: not installed again
        if machine.tree() != rolled_back:
            return "bricked", "B installed again: " + _difference(machine.tree(), rolled_back)
    return outcome, why


def sweep_trial(machine, phase, boots, sample=None, seed=1):
    """Cut `phase` ('install', 'confirm' or 'rollback') of a release on trial for `boots`
    boots at every write (or a sample); the Tally."""
    machine.start()
    image = None
    if phase != "install":
        machine.step("update")
        for _ in range(1 if phase == "confirm" else boots):
            machine.step("recover")
        image = machine.image()
        machine.start(image)
    writes = machine.step({"install": "update", "confirm": "confirm", "rollback": "recover"}[phase])
    tally = Tally("%s cut on trial, %s" % (phase, type(machine).__name__), writes)
    for cut in cut_points(writes, sample, seed):
        if phase == "install":
            tally.add(cut, *_trial_install_case(machine, boots, cut))
        elif phase == "confirm":
            tally.add(cut, *_trial_confirm_case(machine, image, cut))
        else:
            tally.add(cut, *_trial_rollback_case(machine, image, cut))
    return tally
