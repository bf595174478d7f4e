"""Trial boots: with 'trial_boots': N in uota.cfg, an installed release is on trial until the
application calls uota.confirm(); when N boots pass without it, recover() (boot.py's first
call) puts the last confirmed release back exactly and remembers the failed version. On
CPython and real MicroPython 1.20 and 1.29, releases served over HTTP on 127.0.0.1."""

import ast
import shutil

import pytest
from support.fixtures_runtime import Device
from support.releases import apart_from_refusal, device_cfg, read_tree, write_tree
from support.standard import NEW, make_device, release
from test_self_update import BOOT as SELF_BOOT
from test_self_update import PROJECT, device_code_release

from uota.init import init_project

TRIAL_RECORDS = ("uota.trial", "uota.bak/")
# One boot: boot.py's recover(), then main.py, whose exception ends the boot as a crash would.
BOOT = """
print('recover', uota.recover(quiet=True))
try:
    exec(open('main.py').read())
except Exception as e:
    print('crashed', e)
"""
BROKEN = dict(NEW, **{"main.py": "raise RuntimeError('a bug at import')\n"})
CONFIRMING = dict(NEW, **{"main.py": "import uota\nprint('confirmed', uota.confirm())\n"})


def trial_device(runtime, tmp_path, server, boots=2):
    return make_device(runtime, tmp_path, server.url, trial_boots=boots)


def boot(device, times=1):
    return [device.run(BOOT).stdout for _ in range(times)]


def without_trial(tree):
    return {path: data for path, data in tree.items() if not path.startswith(TRIAL_RECORDS)}


def without_state(tree):
    return {path: data for path, data in tree.items() if path != "uota.state"}


def status(device):
    return ast.literal_eval(device.call("print(uota.status())")[0])


