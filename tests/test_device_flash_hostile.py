"""Hostile archives and failing flash, on the real filesystem drivers and on real MicroPython.

The device module runs on CPython over a 1 MB flash chip formatted with littlefs or FAT
(`flash.py`: littlefs-python and fatfs-ng, the C code boards run), or on MicroPython 1.20
and 1.29 (WebAssembly) over `device_fs/cutfs.py`; the releases come from a real HTTP server
on 127.0.0.1, as real archives (`uota build`, or tarfile for hand-made members).

- FAT ignores case, drops trailing dots and spaces, and answers to 8.3 short names
  (`WIFI~1.JSO` for `wifi.json`): a member spelled so names a file the device protects.
  The device skips it when it aliases an excluded file, and refuses the whole archive
  when it aliases one of its own files or uses a FAT-only spelling.
- A name that fits 255 bytes but not with `.uota-new`, and folders made implicitly that
  do not fit the free space, are refused by the validating pass, before any write.
- An install that fails anyway (the flash reports an I/O error) converges: the next
  recover() tries it once more; failing again, the release is remembered as failed, the
  archive deleted, recover() then quiet, that release not fetched again, and the next one
  installs whole, with no `*.uota-new` left.
"""

import errno
import json
import random

import pytest

from uota.build import build_release

from support import flash
from support.power_cut import FlashDevice, MicroPythonDevice, format_flash, tree_of
from support.releases import apart_from_refusal, built_list, device_cfg, file_member, publish, tar_members, write_tree

FILESYSTEMS = [pytest.param(flash.LittleFs, id="littlefs"), pytest.param(flash.Fat, id="fat")]
MICROPYTHONS = [pytest.param("micropython-1.20", id="mp120"), pytest.param("micropython-1.29", id="mp129")]

ARCHIVE, STATE, TMP = "fw.tmp", "uota.state", ".uota-new"
EXCLUDED = ["wifi.json", "certs/", "certificates/"]
EXCLUDED_RECORD = "wifi.json\ncerts\ncertificates\n"  # as the device writes them in uota.state
OLD = {
    "boot.py": "import uota\nuota.recover()\n",
    "main.py": "print('1.0.0')\n",
    "lib/util.py": "A = 1\n",
    "lib/retired.py": "GONE = True\n",  # 1.1.0's and 1.2.0's uota.cfg delete it
    "wifi.json": '{"ssid": "home", "psk": "mine"}\n',
    "certs/key.pem": "-----BEGIN PRIVATE KEY-----\nmine\n",
    "certificates/ca.pem": "-----BEGIN CERTIFICATE-----\nmine\n",
    "version": "1.0.0",
}
EVIL = b'{"ssid": "evil"}\n'


# ---------------------------------------------------------------- a device on a flash chip


class Board:
    """The device module on CPython over a freshly formatted chip (flash.LittleFs or
    flash.Fat) holding `files` and a uota.cfg for `url` (power_cut.FlashDevice)."""

    def __init__(self, filesystem, files, url, **cfg):
        cfg.setdefault("excluded_files", EXCLUDED)
        tree = tree_of(dict(files, **{"uota.cfg": device_cfg(url, **cfg)}))
        self.device = FlashDevice(filesystem, None, tree)
        self.chip = flash.Flash(self.device.image_of_old)
        self.failing = self.fault = None
        self.reboot()

    @property
    def fs(self):
        return self.device.fs

    def reboot(self):
        """Mount the chip afresh (a reset): what the code did before is what reached it."""
        self.device.boot(self.chip)
        if self.failing:
            self.fault = FailingFs(self.fs, *self.failing)
            flash.install(self.device.module, self.fault)

    def fail(self, op, target, sha, half=False):
        """From now on, in this boot and every later one, the flash fails as FailingFs says
        whenever the archive of hash sha is being installed."""
        self.failing = (op, target, sha, half)
        self.reboot()

    def _run(self, call):
        self.device.errors = []
        result = call(self.device.module)
        return result, self.device.errors

    def check(self):
        """check_for_updates(): (its result, the errors it logged)."""
        return self._run(lambda uota: uota.check_for_updates(quiet=True))

    def install(self):
        return self._run(lambda uota: uota.install_new_firmware(quiet=True))

    def recover(self):
        return self._run(lambda uota: uota.recover(quiet=True))

    def update(self):
        """check_for_updates() then, when it said yes, install_new_firmware():
        ((found, installed), the errors both logged)."""
        found, errors = self.check()
        done, more = self.install() if found else (False, [])
        return (found, done), errors + more

    def tree(self):
        return self.device.tree()


