"""Bad input gets a clear error and changes nothing on the device.

A wrong `latest` is refused before anything is downloaded; a broken or hostile archive is
refused by check_for_updates(), which checks it whole as soon as it is downloaded, so that
the device never plans to install it; it is deleted.
"""

import gzip
import tarfile

import pytest

from support.hostile import ARCHIVE_RULES, BAD_LATEST, FLASH_RULES, cfg_member, publish_hostile
from support.releases import (Device, apart_from_refusal, assert_update_changes_nothing, device_cfg, file_member, publish,
                              tar_members, without_download, write_tree)
from support.standard import OLD, make_device, release



@pytest.mark.parametrize("latest, reason", BAD_LATEST)
def test_bad_latest_is_refused_before_download(runtime, tmp_path, dist, server, latest, reason):
    (dist / "latest").write_text(latest)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")

    assert "uota: " + reason in log
    assert server.requests == ["/latest"]


@pytest.mark.parametrize("members, reason", ARCHIVE_RULES + FLASH_RULES)
def test_hostile_archive_changes_nothing_and_is_deleted(runtime, tmp_path, dist, server, members, reason):
    publish_hostile(dist, members)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")

    assert "uota: " + reason in log
    assert not (tmp_path / "outside.py").exists()


def test_corrupt_archive_without_hash_is_refused_before_writing(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path, with_hash=False)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    # tar -czf writes today's mtimes, so where the flipped byte lands varies: the deflate
    # stream breaks, or it decodes into a tar header whose checksum fails
    assert "uota: archive is not a valid gzip file" in log or "uota: archive has a corrupt tar header" in log


def test_not_a_gzip_file_is_refused(runtime, tmp_path, dist, server):
    (dist / "fw.tar.gz").write_bytes(b"<html>oops</html>" * 40)
    publish(dist, "1.1.0", dist / "fw.tar.gz", with_hash=False)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")

    assert "uota: archive is not a gzip file" in log or "uota: archive is not a valid gzip file" in log


def test_decompression_bomb_is_refused_before_writing(runtime, tmp_path, dist, server):
    info = tarfile.TarInfo("bomb.bin")
    info.size = 64 * 1024 * 1024  # far beyond the free space of a board
    archive = dist / "bomb.tar.gz"
    with gzip.open(archive, "wb") as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("main.py"))
        tar.addfile(info, _Zeros(info.size))
    publish(dist, "1.1.0", archive, with_hash=False)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()
    write_tree(device.root, {})

    result, log = device.call(
        "import os\n"
        "class SmallBoard:  # 512 kB of flash, half of it free\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(os, name)\n"
        "    def statvfs(self, path):\n"
        "        return (4096, 4096, 128, 64, 64, 0, 0, 0, 0, 255)\n"
        "from uota import _core, _verify\n"
        "_core.os = _verify.os = SmallBoard()\n"
        "found = uota.check_for_updates()\n"
        "print(found, found and uota.install_new_firmware())\n"
    )

    assert result == "False False", log
    assert "uota: the release needs " in log and "kB more than the 256 kB free" in log
    assert apart_from_refusal(device.files()) == before


class _Zeros:
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


