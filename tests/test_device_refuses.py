"""Bad input gets a clear error and changes nothing on the device.

A wrong `latest` is refused before anything is downloaded; a broken or hostile archive is
refused by check_for_updates(), which checks it whole as soon as it is downloaded, so that
the device never plans to install it; it is deleted.
"""

import gzip
import tarfile

import pytest

from releases import assert_update_changes_nothing, Device, device_cfg, file_member, publish, tar_members, write_tree
from test_device_update import OLD, make_device, release

BAD_LATEST = [
    pytest.param("", id="empty"),
    pytest.param("<html><body>Not found</body></html>\n", id="html"),
    pytest.param("firmware.tar.gz\n", id="seed-invalid-one-field"),
    pytest.param("2.0.1;firmware.tar.gz;" + "8870f8b3bd8b54437f0a7f721cd3f3fe208e60638dcf36a9f4efe31dab58c548\n", id="seed-invalid-hash-as-kb"),
    pytest.param("2.0.1;firmware.tar.gz;x\n", id="non-numeric-kb"),
    pytest.param("2.0.1;firmware.tar.gz;-4\n", id="negative-kb"),
    pytest.param("2.0.1;firmware.tar.gz;0;abc\n", id="short-hash"),
    pytest.param("2.0.1;firmware.tar.gz;0;" + "g" * 64 + "\n", id="non-hex-hash"),
    pytest.param("2.0.1;../firmware.tar.gz\n", id="dotdot-filename"),
    pytest.param("2.0.1;dir/firmware.tar.gz\n", id="slash-filename"),
    pytest.param("2.0.1;..\n", id="filename-dotdot"),
    pytest.param("2.0 1;firmware.tar.gz\n", id="space-in-version"),
    pytest.param("2.0.1;firmware.tar.gz;" + "0" * 600 + "\n", id="longer-than-512"),
    pytest.param("2.0.1;firmware.tar.gz\n2.0.2;other.tar.gz\n", id="two-lines"),
]


@pytest.mark.parametrize("latest", BAD_LATEST)
def test_bad_latest_is_refused_before_download(runtime, tmp_path, release_server, latest):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "latest").write_text(latest)
    server = release_server(dist)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "False False"
    assert "latest" in log or "version" in log
    assert server.requests == ["/latest"]
    assert device.files() == before


