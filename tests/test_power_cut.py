"""A power cut at any moment of an update leaves the device with a whole release.

Sampled sweeps (power_cut.py): a fixed seed picks the cut points, always with the first and
the last write, so a run is reproducible. `make reliability` runs every cut point.
"""

import contextlib

import pytest

from support import flash
from support.power_cut import (NEW_VERSION, OLD_VERSION, FlashDevice, FlashTrial, MicroPythonTrial, judge, served_releases, sweep_flash,
                               sweep_flash_recover, sweep_micropython, sweep_trial)

LITTLEFS_CUTS = 60
FAT_CUTS = None  # every one (under a hundred): the gaps FAT leaves are two writes wide
UPDATE_CUTS_BEFORE_RECOVER_CUTS = 16  # about half fall in the install, where recover() writes
RECOVER_CUTS = 3
MICROPYTHON_CUTS = 10  # three boots of real MicroPython each


@pytest.fixture(scope="module")
def releases():
    with served_releases() as releases:
        yield releases


def assert_never_bricked(tally):
    assert tally.counts["bricked"] == 0, "%s: %d of %d cuts bricked the device:\n%s" % (
        tally.scenario, tally.counts["bricked"], tally.cases, tally.report())
    assert tally.counts["old"] and tally.counts["new"], "the sweep missed one side of the commit point"


# ---------------------------------------------------------------- the flash and its filesystems


def test_writes_after_the_cut_never_reach_the_flash():
    chip = flash.Flash()
    chip.cut_power_after(1)
    chip.write(0, b"kept")
    chip.write(4096, b"lost")
    assert chip.read(0, 4) == b"kept" and chip.read(4096, 4) == b"\xff" * 4
    assert chip.writes == 2


def two_files(filesystem):
    """A chip holding `target` ("old") and `source` ("new")."""
    chip = flash.Flash()
    fs = filesystem.format(chip)
    for name, text in (("target", "old"), ("source", "new")):
        with fs.open(name, "w") as f:
            f.write(text)
    return chip


def rename_with_cut(filesystem, chip, cut):
    """Rename source over target with the power cut after `cut` writes; the rebooted fs."""
    trial = flash.Flash(chip.image)
    fs = filesystem(trial)
    trial.cut_power_after(cut)
    with contextlib.suppress(OSError):  # the board is off: the driver may fail as it likes
        fs.rename("source", "target")
    writes = trial.writes
    trial.reboot()
    return filesystem(trial), writes


@pytest.mark.parametrize("filesystem", [flash.LittleFs, flash.Fat], ids=["littlefs", "fat"])
def test_a_reboot_sees_only_what_reached_the_flash(filesystem):
    chip = flash.Flash()
    fs = filesystem.format(chip)
    chip.cut_power_after(0)
    with contextlib.suppress(OSError):
        with fs.open("lost.txt", "w") as f:
            f.write("never written")
    chip.reboot()
    assert filesystem(chip).listdir() == []


def test_littlefs_rename_replaces_the_target_in_one_step():
    chip = two_files(flash.LittleFs)
    _, writes = rename_with_cut(flash.LittleFs, chip, None)
    for cut in range(writes + 1):
        fs, _ = rename_with_cut(flash.LittleFs, chip, cut)
        with fs.open("target") as f:
            state = sorted(fs.listdir()), f.read()
        assert state in ((["source", "target"], "old"), (["target"], "new")), "cut %d: %r" % (cut, state)


def test_fat_rename_onto_a_file_removes_it_first_as_micropython_does():
    fs, _ = rename_with_cut(flash.Fat, two_files(flash.Fat), 1)  # the removal gets through
    assert fs.listdir() == ["source"]


# ---------------------------------------------------------------- judging a device


def test_a_device_missing_a_file_of_the_new_release_is_bricked(releases):
    tree = dict(releases.new_tree)
    del tree["main.py"]
    assert judge(tree, releases) == ("bricked", "missing main.py")


def test_a_stray_temporary_file_is_bricked(releases):
    tree = dict(releases.new_tree, **{"main.py.uota-new": b"half"})
    assert judge(tree, releases)[0] == "bricked"


def test_an_unfinished_download_beside_the_old_release_is_legal(releases):
    state = "partial;%s;0;%s;fw.tmp;0\nwifi.json\nend\n" % (NEW_VERSION, "0" * 64)
    tree = dict(releases.old_tree, **{"fw.tmp": b"\x1f\x8b", "uota.state": state.encode()})
    assert judge(tree, releases) == ("old", "")


def test_an_install_journal_beside_the_old_release_is_bricked(releases):
    state = "installing;%s;9;%s;fw.tmp;0\nend\n" % (NEW_VERSION, "0" * 64)
    tree = dict(releases.old_tree, **{"uota.state": state.encode()})
    assert judge(tree, releases)[0] == "bricked"


def test_recover_reporting_an_error_is_bricked(releases):
    assert judge(releases.old_tree, releases, ["cannot read uota.cfg"])[0] == "bricked"


