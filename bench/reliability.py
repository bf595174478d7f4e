"""Power cuts at every write of an update: how often the device ends with the old release,
the new one, or neither (bricked). Writes docs/reliability.md and prints its table.

    PYTHONPATH=tests python bench/reliability.py

Every cut point of every sweep; about ten minutes, most of it on real MicroPython. The tests
(tests/test_power_cut.py) run a seeded sample of the same sweeps.
"""

import sys
import tempfile
import time
from pathlib import Path

from support import flash
from support.power_cut import (FlashTrial, MicroPythonTrial, served_releases, sweep_flash, sweep_flash_recover,
                               sweep_micropython, sweep_trial)

ROOT = Path(__file__).resolve().parent.parent

REPORT = ROOT / "docs" / "reliability.md"
RECOVER_CUTS_PER_UPDATE_CUT = 6  # recover() cut at its first, last and 4 seeded writes
TRIAL_BOOTS = 2

METHOD = """\
# Reliability: power cuts during an update

Written by `make reliability` (`bench/reliability.py`); the tests run a seeded sample of the
same sweeps (`tests/test_power_cut.py`).

## Method

A device holds release A (`version`, `main.py`, `lib/`, `wifi.json` listed in
`excluded_files`, `uota.cfg` with the device's own `device_id`, and the `uota.files` A's
install left). A real HTTP server on 127.0.0.1 (`uota serve`) offers release B, built by
`uota build`: changed files, one unchanged, a new subdirectory, a 9 KB incompressible file
(over one 4 KB block), the excluded `wifi.json` with other content, a new `uota.cfg` (without
`device_id`, which the install keeps: the merged file is written) whose `delete` list removes
one of A's files, and not another file that A's `uota.files` lists, which the install removes.

First an uninterrupted update (`check_for_updates()` then `install_new_firmware()`)
counts its writes W. Then, for every N in 1..W: a fresh device with A, the same update with
the power cut after write N (every later write is lost while the code runs on), a reboot,
`recover()`, and a verdict on the whole tree, byte for byte, `version` included:

- **new**: exactly B (A's `wifi.json` and `device_id` kept, the deleted and the dropped file
  gone, B's `uota.files`), nothing else;
- **old**: exactly A, plus at most the legal leftovers of a download that had not finished:
  the archive `fw.tmp` (partial or whole) and `uota.state` holding a complete record in
  phase `partial` or `ready` (the next check resumes or installs them);
- **bricked**: anything else: a tree that is neither, a file missing or changed, a stray
  `*.uota-new`, a journal still `installing`, `recover()` reporting an error or raising.

"Delta update cut" is the same update by a delta: A and B also share a 6 KB file, A's
`uota.files` is that of A built by `uota build`, and B's `latest` names a delta from A
(`uota build --delta-from`), which the device takes: it leaves out the shared file and the
unchanged one, and lists the files to delete.

A case that is old or new must then finish the job: one more update without a cut has to
end at exactly B with nothing left behind, or the case counts as bricked.
"Update cut, recover cut" also cuts `recover()` itself: after each update cut N, recover is
cut at its first and last write and at 4 seeded ones in between, then the device reboots,
recovers and is judged as above.

Where the writes are:

- **littlefs, FAT** (CPython): the device module runs in-process with its `os` and `open`
  replaced by the real C filesystems on a 1 MB flash of 4 KB blocks (`tests/support/flash.py`):
  littlefs-python (littlefs v2, set up as MicroPython's `VfsLfs2`: read/prog 32 bytes,
  cache 128) and fatfs-ng (ChaN's FatFs, one FAT, 4 KB sectors). A write is one program or
  erase the littlefs driver issues, or one 4 KB sector FatFs writes. Rename onto an existing
  file is littlefs's own (atomic) and, on FAT, MicroPython's `vfs_fat.c` recipe: remove the
  target, then rename.
- **MicroPython 1.20, 1.29** (WebAssembly): the real firmware runs the device module over
  `cutfs` (`tests/support/device_fs/cutfs.py`), an in-memory filesystem mounted with `os.mount`
  that counts every call that changes it (open for writing, `write`, `rename`, `remove`,
  `mkdir`, `rmdir`) and drops all after the N-th; the tree persists across boots in the
  device folder. Each call is whole once made; renames replace atomically as on littlefs,
  or, in the "FAT-style rename" row, remove the target then rename, as on FAT.
"""

SELF_UPDATE = """\
## A release that updates uota itself

The sweeps above run the device code from outside the device's filesystem. When a release
ships new device code into the folder the running code comes from (`lib/uota/`), a cut in
the middle of the install used to leave a mix of old and new modules there, and `boot.py`'s
`import uota` then failed before `recover()` could run: a device that needed a cable. The
install now writes the new device code beside the old (`*.uota-new`), marks the group
complete (`uota.swap`, naming the folder), renames it in place in one burst and removes the
mark; the `boot.py` snippet of `uota init` finishes that burst before it imports uota.
`tests/test_self_update.py` cuts the power after each rename of such an install (every
journal, file and swap rename), on MicroPython 1.20 and 1.29, with a release whose entry
module needs a name only its new core has; every cut boots, finishes (or, cut before the
journal, installs next) and then runs the new code. With the code before this change, the
cut after the fourth rename left a device that could not import uota. A `boot.py` written
by an older `uota init` lacks the last step: rerun `uota init` on the project so that its
next release ships the new snippet.

"""