class FailingFs:
    """A mounted filesystem that fails as a flash reporting an I/O error: while the archive
    of hash `sha` is being installed (uota.state: ready or installing it), each `op` on
    `target` raises OSError(EIO) and changes nothing. Every other call goes through, and so
    does the device's writing down that the install failed (a `retry` or `failed` record).

    So the failure belongs to that release and recurs whenever its install is tried, as a
    name the filesystem refuses would; another release never meets it.
    op: "rename" (onto target), "open" (target, for writing) or "mkdir". half: a rename
    fails after removing its target, as FAT's rename (remove, then rename) can.
    """

    def __init__(self, fs, op, target, sha, half=False):
        self.fs, self.op, self.target, self.sha, self.half = fs, op, target, sha, half
        self.fired = 0

    def __getattr__(self, name):
        return getattr(self.fs, name)

    def _record(self, path):
        """The fields of the state record in path (bytes), or []."""
        try:
            with self.fs.open(path, "rb") as f:
                return f.read().split(b";")
        except OSError:
            return []

    def _fails(self, op, path, source=None):
        if op != self.op or path != self.target:
            return False
        record = self._record(STATE)
        if len(record) < 4 or record[0] not in (b"ready", b"installing", b"retry") or record[3] != self.sha.encode():
            return False
        # uota's record of the failure goes through; the retry's own journal does not
        written = self._record(source)[:1] if source else None
        if written == [b"failed"] or written == [b"retry"] and record[0] != b"retry":
            return False
        self.fired += 1
        return True

    def rename(self, old, new):
        # half: FAT's rename fails after removing its target; renaming onto nothing works
        gone = self.half and new not in self.fs.listdir(new.rpartition("/")[0] or ".")
        if not gone and self._fails("rename", new, old):
            if self.half:
                self.fs.remove(new)
            raise OSError(errno.EIO)
        self.fs.rename(old, new)

    def open(self, path, mode="r"):
        if "r" not in mode and self._fails("open", path):
            raise OSError(errno.EIO)
        return self.fs.open(path, mode)

    def mkdir(self, path):
        if self._fails("mkdir", path):
            raise OSError(errno.EIO)
        self.fs.mkdir(path)


# ---------------------------------------------------------------- releases


def hostile_release(site, version, *members):
    """A tarfile archive of version's `version` file, a changed main.py, then members
    ((name, bytes)), published in the site's latest with its hash."""
    archive = tar_members(site.dist / ("firmware-%s.tar.gz" % version), [
        file_member("version", version.encode()),
        file_member("main.py", b"print(%r)\n" % version),
        *(file_member(name, data) for name, data in members),
    ])
    publish(site.dist, version, archive)
    return archive


def release_files(version, url):
    """A release's source: folders, a file over a block, an excluded file, a uota.cfg."""
    return {
        "assets/blob.bin": random.Random(version).randbytes(9000),
        "lib/deep/more.py": "B = %r\n" % version,
        "lib/util.py": "A = %r\n" % version,
        "main.py": "print(%r)\n" % version,
        "uota.cfg": device_cfg(url, excluded_files=EXCLUDED, delete=["lib/retired.py"]),
        "wifi.json": '{"ssid": "factory"}\n',  # excluded on the device
    }


def build(site, version):
    """`uota build` of release_files(version) into the site: latest now offers it."""
    source = write_tree(site.dist.parent / ("src-" + version), release_files(version, site.url))
    return build_release(source, version, site.dist)


def installed(version, url, before=OLD):
    """The tree a device holding `before` has once `version` is installed whole."""
    release = release_files(version, url)
    files = dict(before)
    files.update((name, data) for name, data in release.items() if name != "wifi.json")
    del files["lib/retired.py"]
    return tree_of(dict(files, version=version, **{"uota.files": built_list(release, version)}))


def with_main(tree, version):
    """tree after a release that only changes main.py (hostile_release without its members)."""
    return dict(tree, **{"main.py": b"print(%r)\n" % version, "version": version.encode()})


class Site:
    """A release folder (`dist`) served over HTTP on 127.0.0.1 (`url`); `requests` lists
    the paths asked for."""

    def __init__(self, dist, server):
        self.dist, self.server, self.url = dist, server, server.url

    @property
    def requests(self):
        return self.server.requests


