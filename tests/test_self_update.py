"""A release that updates uota itself: the device runs its own copy from lib/uota (as `uota
init` and mip install it), and the release ships a new one that the old cannot be mixed
with (its entry module needs a name only its new core has). A power cut after any rename of
the install must leave a device whose boot.py (the snippet `uota init` writes) still imports
uota and finishes the install (or, cut before it began, installs it next), and whose next
boot runs the new release with the new code, whole. Real
MicroPython 1.20 and 1.29 (WebAssembly), a real HTTP server on 127.0.0.1."""

import shutil

import pytest
from support.fixtures_runtime import Device
from support.releases import device_cfg, read_tree, write_tree

from uota.build import build_release
from uota.init import BOOT_SNIPPET, init_project

PROJECT = {"main.py": "print('app')\n", "lib/app.py": "A = 1\n"}

# The install of the checked release, cut by a power loss after `renames` renames.
CUT_AFTER_RENAMES = """
import os, sys
sys.path.insert(0, 'lib')
import uota
from uota import _core, _install
class PowerCut(BaseException):
    pass
class CuttingOs:
    renames = 0
    def __getattr__(self, name):
        return getattr(os, name)
    def rename(self, old, new):
        CuttingOs.renames += 1
        if CuttingOs.renames > %d:
            raise PowerCut()
        os.rename(old, new)
_core.os = _install.os = CuttingOs()
try:
    print('installed', uota.install_new_firmware())
except PowerCut:
    print('cut')
"""
BOOT = "import sys\nsys.path.insert(0, 'lib')\n" + BOOT_SNIPPET + """
import uota
from uota import _core
print('booted', open('version').read().strip(), getattr(_core, 'VERSION_PROBE', 'old core'))
"""
INSTALL = "import sys\nsys.path.insert(0, 'lib')\nimport uota\nprint('installed', uota.install_new_firmware())\n"


def device_code_release(project, dist):
    """Release 1.1.0 of `project` whose device code cannot run mixed with the old one."""
    new = project.parent / "project-1.1.0"
    shutil.copytree(project, new)
    with open(new / "lib/uota/_core.py", "a") as core:
        core.write("\nVERSION_PROBE = 'new core'\n")
    with open(new / "lib/uota/__init__.py", "a") as entry:
        entry.write("\nfrom ._core import VERSION_PROBE  # only the new core has it\n")
    (new / "lib/app.py").write_text("A = 2\n")
    return build_release(new, "1.1.0", dist)


@pytest.fixture
def project(tmp_path, server):
    folder = tmp_path / "project"
    write_tree(folder, PROJECT)
    init_project(folder, server.url, version="1.0.0")
    (folder / "uota.cfg").write_text(device_cfg(server.url))
    return folder


@pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def test_a_power_cut_at_any_rename_of_a_self_update_boots_into_the_new_release(runtime, tmp_path, dist, project):
    device_code_release(project, dist)
    expected = None
    for renames in range(60):
        device = Device(runtime, tmp_path / ("device-%d" % renames), module_dirs=())
        shutil.copytree(project, device.root, dirs_exist_ok=True)
        checked = device.run("import sys\nsys.path.insert(0, 'lib')\nimport uota\nprint(uota.check_for_updates())")
        assert checked.stdout.split()[-1] == "True", checked.stdout + checked.stderr

        cut = device.run(CUT_AFTER_RENAMES % renames)
        booted = device.run(BOOT)

        assert booted.returncode == 0, "cut after %d renames: %s%s" % (renames, booted.stdout, booted.stderr)
        if booted.stdout.split()[-4:] == ["booted", "1.0.0", "old", "core"]:  # cut before the install began
            assert device.run(INSTALL).stdout.split()[-2:] == ["installed", "True"]  # as main.py does next
        booted = device.run(BOOT)  # the next boot runs the new code
        assert booted.stdout.split()[-4:] == ["booted", "1.1.0", "new", "core"], (renames, booted.stdout + booted.stderr)
        files = read_tree(device.root)
        assert not [name for name in files if name.endswith(".uota-new") or name == "uota.swap"]
        assert files["lib/app.py"] == b"A = 2\n"
        if "installed True" in cut.stdout:  # the install ran whole: every cut point is covered
            expected = files
            break
    assert expected is not None, "the install was still cut after 60 renames"