TRIAL_METHOD = """\
## Trial boots

The same releases with `'trial_boots': 2` in both `uota.cfg` files, and three more
operations cut at every write (`tests/support/power_cut.py`, `sweep_trial`):

- **install on trial**: the update, which now moves what it replaces into the backup, cut
  after write N; a boot (`recover()`, which counts it); the verdict: *old* as above, or
  *new*: exactly B plus the trial's records (`uota.trial`, `uota.bak/`). Then the trial runs
  to its end without `confirm()` (an update first if old; boots until the rollback), and the
  device must hold exactly A with `uota.state` remembering B as failed.
- **confirm**: from B on trial after one boot, `confirm()` cut after write N; a boot; the
  application's `confirm()` at that boot; three more boots: exactly B, nothing else.
- **rollback**: from B on trial with its boots spent, the `recover()` that rolls back cut
  after write N; a boot: exactly A with B remembered as failed; then an update, which must
  not install B again.

In this table *old* and *new* are where each case ended before the trial ran on; a case
whose end is wrong counts as bricked.
"""

FAT_NOTES = """\
## Found and fixed by these sweeps

- A download cut after its last byte but before its `ready` record: every later check asked
  for the bytes past the end and the server answered 416, forever (littlefs and FAT). A 416
  on a resumed download now means nothing is missing; the file's hash decides.
- On FAT, a cut between removing `uota.cfg` and renaming `uota.cfg.uota-new` over it left
  no configuration: `recover()` and every later update failed. `uota.cfg` is now taken
  from its complete `.uota-new` copy.
- Trial boots' first backup moved each replaced file into `uota.bak/` by a rename across
  folders. On FAT, a cut between FatFs's two directory writes left two names on one cluster
  chain, and the install's next removal freed the backup's content (5 of 144 cuts restored
  a corrupt file); on littlefs, a cut inside such a rename hid the journal from `recover()`
  until the folder's next write (2 of 275 cuts). The backup is copied now, and every rename
  uota makes is within one folder.

## What FAT allows

FAT has no journal and no atomic rename, so the guarantee on FAT holds under this model
only: sectors reach the flash whole and in the order FatFs writes them. Within it the
module does what can be done:

- every file is written beside its target and renamed over it; MicroPython's rename onto
  an existing file is remove-then-rename, and a cut between the two leaves no target.
  `recover()` mends each such gap: the journal re-runs the install from the archive (files
  and `version`), `uota.state` and `uota.cfg` are taken from their complete
  `.uota-new` copies (the copy is closed before the old file is removed).
- the archive stays until `version`, the commit point, is written.

What FAT cannot promise, and no updater can fix:

- a cut can leave clusters allocated to no file (FatFs writes the FAT before the directory
  entry). Nothing is lost but space, until the volume is checked or reformatted; the
  "space leaked" column counts the cases that ended with less free space than an
  uninterrupted update.
- a torn sector (power lost in the middle of a sector write), or a flash translation layer
  (ESP32's wear levelling) that reorders or half-applies writes, can corrupt a directory or
  the FAT itself; FAT has no checksums to notice it. A rename whose new and old directory
  entries lie in different sectors (directories of more than 128 entries with 4 KB
  sectors) can leave both for a moment, sharing one cluster chain.

Prefer littlefs on boards that update over the air.

## Switching a board from FAT to littlefs

Which filesystem a board has depends on the firmware that first set up its flash, not on the
firmware it runs now: ESP32 and ESP8266 firmware formats a blank flash as littlefs v2 since
MicroPython 1.13, but a board set up by older firmware (or flashed again without erasing)
keeps its FAT volume; most STM32 boards use FAT (MicroPython's "Working with filesystems"
page lists the defaults per board). On 1.23 and newer, `import vfs; print(vfs.mount())`
shows what is mounted at `/` (a `VfsFat` or a `VfsLfs2`).

Reformatting erases every file on the board, the device's own settings (`uota.cfg`,
`version`, `wifi.json`, ...) too. So first copy them to the computer with mpremote, e.g.
`mkdir backup && mpremote cp -r :lib :boot.py :main.py :uota.cfg :version backup/`
(`mpremote ls :` lists what there is). Then, at the board's REPL (`mpremote repl`), on an
ESP32, whose filesystem is the partition labelled `vfs` (builds for TinyUF2 name it `ffat`
and set it up as FAT on purpose, to show it as a USB drive):

```python
import os, esp32
bdev = esp32.Partition.find(esp32.Partition.TYPE_DATA, label='vfs')[0]
os.umount('/')
os.VfsLfs2.mkfs(bdev)              # formats: the old files are gone from here on
os.mount(os.VfsLfs2(bdev), '/')
```

On other ports `bdev` is the port's own block device (ESP8266: `from flashbdev import bdev`;
STM32 boards whose firmware includes littlefs: `pyb.Flash(start=0)`, mounted at `/flash`).
From MicroPython 1.23 the same functions and classes are in the `vfs` module (`vfs.umount`,
`vfs.VfsLfs2.mkfs`, `vfs.mount`); `os` keeps them for compatibility. The board mounts the new
volume by itself at the next boot (the filesystem type is detected). Copy the files back,
from the backup folder: `mpremote cp -r lib boot.py main.py uota.cfg version :`.

Firmware without littlefs (`os.VfsLfs2` missing: most STM32 boards) needs a build with it
enabled (`MICROPY_VFS_LFS2 = 1` in the board's `mpconfigboard.mk`, as the pyboard has); a
firmware build can also format littlefs by default, as the ESP32 and ESP8266 ports do, so that
new boards never start on FAT.
"""