@pytest.fixture
def site(dist, server):
    return Site(dist, server)


# ---------------------------------------------------------------- 1. FAT's aliases


ALIASES = [  # (a device file, another spelling of it)
    pytest.param("wifi.json", "WIFI.JSON", id="upper-case"),
    pytest.param("wifi.json", "Wifi.Json", id="mixed-case"),
    pytest.param("wifi.json", "WIFI~1.JSO", id="short-name"),
    pytest.param("wifi.json", "wifi.json.", id="trailing-dot"),
    pytest.param("wifi.json", "wifi.json ", id="trailing-space"),
    pytest.param("certs/key.pem", "CERTS/key.pem", id="folder-upper-case"),
    pytest.param("certs/key.pem", "certs./key.pem", id="folder-trailing-dot"),
    pytest.param("certificates/ca.pem", "CERTIF~1/ca.pem", id="folder-short-name"),
    pytest.param("uota.cfg", "UOTA.CFG", id="cfg-upper-case"),
    pytest.param("version", "Version", id="version-capitalised"),
    pytest.param("uota.state", "UOTA.STATE", id="state-upper-case"),
    pytest.param("fw.tmp", "FW.TMP", id="archive-upper-case"),
]


def fat_with_device_files():
    return format_flash(flash.Fat, tree_of(dict(OLD, **{"uota.cfg": "{}", "uota.state": "", "fw.tmp": ""})))[1]


def read(fs, path):
    """path's bytes, or None when there is no such file."""
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


@pytest.mark.parametrize("name, alias", ALIASES)
def test_fat_writes_the_device_file_when_a_path_names_it_by_an_alias(name, alias):
    fs = fat_with_device_files()
    folder = name.rpartition("/")[0] or "."
    listing = fs.listdir(folder)

    with fs.open(alias, "wb") as f:
        f.write(EVIL)

    assert read(fs, name) == EVIL
    assert fs.listdir(folder) == listing  # no new entry: the same file


@pytest.mark.parametrize("name, alias", ALIASES)
def test_fat_replaces_the_device_file_when_a_file_is_renamed_onto_its_alias(name, alias):
    fs = fat_with_device_files()  # the old device's write: beside the target, renamed over
    with fs.open(alias + TMP, "wb") as f:
        f.write(EVIL)

    fs.rename(alias + TMP, alias)

    assert read(fs, alias) == EVIL
    assert read(fs, name) in (EVIL, None)  # WIFI~1.JSO: wifi.json is gone, WIFI~1.JSO in its place


def test_littlefs_keeps_a_case_variant_a_file_of_its_own():
    _, fs = format_flash(flash.LittleFs, tree_of(OLD))

    with fs.open("WIFI.JSON", "wb") as f:
        f.write(EVIL)

    with fs.open("wifi.json", "rb") as f:
        assert f.read() == OLD["wifi.json"].encode()
    assert "WIFI.JSON" in fs.listdir(".")


SKIPPED_ALIASES = [  # a case variant of an excluded path: skipped like the path itself
    pytest.param("WIFI.JSON", id="excluded-file-upper-case"),
    pytest.param("Wifi.Json", id="excluded-file-mixed-case"),
    pytest.param("CERTS/key.pem", id="excluded-folder-upper-case"),
    pytest.param("Certs/Key.Pem", id="excluded-folder-mixed-case"),
]


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("member", SKIPPED_ALIASES)
def test_a_member_spelling_an_excluded_path_in_other_case_is_skipped_like_it(site, filesystem, member):
    board = Board(filesystem, OLD, site.url)
    before = board.tree()
    hostile_release(site, "1.1.0", (member, EVIL))

    assert board.update() == ((True, True), [])

    assert board.tree() == with_main(before, "1.1.0")  # wifi.json and certs/ keep their bytes


