"""Hostile and broken releases, each with the reason a device refuses it: one table for the
device tests (test_device_refuses.py, on every runtime) and for `uota check`
(test_check.py, from `uota serve` and nginx), which must report the same reason.

Each entry is (members, reason): the members follow GOOD_MEMBERS in the archive, so that
files a device would otherwise have written come first; the device is the one of
test_device_update.make_device (its uota.cfg: device_cfg(url), tmp_filename fw.tmp,
wifi.json excluded), and `uota check` is given that uota.cfg with --cfg.
"""

import tarfile

import pytest

from support.releases import file_member, publish, tar_members

# A `latest` a device refuses before it downloads anything, and why.
BAD_LATEST = [
    pytest.param("", 'latest is not a version;filename line', id="empty"),
    pytest.param("<html><body>Not found</body></html>\n", 'latest is not a version;filename line', id="html"),
    pytest.param("firmware.tar.gz\n", 'latest needs at least version;filename', id="seed-invalid-one-field"),
    pytest.param("2.0.1;firmware.tar.gz;" + "8870f8b3bd8b54437f0a7f721cd3f3fe208e60638dcf36a9f4efe31dab58c548\n", "latest: free space must be a whole number of kB, not '8870f8b3bd8b54437f0a7f721cd3f3fe208e60638dcf36a9f4efe31dab58c548'", id="seed-invalid-hash-as-kb"),
    pytest.param("2.0.1;firmware.tar.gz;x\n", "latest: free space must be a whole number of kB, not 'x'", id="non-numeric-kb"),
    pytest.param("2.0.1;firmware.tar.gz;-4\n", "latest: free space must be a whole number of kB, not '-4'", id="negative-kb"),
    pytest.param("2.0.1;firmware.tar.gz;0;abc\n", 'latest: the hash is not 64 hex digits', id="short-hash"),
    pytest.param("2.0.1;firmware.tar.gz;0;" + "g" * 64 + "\n", 'latest: the hash is not 64 hex digits', id="non-hex-hash"),
    pytest.param("2.0.1;../firmware.tar.gz\n", "latest names an unsafe file: '../firmware.tar.gz'", id="dotdot-filename"),
    pytest.param("2.0.1;dir/firmware.tar.gz\n", "latest names an unsafe file: 'dir/firmware.tar.gz'", id="slash-filename"),
    pytest.param("2.0.1;..\n", "latest names an unsafe file: '..'", id="filename-dotdot"),
    pytest.param("2.0 1;firmware.tar.gz\n", "invalid version '2.0 1'", id="space-in-version"),
    pytest.param("2.0.1;firmware.tar.gz;" + "0" * 1100 + "\n", "latest is longer than 1024 bytes", id="longer-than-1024"),
    pytest.param("2.0.1;firmware.tar.gz\n2.0.2;other.tar.gz\n", 'latest is not a version;filename line', id="two-lines"),
]


GOOD_MEMBERS = [file_member("main.py", b"print('new')\n"), file_member("version", b"1.1.0\n")]


def publish_hostile(dist, members, version="1.1.0"):
    """GOOD_MEMBERS then members as release `version` in dist (pax headers when a member
    needs them); returns the archive."""
    pax = any(info.pax_headers for info, _ in members)
    archive = tar_members(dist / "evil.tar.gz", GOOD_MEMBERS + members, tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)
    publish(dist, version, archive)
    return archive


