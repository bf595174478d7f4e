"""`uota init`: the device files land in the project, boot.py and settings are not clobbered."""

from pathlib import Path

import pytest
from fixtures_servers import run_uota

from uota.__main__ import main
from uota.device import uota as device

DEVICE_MODULE = Path(__file__).resolve().parent.parent / "src" / "uota" / "device" / "uota.py"


def init(*args):
    assert main(["init", *map(str, args)]) == 0


def test_init_writes_the_device_files(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app")
    assert (tmp_path / "uota.py").read_bytes() == DEVICE_MODULE.read_bytes()
    assert (tmp_path / "version").read_text().strip() == "0.0.0"
    assert "uota.recover()" in (tmp_path / "boot.py").read_text()


def test_generated_cfg_is_what_the_device_reads(tmp_path):
    init(tmp_path, "--url", "https://updates.example/app", "--version", "1.4.0")
    cfg = device.parse_cfg((tmp_path / "uota.cfg").read_text())
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
    assert device.parse_cfg((tmp_path / "uota.cfg").read_text())["url"] == "http://other/"
    assert (tmp_path / "version").read_text().strip() == "0.0.1"


def test_mpy_installs_the_compiled_module(tmp_path):
    init(tmp_path, "--url", "http://updates.example/", "--mpy")
    assert (tmp_path / "uota.mpy").read_bytes()[:1] == b"M"
    assert not (tmp_path / "uota.py").exists()


def test_init_prints_the_mpremote_copy_command(tmp_path):
    result = run_uota("init", "--url", "http://updates.example/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  mpremote cp uota.py uota.cfg version boot.py :" in result.stdout.splitlines()


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