REFUSED_ALIASES = [  # one of the device's own files in other case, or a FAT-only spelling
    pytest.param("UOTA.CFG", device_cfg("http://evil.example/", excluded_files=[]).encode(), id="cfg-upper-case"),
    pytest.param("Uota.Cfg", device_cfg("http://evil.example/", excluded_files=[]).encode(), id="cfg-mixed-case"),
    pytest.param("Version", b"1.1.0", id="version-capitalised"),
    pytest.param("UOTA.STATE", b"failed;1.1.0;0;%s;fw.tmp;0\nend\n" % (b"0" * 64), id="state-upper-case"),
    pytest.param("FW.TMP", b"not the archive", id="archive-upper-case"),
    pytest.param("main.py.UOTA-NEW", b"print('stray')\n", id="temporary-name-upper-case"),
    pytest.param("WIFI~1.JSO", EVIL, id="excluded-file-short-name"),
    pytest.param("CERTIF~1/ca.pem", EVIL, id="excluded-folder-short-name"),
    pytest.param("wifi.json.", EVIL, id="excluded-file-trailing-dot"),
    pytest.param("wifi.json ", EVIL, id="excluded-file-trailing-space"),
    pytest.param("certs./key.pem", EVIL, id="excluded-folder-trailing-dot"),
]


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("member, data", REFUSED_ALIASES)
def test_an_archive_aliasing_a_device_file_is_refused_and_changes_nothing(site, filesystem, member, data):
    board = Board(filesystem, OLD, site.url)
    before = board.tree()
    hostile_release(site, "1.1.0", (member, data))

    (found, installed), errors = board.update()

    assert (found, installed) == (False, False)  # refused by the check, never planned
    assert len(errors) == 1 and ("would overwrite" in errors[0] or "unsafe path" in errors[0]), errors
    assert apart_from_refusal(board.tree()) == before  # byte for byte; the archive is gone too


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_a_record_naming_a_file_by_an_alias_never_removes_it(site, filesystem):
    # uota.files as a previous release left it, with other spellings of files the device must keep:
    # the new release's own files, an excluded file, uota's own; and one file that really went.
    aliases = ["MAIN.PY", "Lib/Util.py", "LIB/DEEP/MORE.PY", "lib/util.py.", "MAIN~1.PY"]
    aliases += [alias.values[1] for alias in ALIASES]
    record = "".join("0 0 %s\n" % path for path in aliases + ["lib/dropped.py"])
    board = Board(filesystem, dict(OLD, **{"uota.files": record, "lib/dropped.py": "X = 0\n"}), site.url)
    build(site, "1.1.0")

    assert board.update() == ((True, True), [])

    expected = installed("1.1.0", site.url, before=OLD)
    assert board.tree() == expected  # every file kept but lib/dropped.py, which is gone


# ---------------------------------------------------------------- 2. names too long for their temporary


LONG_NAMES = [  # fit 255 bytes, but not with ".uota-new" (259)
    pytest.param("n" * 246 + ".txt", id="250-chars-at-root"),
    pytest.param("lib/" + "n" * 247 + ".py", id="250-char-name-in-a-folder"),
]


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_the_filesystem_refuses_a_255_char_name_plus_the_temporary_suffix(filesystem):
    _, fs = format_flash(filesystem, {})
    with fs.open("n" * 246 + ".txt", "wb"):
        pass
    with pytest.raises(OSError):
        fs.open("n" * 246 + ".txt" + TMP, "wb")


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("name", LONG_NAMES)
def test_a_name_too_long_for_its_temporary_name_is_refused_before_anything_is_written(site, filesystem, name):
    board = Board(filesystem, OLD, site.url)
    before = board.tree()
    hostile_release(site, "1.1.0", (name, b"x = 1\n"))

    (found, installed), errors = board.update()

    assert (found, installed) == (False, False)  # refused by the check, never planned
    assert len(errors) == 1 and "unsafe path" in errors[0], errors
    assert apart_from_refusal(board.tree()) == before


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("name", LONG_NAMES)
def test_after_a_too_long_name_recover_is_quiet_and_a_fixed_release_installs(site, filesystem, name):
    board = Board(filesystem, OLD, site.url)
    hostile_release(site, "1.1.0", (name, b"x = 1\n"))
    board.update()
    board.reboot()

    assert board.recover() == (False, [])
    build(site, "1.2.0")
    assert board.update() == ((True, True), [])
    assert board.tree() == installed("1.2.0", site.url)


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_a_member_name_of_246_chars_installs(site, filesystem):
    board = Board(filesystem, OLD, site.url)
    before = board.tree()
    name = "n" * 242 + ".txt"  # with ".uota-new": 255
    hostile_release(site, "1.1.0", (name, b"x = 1\n"))

    assert board.update() == ((True, True), [])
    assert board.tree() == dict(with_main(before, "1.1.0"), **{name: b"x = 1\n"})


# ---------------------------------------------------------------- 3. implicit folders and free space