@pytest.mark.parametrize(
    "cfg, reason",
    [
        pytest.param("{'tmp_filename': 'fw.tmp'}", 'uota.cfg: url must be a non-empty string', id="no-url"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': ''}", 'uota.cfg: tmp_filename must be a non-empty string', id="empty-tmp-filename"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'timeout': 'soon'}", 'uota.cfg: timeout has the wrong type', id="timeout-not-a-number"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'timeout': 0}", 'uota.cfg: timeout or min_rate out of range', id="timeout-zero"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'headers': ['x']}", 'uota.cfg: headers has the wrong type', id="headers-not-a-dict"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'excluded_files': 'wifi.json'}", 'uota.cfg: excluded_files has the wrong type', id="excluded-not-a-list"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'local': 'site'}", 'uota.cfg: local has the wrong type', id="local-not-a-list"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'excluded_files': ['../x']}", "unsafe path '../x'", id="excluded-outside-root"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'trial_boots': '2'}", 'uota.cfg: trial_boots has the wrong type', id="trial-boots-not-a-number"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'trial_boots': 101}", 'uota.cfg: trial_boots must be 0 to 100, retries 0 to 10', id="trial-boots-too-many"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'retries': -1}", 'uota.cfg: trial_boots must be 0 to 100, retries 0 to 10', id="retries-negative"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'UOTA.TRIAL'}", "uota.cfg: tmp_filename may not be 'UOTA.TRIAL'", id="tmp-filename-is-the-trial"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'uota.bak/fw'}", "uota.cfg: tmp_filename may not be 'uota.bak/fw'", id="tmp-filename-in-the-backup"),
    ],
)
def test_bad_cfg_values_are_a_clear_error(runtime, tmp_path, cfg, reason):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": cfg}))

    log = assert_update_changes_nothing(device, "False False")
    assert "uota: " + reason in log


def test_version_member_that_is_not_text_is_refused(runtime, tmp_path, dist, server):
    archive = tar_members(dist / "fw.tar.gz", [file_member("main.py", b"x"), file_member("version", b"\xff\xfe")])
    publish(dist, "1.1.0", archive)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    assert "not text" in log


# Boards have no symbolic links, but a device folder on CPython may: the update never
# writes or deletes through one.
@pytest.fixture
def linked_device(tmp_path, dist, server):
    """A CPython device whose `shared` is a link to a folder outside its root."""
    outside = write_tree(tmp_path / "outside", {"secret.txt": "keep\n"})
    device = make_device("cpython", tmp_path, server.url)
    (device.root / "shared").symlink_to(outside, target_is_directory=True)
    device.url = server.url
    return device, dist, outside


def test_member_under_a_link_on_the_device_is_refused(linked_device):
    device, dist, outside = linked_device
    good = [file_member("main.py", b"print('new')\n"), file_member("version", b"1.1.0\n")]
    publish(dist, "1.1.0", tar_members(dist / "fw.tar.gz", good + [file_member("shared/secret.txt", b"stolen")]))

    log = assert_update_changes_nothing(device, "False False")
    assert "uota: archive puts 'shared' where the device has a file or a link" in log
    assert (outside / "secret.txt").read_text() == "keep\n"


def test_delete_through_a_link_on_the_device_is_refused(linked_device):
    device, dist, outside = linked_device
    members = [file_member("version", b"1.1.0\n"), cfg_member(delete=["shared/secret.txt"])]
    publish(dist, "1.1.0", tar_members(dist / "fw.tar.gz", members))

    log = assert_update_changes_nothing(device, "False False")
    assert "uota: uota.cfg: delete may not reach through the link 'shared'" in log
    assert (outside / "secret.txt").read_text() == "keep\n"


def test_deleting_a_link_removes_the_link_not_what_it_points_to(linked_device):
    device, dist, outside = linked_device
    cfg = device_cfg(device.url, delete=["shared"])
    members = [file_member("version", b"1.1.0\n"), file_member("uota.cfg", cfg.encode())]
    publish(dist, "1.1.0", tar_members(dist / "fw.tar.gz", members))

    result, log = device.update()

    assert result == "True True", log
    assert not (device.root / "shared").is_symlink()
    assert (outside / "secret.txt").read_text() == "keep\n"


def test_running_out_of_ram_while_checking_the_archive_keeps_the_download_to_check_again(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.call(
        "def no_ram(*args):\n"
        "    raise MemoryError\n"
        "from uota import _verify\n"
        "_verify._new_folder = no_ram  # the archive's first folder fills the heap\n"
        "found = uota.check_for_updates()\n"
        "print(found, found and uota.install_new_firmware(), uota.recover())\n"
    )

    assert result == "False False False", log
    assert "not enough RAM" in log
    assert without_download(device.files()) == before
    assert device.update()[0] == "True True"
    assert server.ranges == ["bytes=%d-" % (dist / "firmware-1.1.0.tar.gz").stat().st_size]  # not downloaded again
