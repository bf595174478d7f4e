"""Each step of an update loads the code it needs and unloads it when done, so that MicroPython
frees it (src/uota/device/uota/__init__.py): after each public call only `uota` and
`uota._core` stay, in sys.modules and among the package's attributes. MicroPython 1.20 and
1.29 (WebAssembly), against a real server on 127.0.0.1.
"""

import pytest

from uota.build import build_release

from support.releases import Device, device_cfg, write_tree

MICROPYTHONS = [pytest.param("micropython-1.20", id="mp120"), pytest.param("micropython-1.29", id="mp129")]
RESIDENT = "['uota._core'] ['_core']"  # what stays loaded between calls

# Prints, after each call, its result and the package's modules still loaded.
STEPS = """
import sys

def loaded():
    modules = sorted(name for name in sys.modules if name.startswith('uota.'))
    attributes = sorted(name for name in dir(uota) if type(getattr(uota, name)) is type(sys)
                        and getattr(uota, name).__name__.startswith('uota.'))
    return '%s %s' % (modules, attributes)

print('check', uota.check_for_updates(), loaded())
print('install', uota.install_new_firmware(), loaded())
print('status', uota.status()['version'], loaded())
print('recover', uota.recover(), loaded())
print('confirm', uota.confirm(), loaded())
"""


def device_with_release(runtime, tmp_path, dist, url, **cfg):
    src = write_tree(tmp_path / "src", {"main.py": "print('new')\n", "lib/util.py": "A = 2\n"})
    build_release(src, "1.1.0", dist)
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, {"main.py": "print('old')\n", "version": "1.0.0\n", "uota.cfg": device_cfg(url, **cfg)})
    return device


@pytest.mark.parametrize("cfg", [{}, {"trial_boots": 2}], ids=["plain", "on-trial"])
@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_every_call_leaves_only_the_core_loaded(runtime, tmp_path, dist, server, cfg):
    device = device_with_release(runtime, tmp_path, dist, server.url, **cfg)

    lines = device.run(STEPS).stdout.strip().splitlines()[-5:]

    assert lines == [
        "check True " + RESIDENT,
        "install True " + RESIDENT,
        "status 1.1.0 " + RESIDENT,
        "recover False " + RESIDENT,  # on trial it loads _trial to count the boot
        "confirm %s %s" % (bool(cfg), RESIDENT),  # on trial: the backup goes
    ]


@pytest.mark.parametrize("runtime", MICROPYTHONS)
def test_a_check_that_finds_nothing_new_leaves_only_the_core_loaded(runtime, tmp_path, dist, server):
    device = device_with_release(runtime, tmp_path, dist, server.url)
    (device.root / "version").write_text("1.1.0\n")

    lines = device.run(STEPS).stdout.strip().splitlines()[-5:]

    assert lines[0] == "check False " + RESIDENT