def _info(name, kind, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info, None


HOSTILE_MEMBERS = [
    pytest.param([file_member("/etc/passwd", b"root")], "unsafe path '/etc/passwd'", id='absolute-path'),
    pytest.param([file_member("../outside.py", b"x")], "unsafe path '../outside.py'", id='dotdot'),
    pytest.param([file_member("lib/../../outside.py", b"x")], "unsafe path 'lib/../../outside.py'", id='inner-dotdot'),
    pytest.param([_info("link.py", tarfile.SYMTYPE, linkname="/etc/passwd")], "archive member 'link.py' is not a regular file or directory", id='symlink'),
    pytest.param([_info("hard.py", tarfile.LNKTYPE, linkname="main.py")], "archive member 'hard.py' is not a regular file or directory", id='hardlink'),
    pytest.param([_info("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)], "archive member 'dev' is not a regular file or directory", id='char-device'),
    pytest.param([_info("blk", tarfile.BLKTYPE)], "archive member 'blk' is not a regular file or directory", id='block-device'),
    pytest.param([_info("fifo", tarfile.FIFOTYPE)], "archive member 'fifo' is not a regular file or directory", id='fifo'),
    pytest.param([file_member("version", b"6.6.6\n")], "the archive's version file does not say 1.1.0", id='version-disagrees'),
    pytest.param([file_member("fw.tmp", b"x")], "archive would overwrite 'fw.tmp'", id='overwrites-the-archive'),
    pytest.param([file_member("uota.state", b"x")], "archive would overwrite 'uota.state'", id='overwrites-the-state'),
    # boot.py would rename every *.uota-new in the folder it names over its target
    pytest.param([file_member("uota.swap", b"lib")], "archive would overwrite 'uota.swap'", id='plants-the-swap-marker'),
    pytest.param([file_member("main.py/inner.py", b"x")], "archive has 'main.py' as both a file and a folder", id='file-under-a-file'),
    pytest.param([file_member("new", b"x"), file_member("new/inner.py", b"x")], "archive has 'new' as both a file and a folder", id='file-then-under-it'),
    pytest.param([file_member("new/inner.py", b"x"), file_member("new", b"x")], "archive has 'new' as both a file and a folder", id='under-it-then-file'),
    pytest.param([file_member("uota.cfg", b"{'url': __import__('os')}")], 'uota.cfg: not a literal at offset 8: "__import__(\'os\')}"', id='unreadable-new-cfg'),
    pytest.param([file_member("uota.cfg", b"{'url': 'http://x/', 'tmp_filename': 'fw.tmp', 'delete': ['../etc']}")], "unsafe path '../etc'", id='delete-outside-root'),
    pytest.param([file_member("uota.cfg", b"{'url': 'http://x/', 'tmp_filename': 'fw.tmp', 'delete': ['/']}")], 'uota.cfg: delete entries must be paths below the root', id='delete-root'),
]


def cfg_member(**cfg):
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
    pytest.param([file_member("lib//util.py", b"x")], "unsafe path 'lib//util.py'", id='double-slash'),
    pytest.param([file_member("lib/./util.py", b"x")], "unsafe path 'lib/./util.py'", id='dot-component'),
    pytest.param([file_member("./lib/../wifi.json", b"x")], "unsafe path 'lib/../wifi.json'", id='dotdot-back-in'),
    pytest.param([_dir("lib/.")], "unsafe path 'lib/.'", id='dir-dot'),
    pytest.param([file_member("main.py.", b"x")], "unsafe path 'main.py.'", id='trailing-dot'),
    pytest.param([file_member("main.py ", b"x")], "unsafe path 'main.py '", id='trailing-space'),
    pytest.param([file_member("lib /util.py", b"x")], "unsafe path 'lib /util.py'", id='folder-trailing-space'),
    pytest.param([file_member(" main.py", b"x")], "unsafe path ' main.py'", id='leading-space'),
    pytest.param([file_member("WIFI~1.JSO", b"x")], "unsafe path 'WIFI~1.JSO'", id='fat-short-name'),
    pytest.param([file_member("lib/a:b.py", b"x")], "unsafe path 'lib/a:b.py'", id='fat-forbidden-character'),
    pytest.param([file_member("lib/\x01.py", b"x")], "unsafe path 'lib/\\x01.py'", id='control-character'),
    pytest.param([_pax_member("x.py", b"x", path="caf\u00e9.py")], "unsafe path 'caf", id='non-ascii'),  # 1.20 writes é as \xe9
    pytest.param([file_member("lib/" + "m" * 247 + ".py", b"x")], "unsafe path 'lib/mmmm", id='name-too-long-for-its-temporary-name'),
]

# Other spellings of the device's own files: FAT opens the same file for each.
OWN_FILE_ALIASES = [
    pytest.param([file_member("UOTA.CFG", b"{}")], "archive would overwrite 'UOTA.CFG'", id='cfg-upper'),
    pytest.param([file_member("Uota.Cfg", b"{}")], "archive would overwrite 'Uota.Cfg'", id='cfg-mixed'),
    pytest.param([file_member("VERSION", b"6.6.6\n")], "archive would overwrite 'VERSION'", id='version-upper'),
    pytest.param([file_member("UOTA.STATE", b"installing;1.1.0;0;x;../x;0\nend\n")], "archive would overwrite 'UOTA.STATE'", id='state-upper'),
    pytest.param([file_member("FW.TMP", b"x")], "archive would overwrite 'FW.TMP'", id='archive-upper'),
    pytest.param([file_member("main.py.UOTA-NEW", b"x")], "archive would overwrite 'main.py.UOTA-NEW'", id='temporary-upper'),
]

# A release uota.cfg passes the checks of the device's own: it could not stop updates.
BAD_RELEASE_CFGS = [
    pytest.param([cfg_member(excluded_files=["../x"])], "unsafe path '../x'", id='excluded-outside'),
    pytest.param([cfg_member(excluded_files=["a//b"])], "unsafe path 'a//b'", id='excluded-not-canonical'),
    pytest.param([cfg_member(tmp_filename="version")], "uota.cfg: tmp_filename may not be 'version'", id='tmp-is-version'),
    pytest.param([cfg_member(tmp_filename="UOTA.CFG")], "uota.cfg: tmp_filename may not be 'UOTA.CFG'", id='tmp-is-cfg'),
    pytest.param([cfg_member(tmp_filename="../fw.tmp")], "unsafe path '../fw.tmp'", id='tmp-outside'),
    pytest.param([cfg_member(tmp_filename="main.py.uota-new")], "uota.cfg: tmp_filename may not be 'main.py.uota-new'", id='tmp-temporary'),
    pytest.param([cfg_member(delete=["lib/."])], "unsafe path 'lib/.'", id='delete-dot'),
    pytest.param([cfg_member(delete=["lib//util.py"])], "unsafe path 'lib//util.py'", id='delete-not-canonical'),
    pytest.param([cfg_member(timeout=0)], 'uota.cfg: timeout or min_rate out of range', id='timeout-zero'),
    pytest.param([cfg_member(timeout=-5)], 'uota.cfg: timeout or min_rate out of range', id='timeout-negative'),
    pytest.param([cfg_member(timeout=10**9)], 'uota.cfg: timeout or min_rate out of range', id='timeout-huge'),
    pytest.param([cfg_member(timeout="10")], 'uota.cfg: timeout has the wrong type', id='timeout-text'),
    pytest.param([cfg_member(url="ftp://x/")], "uota.cfg: unsupported URL 'ftp://x/'", id='url-not-http'),
    pytest.param([cfg_member(url="http:///")], "uota.cfg: bad host in URL 'http:///'", id='url-no-host'),
    pytest.param([cfg_member(headers={"X-Token": "a\r\nX-Evil: 1"})], 'uota.cfg: header X-Token has a control or non-ASCII character', id='header-crlf'),
    pytest.param([cfg_member(headers={"Bad Name": "v"})], "uota.cfg: header name 'Bad Name' is not a token", id='header-name'),
]

# The delete list never reaches the device's configuration, its own files or excluded ones.
BAD_DELETES = [
    pytest.param([cfg_member(delete=["wifi.json"])], "uota.cfg: delete may not name 'wifi.json'", id='delete-excluded'),
    pytest.param([cfg_member(delete=["WIFI.JSON"])], "uota.cfg: delete may not name 'WIFI.JSON'", id='delete-excluded-alias'),
    pytest.param([cfg_member(delete=["uota.cfg"])], "uota.cfg: delete may not name 'uota.cfg'", id='delete-cfg'),
    pytest.param([cfg_member(delete=["version"])], "uota.cfg: delete may not name 'version'", id='delete-version'),
    pytest.param([cfg_member(delete=["fw.tmp"])], "uota.cfg: delete may not name 'fw.tmp'", id='delete-archive'),
    pytest.param([cfg_member(delete=["uota.state"])], "uota.cfg: delete may not name 'uota.state'", id='delete-state'),
    pytest.param([cfg_member(delete=["uota.swap"])], "uota.cfg: delete may not name 'uota.swap'", id='delete-swap-marker'),
]

MALFORMED_MEMBERS = [
    pytest.param([_pax_member("main.py", b"abc", size="-512")], 'archive has a corrupt pax header', id='negative-pax-size'),
    pytest.param([_dir("lib", 600)], "archive has directory 'lib' with data", id='folder-with-data'),
]


# Refused for what the archive holds: `uota check` reports each one.
ARCHIVE_RULES = HOSTILE_MEMBERS + NON_CANONICAL_MEMBERS + OWN_FILE_ALIASES + BAD_RELEASE_CFGS + BAD_DELETES + MALFORMED_MEMBERS

# Refused for what the device holds (its lib/ is a folder): only a device can tell.
FLASH_RULES = [
    pytest.param([file_member("lib", b"x")], "archive has file 'lib' where the device has a directory",
                 id="file-over-a-directory"),
]
