"""The device code as boards get it: mip's package.json, the manifest.py beside it that freezes
the same files, and a firmware built with that manifest (MicroPython 1.28's unix port,
tests/support/unix_port.py) that imports uota from its frozen modules."""

import json

import pytest
from support.fixtures_runtime import DEVICE_MODULE_DIR
from support.unix_port import DEVICE_MANIFEST, manifest_inputs, run, unix_micropython_or_skip

from uota.device import uota as device

PACKAGE = json.loads((DEVICE_MODULE_DIR / "package.json").read_text())


def manifest_metadata():
    """The keywords of the manifest's metadata() call."""
    found = {}

    def ignore(*args, **kwargs):
        pass

    names = dict(metadata=lambda **kwargs: found.update(kwargs), module=ignore, package=ignore,
                 include=ignore, require=ignore, freeze=ignore)
    exec(compile(DEVICE_MANIFEST.read_text(), str(DEVICE_MANIFEST), "exec"), names)
    return found


def test_manifest_freezes_the_files_mip_installs():
    frozen = [path.relative_to(DEVICE_MODULE_DIR).as_posix() for path in manifest_inputs(DEVICE_MANIFEST)[1:]]
    # The frozen module names are the paths mip installs under /lib: the same imports work.
    assert sorted(frozen) == sorted(source for _, source in PACKAGE["urls"])
    assert all(dest == source for dest, source in PACKAGE["urls"])


def test_manifest_package_and_module_have_one_version():
    assert manifest_metadata()["version"] == PACKAGE["version"] == device.VERSION


@pytest.fixture(scope="module")
def frozen_firmware():
    return unix_micropython_or_skip("1.28.0", DEVICE_MANIFEST)  # built once per content of the device code


def test_firmware_built_with_the_manifest_imports_uota_frozen(frozen_firmware, tmp_path):
    board = tmp_path / "board"  # no uota on its filesystem: only the firmware has it
    board.mkdir()

    returncode, out, err = run(frozen_firmware, board, "import uota\nprint(uota.__file__, uota.VERSION, "
                               "uota.recover())\n", 32)

    assert returncode == 0, out + err
    top = next(dest for dest, _ in PACKAGE["urls"] if dest in ("uota.py", "uota/__init__.py"))
    assert out.split() == [top, device.VERSION, "False"]  # a frozen module's __file__: its name in the manifest