HEADER = (
    "| scenario | writes in an update | cuts tried | old | new | bricked | space leaked |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def row(tally):
    leaks = "n/a" if tally.leaks is None else tally.leaks  # only block devices measure space
    return "| %s | %d | %d | %d | %d | %d | %s |" % (
        tally.scenario, tally.writes, tally.cases, tally.counts["old"], tally.counts["new"],
        tally.counts["bricked"], leaks)


def bricked_cases(tallies):
    lines = []
    for tally in tallies:
        lines.extend("- %s, %s" % (tally.scenario, line) for line in tally.report().splitlines())
    return "\n".join(lines) or "None."


def main():
    started = time.time()
    tallies = []
    print(HEADER, flush=True)
    with served_releases() as releases, tempfile.TemporaryDirectory() as scratch:
        for filesystem, name in ((flash.LittleFs, "littlefs"), (flash.Fat, "FAT")):
            tallies.append(sweep_flash(filesystem, releases, scenario="update cut, " + name))
            print(row(tallies[-1]), flush=True)
            tallies.append(sweep_flash_recover(filesystem, releases, recover_sample=RECOVER_CUTS_PER_UPDATE_CUT,
                                               scenario="update cut, recover cut, " + name))
            print(row(tallies[-1]), flush=True)
        for runtime, fat_rename, label in (
            ("micropython-1.20", False, "MicroPython 1.20"),
            ("micropython-1.29", False, "MicroPython 1.29"),
            ("micropython-1.29", True, "MicroPython 1.29, FAT-style rename"),
        ):
            folder = Path(scratch) / ("%s-%s" % (runtime, fat_rename))
            tallies.append(sweep_micropython(runtime, releases, folder, fat_rename=fat_rename,
                                             scenario="update cut, " + label))
            print(row(tallies[-1]), flush=True)
        with served_releases(delta=True) as delta_releases:
            for filesystem, name in ((flash.LittleFs, "littlefs"), (flash.Fat, "FAT")):
                tallies.append(sweep_flash(filesystem, delta_releases, scenario="delta update cut, " + name))
                print(row(tallies[-1]), flush=True)
            for runtime, label in (("micropython-1.20", "MicroPython 1.20"), ("micropython-1.29", "MicroPython 1.29")):
                tallies.append(sweep_micropython(runtime, delta_releases, Path(scratch) / ("delta-" + runtime),
                                                 scenario="delta update cut, " + label))
                print(row(tallies[-1]), flush=True)
        trial = []
        with served_releases(TRIAL_BOOTS) as trial_releases:
            machines = [(lambda fs=fs: FlashTrial(fs, trial_releases), name)
                        for fs, name in ((flash.LittleFs, "littlefs"), (flash.Fat, "FAT"))]
            machines += [(lambda r=runtime, f=fat_rename, label=label: MicroPythonTrial(
                r, trial_releases, Path(scratch) / ("trial-%s" % label.replace(" ", "-")), f), label)
                for runtime, fat_rename, label in (("micropython-1.20", False, "MicroPython 1.20"),
                                                   ("micropython-1.29", True, "MicroPython 1.29, FAT-style rename"))]
            for make, name in machines:
                for phase in ("install", "confirm", "rollback"):
                    tally = sweep_trial(make(), phase, TRIAL_BOOTS)
                    tally.scenario = "%s cut on trial, %s" % (phase, name)
                    trial.append(tally)
                    print(row(tally), flush=True)
    figures = "\n".join([HEADER] + [row(tally) for tally in tallies])
    trial_figures = "\n".join([HEADER] + [row(tally) for tally in trial])
    REPORT.write_text("%s\n## Results\n\n%s\n\nBricked cases:\n\n%s\n\n%s%s\n### Results\n\n%s\n\nBricked cases:\n\n%s\n\n%s" % (
        METHOD, figures, bricked_cases(tallies), SELF_UPDATE, TRIAL_METHOD, trial_figures, bricked_cases(trial),
        FAT_NOTES))
    tallies += trial
    print("\n%s written in %.0f s" % (REPORT.relative_to(ROOT), time.time() - started))
    return 1 if any(tally.counts["bricked"] for tally in tallies) else 0


if __name__ == "__main__":
    sys.exit(main())
