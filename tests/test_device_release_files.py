"""A release knows its files: installing the next release removes what the previous one
shipped and this one does not, and nothing else.

`uota build` writes `uota.files` into every release; a device keeps it as the record of what
its release put there. Each test updates a real device twice from a real HTTP server on
127.0.0.1 (release A, then release B) on the runtime under test (cpython, mp120, mp129).
"""

import pytest
from support import unix_port
from support.fixtures_runtime import Device as RuntimeDevice

from uota.build import build_release
from uota.init import device_files

from support.releases import Device, device_cfg, listed_files, publish, read_tree, tar_cli, write_tree

A = {
    "main.py": "import blink\n",
    "lib/blink.py": "VERSION = 'A'\n",
    "lib/old.py": "OLD = True\n",  # B does not ship it
    "wifi.json": '{"ssid": "factory"}\n',  # excluded on the device
}
B = {
    "main.py": "import blink\n",
    "lib/blink.py": "VERSION = 'B'\n",
    "lib/new.py": "NEW = True\n",
}
DEVICE = {
    "version": "1.0.0\n",
    "wifi.json": '{"ssid": "home"}\n',
    "data/log.txt": "written by the application\n",  # in no release
}


@pytest.fixture
def device_at_1_0(runtime, tmp_path, server):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(DEVICE, **{"uota.cfg": device_cfg(server.url)}))
    return device


def built(dist, tmp_path, files, version):
    """Release `version` of files by `uota build`, now the one `latest` offers."""
    return build_release(write_tree(tmp_path / ("src-" + version), files), version, dist).archive_path


def tarred(dist, tmp_path, files, version):
    """Release `version` of files by plain `tar -czf` (no uota.files), now the one offered."""
    src = write_tree(tmp_path / ("src-" + version), dict(files, version=version))
    publish(dist, version, tar_cli(src, dist / ("firmware-%s.tar.gz" % version)))


MAKERS = {"built": built, "tarred": tarred}


def update(device):
    result, log = device.update()
    assert result == "True True", log
    return device.files()


def test_a_file_the_new_release_no_longer_ships_is_removed(device_at_1_0, dist, tmp_path):
    built(dist, tmp_path, A, "1.1.0")
    assert "lib/old.py" in update(device_at_1_0)
    built(dist, tmp_path, B, "1.2.0")

    files = update(device_at_1_0)

    assert "lib/old.py" not in files
    assert files["lib/new.py"] == b"NEW = True\n" and files["version"] == b"1.2.0"


def test_excluded_and_application_files_stay(device_at_1_0, dist, tmp_path):
    built(dist, tmp_path, A, "1.1.0")
    update(device_at_1_0)
    built(dist, tmp_path, B, "1.2.0")  # ships neither wifi.json (A did) nor data/log.txt

    files = update(device_at_1_0)

    assert "lib/old.py" not in files  # the update did remove what B dropped
    assert files["wifi.json"] == b'{"ssid": "home"}\n'
    assert files["data/log.txt"] == b"written by the application\n"


def test_the_device_keeps_the_list_of_the_release_it_installed(device_at_1_0, dist, tmp_path):
    built(dist, tmp_path, A, "1.1.0")
    update(device_at_1_0)
    archive = built(dist, tmp_path, B, "1.2.0")

    files = update(device_at_1_0)

    assert files["uota.files"] == listed_files(archive)


@pytest.mark.parametrize("make_a, make_b", [("built", "tarred"), ("tarred", "built")],
                         ids=["release-without-a-list", "device-without-a-record"])
def test_without_both_lists_nothing_is_removed(device_at_1_0, dist, tmp_path, make_a, make_b):
    MAKERS[make_a](dist, tmp_path, A, "1.1.0")
    update(device_at_1_0)
    MAKERS[make_b](dist, tmp_path, B, "1.2.0")

    files = update(device_at_1_0)

    assert files["lib/blink.py"] == b"VERSION = 'B'\n"  # B is installed, and A's lib/old.py stays
    assert files["lib/old.py"] == b"OLD = True\n"


# A record on the device names only what a release may remove; the lines below do not.
FORBIDDEN_LINES = [
    "0 0 uota.cfg", "0 0 UOTA.CFG", "0 0 version", "0 0 uota.state", "0 0 fw.tmp",  # uota's own
    "0 0 wifi.json", "0 0 WIFI.JSON",  # excluded, in any spelling
    "0 0 data", "0 0 data/",  # a folder
    "0 0 ../outside.py", "0 0 /main.py", "0 0 ./data/log.txt", "0 0 lib//b.py",  # not canonical
    "0 0 data/log.txt.uota-new",  # a file being written
]