def _info(name, kind, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info, None


HOSTILE_MEMBERS = [
    pytest.param([file_member("/etc/passwd", b"root")], id="absolute-path"),
    pytest.param([file_member("../outside.py", b"x")], id="dotdot"),
    pytest.param([file_member("lib/../../outside.py", b"x")], id="inner-dotdot"),
    pytest.param([_info("link.py", tarfile.SYMTYPE, linkname="/etc/passwd")], id="symlink"),
    pytest.param([_info("hard.py", tarfile.LNKTYPE, linkname="main.py")], id="hardlink"),
    pytest.param([_info("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)], id="char-device"),
    pytest.param([_info("blk", tarfile.BLKTYPE)], id="block-device"),
    pytest.param([_info("fifo", tarfile.FIFOTYPE)], id="fifo"),
    pytest.param([file_member("version", b"6.6.6\n")], id="version-disagrees"),
    pytest.param([file_member("fw.tmp", b"x")], id="overwrites-the-archive"),
    pytest.param([file_member("uota.state", b"x")], id="overwrites-the-state"),
    pytest.param([file_member("main.py/inner.py", b"x")], id="file-under-a-file"),
    pytest.param([file_member("lib", b"x")], id="file-over-a-directory"),
    pytest.param([file_member("new", b"x"), file_member("new/inner.py", b"x")], id="file-then-under-it"),
    pytest.param([file_member("new/inner.py", b"x"), file_member("new", b"x")], id="under-it-then-file"),
    pytest.param([file_member("uota.cfg", b"{'url': __import__('os')}")], id="unreadable-new-cfg"),
    pytest.param([file_member("uota.cfg", b"{'url': 'http://x/', 'tmp_filename': 'fw.tmp', 'delete': ['../etc']}")], id="delete-outside-root"),
    pytest.param([file_member("uota.cfg", b"{'url': 'http://x/', 'tmp_filename': 'fw.tmp', 'delete': ['/']}")], id="delete-root"),
]


def _cfg_member(**cfg):
    return file_member("uota.cfg", repr(dict({"url": "http://x/", "tmp_filename": "fw.tmp"}, **cfg)).encode())


def _dir(name, size=0):
    info, _ = _info(name, tarfile.DIRTYPE, size=size)
    return info, bytes(size)


def _pax_member(name, data, **records):
    info, data = file_member(name, data)
    info.pax_headers = records
    return info, data


# Paths that are not in the one canonical form: other spellings of a path, names FAT
# reads as another name, names that cannot be written. Each refuses the whole archive.
NON_CANONICAL_MEMBERS = [
    pytest.param([file_member("lib//util.py", b"x")], id="double-slash"),
    pytest.param([file_member("lib/./util.py", b"x")], id="dot-component"),
    pytest.param([file_member("./lib/../wifi.json", b"x")], id="dotdot-back-in"),
    pytest.param([_dir("lib/.")], id="dir-dot"),
    pytest.param([file_member("main.py.", b"x")], id="trailing-dot"),
    pytest.param([file_member("main.py ", b"x")], id="trailing-space"),
    pytest.param([file_member("lib /util.py", b"x")], id="folder-trailing-space"),
    pytest.param([file_member(" main.py", b"x")], id="leading-space"),
    pytest.param([file_member("WIFI~1.JSO", b"x")], id="fat-short-name"),
    pytest.param([file_member("lib/a:b.py", b"x")], id="fat-forbidden-character"),
    pytest.param([file_member("lib/\x01.py", b"x")], id="control-character"),
    pytest.param([_pax_member("x.py", b"x", path="caf\u00e9.py")], id="non-ascii"),
    pytest.param([file_member("lib/" + "m" * 247 + ".py", b"x")], id="name-too-long-for-its-temporary-name"),
]

# Other spellings of the device's own files: FAT opens the same file for each.
OWN_FILE_ALIASES = [
    pytest.param([file_member("UOTA.CFG", b"{}")], id="cfg-upper"),
    pytest.param([file_member("Uota.Cfg", b"{}")], id="cfg-mixed"),
    pytest.param([file_member("VERSION", b"6.6.6\n")], id="version-upper"),
    pytest.param([file_member("UOTA.STATE", b"installing;1.1.0;0;x;../x;0\nend\n")], id="state-upper"),
    pytest.param([file_member("FW.TMP", b"x")], id="archive-upper"),
    pytest.param([file_member("main.py.UOTA-NEW", b"x")], id="temporary-upper"),
]

# A release uota.cfg passes the checks of the device's own: it could not stop updates.
BAD_RELEASE_CFGS = [
    pytest.param([_cfg_member(excluded_files=["../x"])], id="excluded-outside"),
    pytest.param([_cfg_member(excluded_files=["a//b"])], id="excluded-not-canonical"),
    pytest.param([_cfg_member(tmp_filename="version")], id="tmp-is-version"),
    pytest.param([_cfg_member(tmp_filename="UOTA.CFG")], id="tmp-is-cfg"),
    pytest.param([_cfg_member(tmp_filename="../fw.tmp")], id="tmp-outside"),
    pytest.param([_cfg_member(tmp_filename="main.py.uota-new")], id="tmp-temporary"),
    pytest.param([_cfg_member(delete=["lib/."])], id="delete-dot"),
    pytest.param([_cfg_member(delete=["lib//util.py"])], id="delete-not-canonical"),
    pytest.param([_cfg_member(timeout=0)], id="timeout-zero"),
    pytest.param([_cfg_member(timeout=-5)], id="timeout-negative"),
    pytest.param([_cfg_member(timeout=10**9)], id="timeout-huge"),
    pytest.param([_cfg_member(timeout="10")], id="timeout-text"),
    pytest.param([_cfg_member(url="ftp://x/")], id="url-not-http"),
    pytest.param([_cfg_member(url="http:///")], id="url-no-host"),
    pytest.param([_cfg_member(headers={"X-Token": "a\r\nX-Evil: 1"})], id="header-crlf"),
    pytest.param([_cfg_member(headers={"Bad Name": "v"})], id="header-name"),
]

# The delete list never reaches the device's configuration, its own files or excluded ones.
BAD_DELETES = [
    pytest.param([_cfg_member(delete=["wifi.json"])], id="delete-excluded"),
    pytest.param([_cfg_member(delete=["WIFI.JSON"])], id="delete-excluded-alias"),
    pytest.param([_cfg_member(delete=["uota.cfg"])], id="delete-cfg"),
    pytest.param([_cfg_member(delete=["version"])], id="delete-version"),
    pytest.param([_cfg_member(delete=["fw.tmp"])], id="delete-archive"),
    pytest.param([_cfg_member(delete=["uota.state"])], id="delete-state"),
]

MALFORMED_MEMBERS = [
    pytest.param([_pax_member("main.py", b"abc", size="-512")], id="negative-pax-size"),
    pytest.param([_dir("lib", 600)], id="folder-with-data"),
]


@pytest.mark.parametrize("members", HOSTILE_MEMBERS + NON_CANONICAL_MEMBERS + OWN_FILE_ALIASES + BAD_RELEASE_CFGS + BAD_DELETES + MALFORMED_MEMBERS)
def test_hostile_archive_changes_nothing_and_is_deleted(runtime, tmp_path, release_server, members):
    dist = tmp_path / "dist"
    dist.mkdir()
    # The hostile member comes last, after files that would otherwise have been written.
    good = [file_member("main.py", b"print('new')\n"), file_member("version", b"1.1.0\n")]
    pax = any(info.pax_headers for info, _ in members)
    archive = tar_members(dist / "evil.tar.gz", good + members, tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)
    publish(dist, "1.1.0", archive)
    server = release_server(dist)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "False False", log
    assert device.files() == before
    assert not (tmp_path / "outside.py").exists()


def test_corrupt_archive_without_hash_is_refused_before_writing(runtime, tmp_path, release_server):
    dist = tmp_path / "dist"
    dist.mkdir()
    archive = release(dist, tmp_path, with_hash=False)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    server = release_server(dist)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    assert "archive" in log


def test_not_a_gzip_file_is_refused(runtime, tmp_path, release_server):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "fw.tar.gz").write_bytes(b"<html>oops</html>" * 40)
    publish(dist, "1.1.0", dist / "fw.tar.gz", with_hash=False)
    server = release_server(dist)
    device = make_device(runtime, tmp_path, server.url)

    assert_update_changes_nothing(device, "False False")


def test_decompression_bomb_is_refused_before_writing(runtime, tmp_path, release_server):
    dist = tmp_path / "dist"
    dist.mkdir()
    info = tarfile.TarInfo("bomb.bin")
    info.size = 64 * 1024 * 1024  # far beyond the free space of a board
    archive = dist / "bomb.tar.gz"
    with gzip.open(archive, "wb") as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("main.py"))
        tar.addfile(info, _Zeros(info.size))
    publish(dist, "1.1.0", archive, with_hash=False)
    server = release_server(dist)
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
    assert "kB" in log
    assert device.files() == before


class _Zeros:
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param("{'tmp_filename': 'fw.tmp'}", id="no-url"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': ''}", id="empty-tmp-filename"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'timeout': 'soon'}", id="timeout-not-a-number"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'timeout': 0}", id="timeout-zero"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'headers': ['x']}", id="headers-not-a-dict"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'excluded_files': 'wifi.json'}", id="excluded-not-a-list"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'local': 'site'}", id="local-not-a-list"),
        pytest.param("{'url': 'http://127.0.0.1:9/', 'tmp_filename': 'f', 'excluded_files': ['../x']}", id="excluded-outside-root"),
    ],
)
def test_bad_cfg_values_are_a_clear_error(runtime, tmp_path, cfg):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": cfg}))

    log = assert_update_changes_nothing(device, "False False")
    assert "uota.cfg" in log or "unsafe path" in log


def test_version_member_that_is_not_text_is_refused(runtime, tmp_path, release_server):
    dist = tmp_path / "dist"
    dist.mkdir()
    archive = tar_members(dist / "fw.tar.gz", [file_member("main.py", b"x"), file_member("version", b"\xff\xfe")])
    publish(dist, "1.1.0", archive)
    device = make_device(runtime, tmp_path, release_server(dist).url)

    log = assert_update_changes_nothing(device, "False False")
    assert "not text" in log


# Boards have no symbolic links, but a device folder on CPython may: the update never
# writes or deletes through one.
@pytest.fixture
def linked_device(tmp_path, release_server):
    """A CPython device whose `shared` is a link to a folder outside its root."""
    dist = tmp_path / "dist"
    dist.mkdir()
    outside = write_tree(tmp_path / "outside", {"secret.txt": "keep\n"})
    url = release_server(dist).url
    device = make_device("cpython", tmp_path, url)
    (device.root / "shared").symlink_to(outside, target_is_directory=True)
    device.url = url
    return device, dist, outside


def test_member_under_a_link_on_the_device_is_refused(linked_device):
    device, dist, outside = linked_device
    good = [file_member("main.py", b"print('new')\n"), file_member("version", b"1.1.0\n")]
    publish(dist, "1.1.0", tar_members(dist / "fw.tar.gz", good + [file_member("shared/secret.txt", b"stolen")]))

    log = assert_update_changes_nothing(device, "False False")
    assert "link" in log
    assert (outside / "secret.txt").read_text() == "keep\n"


def test_delete_through_a_link_on_the_device_is_refused(linked_device):
    device, dist, outside = linked_device
    members = [file_member("version", b"1.1.0\n"), _cfg_member(delete=["shared/secret.txt"])]
    publish(dist, "1.1.0", tar_members(dist / "fw.tar.gz", members))

    log = assert_update_changes_nothing(device, "False False")
    assert "link" in log
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


def test_running_out_of_ram_while_checking_the_archive_ends_cleanly(runtime, tmp_path, release_server):
    dist = tmp_path / "dist"
    dist.mkdir()
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, release_server(dist).url)
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
    assert device.files() == before