FOLDERS = 150  # each costs 2 blocks of 4 KB: 300, over the ~245 the 1 MB chip has free


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_folders_made_implicitly_that_exceed_the_free_space_are_refused_before_the_first_write(site, filesystem):
    board = Board(filesystem, OLD, site.url)
    before = board.tree()
    archive = hostile_release(site, "1.1.0", *(("d%03d/x.py" % i, b"x = %d\n" % i) for i in range(FOLDERS)))  # no folder entries
    bsize, _, _, free_blocks = board.fs.statvfs(".")[:4]
    free_blocks -= -(-archive.stat().st_size // bsize)  # once the archive is down
    assert FOLDERS < free_blocks < 2 * FOLDERS  # the files alone fit; their folders do not

    found, errors = board.check()

    assert not found
    assert len(errors) == 1 and "kB" in errors[0], errors
    assert apart_from_refusal(board.tree()) == before


# ---------------------------------------------------------------- 4. converging after a failed install

FAILURES = [  # (operation, its target): each such call of 1.1.0's install raises OSError(EIO)
    pytest.param("rename", "uota.state", id="journal-rename"),  # rename 1 of the install
    pytest.param("mkdir", "assets", id="first-folder-mkdir"),
    pytest.param("open", "assets/blob.bin" + TMP, id="first-file-open"),
    pytest.param("rename", "assets/blob.bin", id="first-file-rename"),  # rename 2
    pytest.param("rename", "lib/util.py", id="middle-file-rename"),  # rename 4
    pytest.param("open", "main.py" + TMP, id="last-file-open"),
    pytest.param("open", "uota.cfg" + TMP, id="uota-cfg-open"),
    pytest.param("rename", "uota.cfg", id="uota-cfg-rename"),  # rename 6
    pytest.param("open", "version" + TMP, id="version-open"),
    pytest.param("rename", "version", id="version-rename"),  # rename 7, the commit
]


def fail_install(site, filesystem, op, target, half=False):
    """A device offered 1.1.0 whose install meets a failing flash: (the board, the
    release, what install_new_firmware returned, the errors it logged)."""
    board = Board(filesystem, OLD, site.url)
    release = build(site, "1.1.0")
    assert board.check() == (True, [])
    board.fail(op, target, release.sha256, half)
    done, errors = board.install()
    assert board.fault.fired, "the install never made that call"
    return board, release, done, errors


def state_record(phase, release, need=0, delete=""):
    return "%s;1.1.0;%d;%s;%s;%d\n%s%send\n" % (
        phase, release.archive_path.stat().st_size, release.sha256, ARCHIVE, need, EXCLUDED_RECORD, delete)


def retry_record(release, tree):
    """The retry record the install left: the ready record with its phase changed, with
    the flash its install needs as the check found it and the release's delete list."""
    need = int(tree[STATE].split(b"\n")[0].split(b";")[5])
    return state_record("retry", release, need, ":lib/retired.py\n")


def failed_record(release):
    return state_record("failed", release)


def fail_twice(site, filesystem, op, target, half=False):
    """fail_install(), then the one retry of the next boot's recover() fails too."""
    board, release, _, _ = fail_install(site, filesystem, op, target, half)
    board.reboot()
    assert board.recover() == (False, ["uota: %s" % OSError(errno.EIO)])
    return board, release


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("op, target", FAILURES)
def test_an_install_failing_on_flash_returns_false_and_is_retried_once_by_recover(site, filesystem, op, target):
    board, release, done, errors = fail_install(site, filesystem, op, target)

    assert (done, errors) == (False, ["uota: %s" % OSError(errno.EIO)])
    tree = board.tree()
    assert tree.get(STATE, b"").decode() == retry_record(release, tree)
    assert ARCHIVE in tree


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("op, target", FAILURES)
def test_an_install_failing_twice_remembers_the_release_as_failed(site, filesystem, op, target):
    board, release = fail_twice(site, filesystem, op, target)

    tree = board.tree()
    assert tree.get(STATE, b"").decode() == failed_record(release)
    assert ARCHIVE not in tree


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_an_install_failing_once_is_finished_by_the_retry(site, filesystem):
    board, release, _, _ = fail_install(site, filesystem, "rename", "lib/util.py")
    board.failing = None  # the flash works again
    board.reboot()

    assert board.recover() == (True, [])
    assert board.tree() == installed("1.1.0", site.url)


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("op, target", FAILURES)
def test_after_a_failed_install_recover_is_quiet_and_the_same_release_is_not_fetched_again(site, filesystem, op, target):
    board, _ = fail_twice(site, filesystem, op, target)
    board.reboot()
    assert board.recover() == (False, [])
    site.requests.clear()

    found, errors = board.check()

    assert not found
    assert len(errors) == 1 and "failed to install" in errors[0], errors
    assert site.requests == ["/latest"]


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("op, target", FAILURES)
def test_after_a_failed_install_the_next_release_installs_whole(site, filesystem, op, target):
    board, _ = fail_twice(site, filesystem, op, target)
    board.reboot()
    board.check()
    build(site, "1.2.0")

    assert board.update() == ((True, True), [])
    assert board.tree() == installed("1.2.0", site.url)  # no uota.state, fw.tmp or *.uota-new


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_a_failed_install_of_a_release_with_another_hash_is_downloaded_again(site, filesystem):
    board, _ = fail_twice(site, filesystem, "rename", "lib/util.py")
    board.reboot()
    fixed = dict(release_files("1.1.0", site.url), **{"main.py": "fixed\n"})
    build_release(write_tree(site.dist.parent / "src-1.1.0-fixed", fixed), "1.1.0", site.dist)

    assert board.update() == ((True, True), [])
    assert board.tree() == dict(installed("1.1.0", site.url),
                                **{"main.py": b"fixed\n", "uota.files": built_list(fixed, "1.1.0")})


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_after_a_failed_install_no_temporary_file_outlives_a_next_release_without_that_path(site, filesystem):
    board, _ = fail_twice(site, filesystem, "rename", "assets/blob.bin")
    files = release_files("1.2.0", site.url)
    del files["assets/blob.bin"]
    build_release(write_tree(site.dist.parent / "src-1.2.0", files), "1.2.0", site.dist)

    assert board.update() == ((True, True), [])
    assert [path for path in board.tree() if path.endswith(TMP)] == []


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
def test_a_failed_commit_leaves_the_new_files_under_the_old_version_until_the_next_release(site, filesystem):
    board, release = fail_twice(site, filesystem, "rename", "version")

    expected = dict(installed("1.1.0", site.url), version=b"1.0.0")
    expected.update({"version" + TMP: b"1.1.0", STATE: failed_record(release).encode()})
    assert board.tree() == expected


HALF_RENAMES = [  # FAT's rename removes the target, then fails to rename onto it
    pytest.param("main.py", id="file"),
    pytest.param("uota.cfg", id="uota-cfg"),  # _read_cfg() finishes the rename
    pytest.param("version", id="version"),  # _read_version() finishes the rename
]


@pytest.mark.parametrize("target", HALF_RENAMES)
def test_a_fat_rename_failing_after_removing_its_target_still_converges_to_the_next_release(site, target):
    board, release, done, errors = fail_install(site, flash.Fat, "rename", target, half=True)
    assert (done, errors) == (False, ["uota: %s" % OSError(errno.EIO)])
    board.reboot()
    board.recover()
    build(site, "1.2.0")

    assert board.update() == ((True, True), [])
    assert board.tree() == installed("1.2.0", site.url)


def test_a_fat_rename_failing_after_removing_its_target_is_finished_at_once(site):
    board, release, _, _ = fail_install(site, flash.Fat, "rename", "main.py", half=True)

    tree = board.tree()
    assert "main.py" + TMP not in tree and tree["main.py"] == release_files("1.1.0", site.url)["main.py"].encode()


# ---------------------------------------------------------------- 5. the same on real MicroPython

MP_FAILURES = [  # the write that raises OSError(5), as cutfs traces it; FAT's rename or not
    pytest.param("rename uota.state.uota-new>uota.state", False, id="journal-rename"),
    pytest.param("rename assets/blob.bin.uota-new>assets/blob.bin", False, id="first-file-rename"),
    pytest.param("write main.py.uota-new", False, id="file-data-write"),
    pytest.param("rename uota.cfg.uota-new>uota.cfg", False, id="uota-cfg-rename"),
    # FAT: the target is removed, then the rename fails
    pytest.param("rename main.py.uota-new>main.py", True, id="fat-file-rename-after-remove"),
]
# The commit failing: the retry's writes are fewer (the delete list is done), so the same
# write number is another write, which works; or FAT's half-done rename is finished.
MP_COMMIT_FAILURES = [
    pytest.param("rename version.uota-new>version", False, id="version-rename"),
    pytest.param("rename version.uota-new>version", True, id="fat-version-rename-after-remove"),
]
UPDATE_CALL = "(lambda found: [found, found and uota.install_new_firmware(quiet=True)])(uota.check_for_updates(quiet=True))"


class MicroPythonBoard:
    """The device module on real MicroPython over cutfs (power_cut.MicroPythonDevice),
    starting with `files` and a uota.cfg for `url`."""

    def __init__(self, runtime, folder, files, url, fat_rename=False):
        self.device = MicroPythonDevice(runtime, None, folder, fat_rename)
        self.device.start_with(tree_of(dict(files, **{"uota.cfg": device_cfg(url, excluded_files=EXCLUDED)})))

    def boot(self, call, fail_at=None):
        """One boot running `call` (an expression); (its value, the error lines, the tree
        left, the writes it made as cutfs traces them)."""
        boot = self.device.boot('import json; print("RESULT", json.dumps([%s, fs.trace]))' % call, fail_at=fail_at)
        lines = [line for line in boot.output.splitlines() if line.startswith("RESULT ")]
        assert lines, boot.output
        value, trace = json.loads(lines[-1][len("RESULT "):])
        return value, boot.errors, boot.tree, trace

    def image(self):
        return self.device.image.read_text()

    def power_on_with(self, image):
        self.device.image.write_text(image)


def fail_install_on_micropython(site, runtime, tmp_path, write, fat_rename=False):
    """A MicroPython device offered 1.1.0 whose install failed (False, one EIO error) on a
    flash failing at `write` (its first in the install's trace, the fail_at-th write of
    the boot): (board, release, fail_at)."""
    board = MicroPythonBoard(runtime, tmp_path / "device", OLD, site.url, fat_rename)
    release = build(site, "1.1.0")
    assert board.boot("uota.check_for_updates(quiet=True)")[:2] == (True, [])
    downloaded = board.image()
    _, _, _, trace = board.boot("uota.install_new_firmware(quiet=True)")  # to find the write
    board.power_on_with(downloaded)
    fail_at = trace.index(write) + 1
    done, errors, _, _ = board.boot("uota.install_new_firmware(quiet=True)", fail_at=fail_at)
    assert (done, len(errors)) == (False, 1) and "EIO" in errors[0], errors
    return board, release, fail_at


@pytest.mark.parametrize("runtime", MICROPYTHONS)
@pytest.mark.parametrize("write, fat_rename", MP_FAILURES)
def test_on_micropython_a_failed_install_converges_to_the_next_release(site, runtime, tmp_path, write, fat_rename):
    board, release, fail_at = fail_install_on_micropython(site, runtime, tmp_path, write, fat_rename)

    # Until 1.2.0, the same write fails in every boot: the retry of 1.1.0 by recover()
    # makes the same writes in the same order.
    retried, errors, tree, _ = board.boot("uota.recover(quiet=True)", fail_at=fail_at)
    assert (retried, len(errors)) == (False, 1) and "EIO" in errors[0], errors
    assert tree[STATE].decode() == failed_record(release) and ARCHIVE not in tree
    quiet, errors, _, _ = board.boot("uota.recover(quiet=True)", fail_at=fail_at)
    assert (quiet, errors) == (False, [])

    site.requests.clear()
    found, errors, _, _ = board.boot("uota.check_for_updates(quiet=True)", fail_at=fail_at)
    assert not found and len(errors) == 1 and "failed to install" in errors[0], errors
    assert site.requests == ["/latest"]

    build(site, "1.2.0")
    result, errors, tree, _ = board.boot(UPDATE_CALL)
    assert (result, errors) == ([True, True], [])
    assert tree == installed("1.2.0", site.url)


@pytest.mark.parametrize("runtime", MICROPYTHONS)
@pytest.mark.parametrize("write, fat_rename", MP_COMMIT_FAILURES)
def test_on_micropython_a_failed_commit_is_finished_by_the_retry(site, runtime, tmp_path, write, fat_rename):
    board, _, fail_at = fail_install_on_micropython(site, runtime, tmp_path, write, fat_rename)

    retried, errors, tree, _ = board.boot("uota.recover(quiet=True)", fail_at=fail_at)

    assert (retried, errors) == (True, [])
    assert tree == installed("1.1.0", site.url)