def test_a_release_that_never_confirms_is_rolled_back_after_its_boots(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    before = device.files()
    release(dist, tmp_path, BROKEN)
    assert device.update()[0] == "True True"

    outputs = boot(device, 3)

    assert ["crashed" in out for out in outputs] == [True, True, False]
    assert "recover True" in outputs[2]
    assert without_state(device.files()) == before


def test_a_rolled_back_release_is_remembered_and_not_installed_again(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    release(dist, tmp_path, BROKEN)
    device.update()
    boot(device, 3)
    before = device.files()

    assert device.update()[0] == "False False"
    assert device.files() == before
    got = status(device)
    assert got["failed"] == "1.1.0" and got["version"] == "1.0.0" and not got["trial"]


def test_after_a_rollback_the_next_good_release_installs(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    release(dist, tmp_path, BROKEN)
    device.update()
    boot(device, 3)
    release(dist, tmp_path, dict(CONFIRMING, version="1.2.0\n"), version="1.2.0")

    assert device.update()[0] == "True True"
    assert "confirmed True" in boot(device)[0]
    assert device.files()["version"] == b"1.2.0"
    assert status(device)["failed"] is None


def test_a_release_that_confirms_stays_and_its_backup_goes(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    release(dist, tmp_path, CONFIRMING)
    device.update()
    on_trial = without_trial(device.files())

    outputs = boot(device, 4)

    assert "confirmed True" in outputs[0] and "confirmed False" in outputs[1]
    assert device.files() == on_trial
    assert not status(device)["trial"]


def test_a_confirm_before_the_release_booted_proves_nothing(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    release(dist, tmp_path, BROKEN)
    device.update()

    assert device.call("print(uota.confirm())")[0] == "False"
    assert "uota.trial" in device.files()


def test_status_counts_the_boots_left(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server, boots=3)
    release(dist, tmp_path, BROKEN)
    device.update()
    boot(device)

    got = status(device)

    assert got["trial"] and got["boots_left"] == 2 and got["version"] == "1.1.0"


def test_excluded_files_the_application_wrote_on_trial_survive_the_rollback(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server, boots=1)
    release(dist, tmp_path, BROKEN)
    device.update()
    boot(device)
    write_tree(device.root, {"wifi.json": '{"ssid": "changed on trial"}\n'})

    boot(device)

    assert device.files()["wifi.json"] == b'{"ssid": "changed on trial"}\n'
    assert device.files()["version"] == b"1.0.0\n"


def test_files_a_release_deletes_come_back_with_the_rollback(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server, boots=1)
    write_tree(device.root, {"lib/old/a.py": "A\n", "lib/old/b.py": "B\n", "listed.py": "L\n",
                             "uota.files": "%s 2 listed.py\n" % ("0" * 64)})
    before = device.files()
    cfg = "{'url': %r, 'tmp_filename': 'fw.tmp', 'excluded_files': ['wifi.json'], 'delete': ['lib/old']}" % server.url
    release(dist, tmp_path, dict(BROKEN, **{"uota.cfg": cfg, "uota.files": ""}))
    device.update()
    assert "lib/old/a.py" not in device.files() and "listed.py" not in device.files()

    boot(device, 2)

    assert without_state(device.files()) == before


def test_a_second_release_before_confirm_rolls_back_to_the_last_confirmed_one(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server, boots=1)
    before = device.files()
    release(dist, tmp_path, dict(NEW, **{"lib/added.py": "X = 1\n"}))
    device.update()
    boot(device)
    release(dist, tmp_path, dict(BROKEN, version="1.2.0\n", **{"lib/added.py": "X = 2\n", "lib/later.py": "Y\n"}),
            version="1.2.0")
    assert device.update()[0] == "True True"

    boot(device, 2)

    assert without_state(device.files()) == before
    assert status(device)["failed"] == "1.2.0"


def test_without_trial_boots_no_backup_is_kept(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, BROKEN)
    device.update()

    outputs = boot(device, 3)

    assert all("crashed" in out for out in outputs)
    assert not [path for path in device.files() if path.startswith(TRIAL_RECORDS)]
    assert device.files()["version"] == b"1.1.0"


def test_a_release_may_not_write_the_trial_records(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    for name in ("uota.trial", "UOTA.BAK/old/main.py", "uota.bak/new/x"):
        release(dist, tmp_path, dict(NEW, **{name: "hostile\n"}))
        before = apart_from_refusal(device.files())

        result, log = device.update()

        assert result == "False False" and "would overwrite" in log, name
        assert apart_from_refusal(device.files()) == before


def test_a_delete_list_may_not_name_the_backup(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    release(dist, tmp_path, CONFIRMING)
    device.update()
    boot(device)  # on trial: the backup is there
    cfg = "{'url': %r, 'tmp_filename': 'fw.tmp', 'excluded_files': [], 'delete': ['uota.bak']}" % server.url
    release(dist, tmp_path, dict(NEW, version="1.2.0\n", **{"uota.cfg": cfg}), version="1.2.0")
    before = device.files()

    result, log = device.update()

    assert result == "False False" and "delete may not name 'uota.bak'" in log
    assert apart_from_refusal(device.files()) == before


# An install that fails (not a power cut) after `files` files, here and in recover()'s retry.
FAILING_INSTALL = """
def failing(files):
    from uota import _install
    write = _install._write_member
    count = [0]
    def write_some(*args):
        count[0] += 1
        if count[0] > files:
            raise OSError(28)  # ENOSPC
        write(*args)
    _install._write_member = write_some
failing(2)
print('installed', uota.install_new_firmware(quiet=True))
failing(2)
print('recovered', uota.recover(quiet=True))
"""


def test_an_install_that_fails_twice_on_trial_is_rolled_back_at_once(runtime, tmp_path, dist, server):
    device = trial_device(runtime, tmp_path, server)
    before = device.files()
    release(dist, tmp_path, NEW)
    assert device.call("print(uota.check_for_updates())")[0] == "True"

    out = device.run(FAILING_INSTALL).stdout

    assert "installed False" in out and "recovered False" in out
    assert without_state(device.files()) == before
    assert status(device)["failed"] == "1.1.0"


@pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def test_a_release_that_changes_uota_itself_rolls_back_to_its_old_code(runtime, tmp_path, dist, server):
    project = write_tree(tmp_path / "project", PROJECT)
    init_project(project, server.url, version="1.0.0")
    (project / "uota.cfg").write_text(device_cfg(server.url, trial_boots=1))
    device_code_release(project, dist)
    device = Device(runtime, tmp_path / "device", module_dirs=())
    shutil.copytree(project, device.root, dirs_exist_ok=True)
    before = read_tree(device.root)
    update = "import sys\nsys.path.insert(0, 'lib')\nimport uota\nprint(uota.check_for_updates() and uota.install_new_firmware())"
    assert device.run(update).stdout.split()[-1] == "True"

    first, second, third = (device.run(SELF_BOOT).stdout.split("\n")[-2] for _ in range(3))

    assert first == "booted 1.1.0 new core"
    assert second.startswith("booted 1.0.0")  # rolled back at this boot, by the new code
    assert third == "booted 1.0.0 old core"
    assert without_state(read_tree(device.root)) == before