def test_the_releases_differ_in_version_and_files(releases):
    assert releases.old_tree["version"] == OLD_VERSION.encode()
    assert releases.new_tree["version"] == NEW_VERSION.encode()
    assert releases.old_tree["wifi.json"] == releases.new_tree["wifi.json"]


# ---------------------------------------------------------------- the sweeps


@pytest.mark.parametrize("filesystem, cuts", [(flash.LittleFs, LITTLEFS_CUTS), (flash.Fat, FAT_CUTS)], ids=["littlefs", "fat"])
def test_power_cut_at_any_flash_write_leaves_old_or_new_release(releases, filesystem, cuts):
    assert_never_bricked(sweep_flash(filesystem, releases, cuts))


@pytest.mark.parametrize("filesystem", [flash.LittleFs, flash.Fat], ids=["littlefs", "fat"])
def test_power_cut_during_recovery_still_leaves_old_or_new_release(releases, filesystem):
    tally = sweep_flash_recover(filesystem, releases, UPDATE_CUTS_BEFORE_RECOVER_CUTS, RECOVER_CUTS)
    assert tally.counts["bricked"] == 0, tally.report()
    assert tally.cases >= UPDATE_CUTS_BEFORE_RECOVER_CUTS // 2, "too few cuts fell in recover()"


@pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def test_power_cut_at_any_write_leaves_old_or_new_release_on_micropython(releases, runtime, tmp_path):
    assert_never_bricked(sweep_micropython(runtime, releases, tmp_path, MICROPYTHON_CUTS))


def test_power_cut_between_fat_remove_and_rename_is_repaired_on_micropython(releases, tmp_path):
    tally = sweep_micropython("micropython-1.29", releases, tmp_path, MICROPYTHON_CUTS, fat_rename=True)
    assert_never_bricked(tally)


# ---------------------------------------------------------------- delta releases


@pytest.fixture(scope="module")
def delta_releases():
    with served_releases(delta=True) as releases:
        yield releases


def test_the_device_of_the_delta_sweeps_takes_the_delta(delta_releases):
    device = FlashDevice(flash.LittleFs, delta_releases)
    said = []
    flash.set_in_package(device.module, "_log", lambda level, message: said.append(message))
    device.boot(flash.Flash(device.image_of_old))
    assert device.module.check_for_updates() and device.module.install_new_firmware()
    assert "new version %s is available as a delta" % NEW_VERSION in said
    assert device.tree() == delta_releases.new_tree


@pytest.mark.parametrize("filesystem, cuts", [(flash.LittleFs, LITTLEFS_CUTS), (flash.Fat, FAT_CUTS)], ids=["littlefs", "fat"])
def test_power_cut_in_a_delta_update_leaves_old_or_new_release(delta_releases, filesystem, cuts):
    assert_never_bricked(sweep_flash(filesystem, delta_releases, cuts, scenario="delta update cut"))


@pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def test_power_cut_in_a_delta_update_leaves_old_or_new_release_on_micropython(delta_releases, runtime, tmp_path):
    assert_never_bricked(sweep_micropython(runtime, delta_releases, tmp_path, MICROPYTHON_CUTS))


# ---------------------------------------------------------------- trial boots

TRIAL_BOOTS = 2
TRIAL_FLASH_CUTS = None  # every one: about 40 s for the six sweeps, and a sample missed a rare cut
TRIAL_MICROPYTHON_CUTS = 4  # each case is five to eight boots of real MicroPython


@pytest.fixture(scope="module")
def trial_releases():
    with served_releases(TRIAL_BOOTS) as releases:
        yield releases


def assert_trial_never_bricked(tally, sides):
    assert tally.counts["bricked"] == 0, "%s: %d of %d cuts bricked the device:\n%s" % (
        tally.scenario, tally.counts["bricked"], tally.cases, tally.report())
    assert all(tally.counts[side] for side in sides), "the sweep missed a side: %r" % tally.counts


@pytest.mark.parametrize("phase, sides", [("install", ("old", "new")), ("confirm", ("new",)), ("rollback", ("old",))])
@pytest.mark.parametrize("filesystem", [flash.LittleFs, flash.Fat], ids=["littlefs", "fat"])
def test_power_cut_on_trial_ends_at_the_old_or_the_new_release(trial_releases, filesystem, phase, sides):
    tally = sweep_trial(FlashTrial(filesystem, trial_releases), phase, TRIAL_BOOTS, TRIAL_FLASH_CUTS)
    assert_trial_never_bricked(tally, sides)


@pytest.mark.parametrize("phase, sides", [("install", ("old", "new")), ("confirm", ("new",)), ("rollback", ("old",))])
@pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def test_power_cut_on_trial_ends_at_the_old_or_the_new_release_on_micropython(trial_releases, runtime, tmp_path, phase, sides):
    machine = MicroPythonTrial(runtime, trial_releases, tmp_path, fat_rename=runtime == "micropython-1.29")
    tally = sweep_trial(machine, phase, TRIAL_BOOTS, TRIAL_MICROPYTHON_CUTS)
    assert_trial_never_bricked(tally, sides)