def test_a_record_cannot_remove_uota_state_excluded_files_or_folders(device_at_1_0, dist, tmp_path):
    built(dist, tmp_path, A, "1.1.0")
    update(device_at_1_0)
    (device_at_1_0.root / "lib" / "b.py").write_text("kept\n")
    (device_at_1_0.root / "data" / "log.txt.uota-new").write_text("kept\n")
    (tmp_path / "outside.py").write_text("kept\n")
    record = device_at_1_0.root / "uota.files"
    record.write_text(record.read_text() + "\n".join(FORBIDDEN_LINES) + "\n")
    before = device_at_1_0.files()
    built(dist, tmp_path, B, "1.2.0")

    files = update(device_at_1_0)

    assert "lib/old.py" not in files  # the record's own lines still count
    for name in ("wifi.json", "data/log.txt", "lib/b.py", "data/log.txt.uota-new", "uota.cfg"):
        assert files[name] == before[name], name
    assert (tmp_path / "outside.py").read_text() == "kept\n"


# ---------------------------------------------------------------- .py -> .mpy, device code included


def with_device_code(files):
    """files plus the device code in lib/, as `uota init` puts it in a project."""
    return dict(files, **{"lib/" + name: source.read_bytes() for name, source in device_files()})


# A board's sys.path has lib/; the device code runs from the device's own copy there.
ON_BOARD = "import sys\nsys.path.insert(0, 'lib')\n"
UPDATE = ON_BOARD + "import uota\nfound = uota.check_for_updates()\nprint('RESULT', found, found and uota.install_new_firmware())\n"
RUN_APP = ON_BOARD + "import blink, uota\nprint('RESULT', blink.VERSION, blink.__file__, uota.__file__)\n"


class BoardOnWasm:
    """A device on MicroPython's WebAssembly port that runs its own copy of the device code."""

    def __init__(self, runtime, root):
        self.root = root
        self.device = RuntimeDevice(runtime, root, module_dirs=())

    def run(self, script):
        result = self.device.run(script)
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
        return lines[-1][7:] if lines else "", result.stdout + result.stderr


class BoardOnUnixPort:
    """The same on MicroPython's unix port (1.20 on WebAssembly cannot load .mpy)."""

    def __init__(self, binary, root):
        self.binary, self.root = binary, root

    def run(self, script):
        returncode, out, err = unix_port.run(self.binary, self.root, script, 256)
        lines = [line for line in out.splitlines() if line.startswith("RESULT")]
        return lines[-1][7:] if lines and returncode == 0 else "", out + err


@pytest.fixture(params=["mp129", "unix-1.20"])
def board(request, tmp_path, server):
    root = write_tree(tmp_path / "board", with_device_code(dict(DEVICE, **{"uota.cfg": device_cfg(server.url)})))
    if request.param == "mp129":
        return BoardOnWasm("micropython-1.29", root)
    return BoardOnUnixPort(unix_port.unix_micropython_or_skip("1.20.0"), root)


def test_a_release_built_with_mpy_replaces_the_py_files_of_the_previous_one(board, dist, tmp_path):
    built(dist, tmp_path, with_device_code(A), "1.1.0")
    assert board.run(UPDATE)[0] == "True True"
    build_release(write_tree(tmp_path / "src-1.2.0", with_device_code(B)), "1.2.0", dist, mpy=True)

    updated, log = board.run(UPDATE)
    app, log_app = board.run(RUN_APP)

    assert updated == "True True", log
    assert app == "B lib/blink.mpy lib/uota/__init__.mpy", log_app
    assert not list((board.root / "lib").rglob("*.py"))


def test_a_release_without_device_code_leaves_the_running_device_code(board, dist, tmp_path):
    built(dist, tmp_path, with_device_code(A), "1.1.0")
    assert board.run(UPDATE)[0] == "True True"
    built(dist, tmp_path, B, "1.2.0")  # e.g. the device code moved into the firmware

    updated, log = board.run(UPDATE)
    app, log_app = board.run(RUN_APP)

    assert updated == "True True", log
    assert "lib/old.py" not in read_tree(board.root)  # what B dropped did go
    assert app == "B lib/blink.py lib/uota/__init__.py", log_app


def test_a_delta_keeping_the_device_code_drops_a_module_the_release_no_longer_has(board, dist, tmp_path, server):
    # The delta ships no device code (it is unchanged), yet the release still has it in place:
    # what the release dropped from lib/uota/ goes, as with the full archive.
    retired = {"lib/uota/_retired.py": "RETIRED = True\n"}
    old = built(dist, tmp_path, with_device_code(dict(A, **retired)), "1.1.0")
    assert board.run(UPDATE)[0] == "True True"
    build_release(write_tree(tmp_path / "src-1.2.0", with_device_code(B)), "1.2.0", dist, delta_from=[old])

    updated, log = board.run(UPDATE)
    app, log_app = board.run(RUN_APP)

    assert updated == "True True", log
    assert "/firmware-1.2.0-from-1.1.0.tar.gz" in server.requests and "/firmware-1.2.0.tar.gz" not in server.requests
    assert "lib/uota/_retired.py" not in read_tree(board.root)
    assert app == "B lib/blink.py lib/uota/__init__.py", log_app
