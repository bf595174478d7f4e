"""Delta releases: a device on an earlier release downloads only what changed, and ends with
exactly the tree the full release gives; anything wrong with the delta, in the same check,
gives the full release instead.

`uota build --delta-from OLD` writes the deltas; the device tests update real devices
(cpython, mp120, mp129) from a real HTTP server on 127.0.0.1: first to release A by its full
archive, then to B, whose `latest` names a delta from A.
"""

import hashlib
import io
import random
import shutil
import tarfile

import pytest

from uota import __main__ as cli
from uota.build import build_release
from uota.delta import INDEX_SUFFIX
from uota.device.uota import _latest
from uota.errors import CommandError
from uota.sign import keygen, sign_release

from support.releases import Device, device_cfg, write_tree
from support.standard import CUT_INSTALL

SAME = "SAME = %r\n" % random.Random(1).randbytes(2000).hex()  # in A and B: no delta carries it
A = {
    "main.py": "import app\n",
    "lib/app.py": "VERSION = 'A'\n",
    "lib/old.py": "OLD = True\n",  # B no longer has it
    "lib/same.py": SAME,
    "wifi.json": '{"ssid": "factory"}\n',  # excluded on the device
}
B = {
    "main.py": "import app\n",
    "lib/app.py": "VERSION = 'B'\n",
    "lib/same.py": SAME,
    "lib/new/added.py": "ADDED = True\n",
    "wifi.json": '{"ssid": "factory2"}\n',
}
DEVICE = {"version": "0.9\n", "wifi.json": '{"ssid": "home"}\n', "data/log.txt": "the application's\n"}


def build(tmp_path, dist, files, version, delta_from=()):
    src = write_tree(tmp_path / ("src-" + version), files)
    return build_release(src, version, dist, delta_from=delta_from)


def members(archive):
    with tarfile.open(archive) as tar:
        return {member.name: tar.extractfile(member).read() if member.isfile() else None for member in tar}


@pytest.fixture
def releases(tmp_path, dist):
    """A (1.0) and B (1.1) built into dist, B with a delta from A; latest offers B."""
    a = build(tmp_path, tmp_path / "dist-a", A, "1.0")
    shutil.copy(a.archive_path, dist)
    b = build(tmp_path, dist, B, "1.1", delta_from=[a.archive_path])
    return a, b


def device_on(runtime, tmp_path, server, name="device"):
    """A device that installed release A from its full archive (then latest offers B)."""
    device = Device(runtime, tmp_path / name)
    write_tree(device.root, dict(DEVICE, **{"uota.cfg": device_cfg(server.url)}))
    latest = (server.dist / "latest").read_text()
    (server.dist / "latest").write_text(
        "1.0;firmware-1.0.tar.gz;0;%s\n" % hashlib.sha256((server.dist / "firmware-1.0.tar.gz").read_bytes()).hexdigest())
    assert device.update()[0] == "True True"
    (server.dist / "latest").write_text(latest)
    server.requests.clear()
    return device


@pytest.fixture
def served(server, dist):
    server.dist = dist
    return server


def full_tree(runtime, tmp_path, served):
    """The tree a device on A ends with from B's full archive: latest without the delta."""
    device = device_on(runtime, tmp_path, served, "twin")
    latest = (served.dist / "latest").read_text()
    (served.dist / "latest").write_text(latest.split(";delta=")[0] + "\n")
    assert device.update()[0] == "True True"
    (served.dist / "latest").write_text(latest)
    served.requests.clear()
    return device.files()


# ---------------------------------------------------------------- the build


def test_delta_holds_what_changed_and_the_whole_file_list(releases):
    a, b = releases
    (delta,) = b.deltas
    got = members(delta.path)
    assert list(got) == ["uota.delta", "lib/app.py", "lib/new", "lib/new/added.py", "version", "wifi.json",
                         "uota.files"]
    assert got["uota.files"] == members(b.archive_path)["uota.files"]
    base = members(a.archive_path)["uota.files"]
    assert got["uota.delta"] == b"1.0\n%s\nlib/old.py\n" % hashlib.sha256(base).hexdigest().encode()


def test_latest_names_the_index_after_the_four_fields_an_older_parser_reads(releases, dist):
    a, b = releases
    line = (dist / "latest").read_text().strip()
    assert line.split(";")[:4] == ["1.1", "firmware-1.1.tar.gz", str(b.free_kb), b.sha256]
    index = (dist / ("firmware-1.1.tar.gz" + INDEX_SUFFIX)).read_bytes()
    assert _latest.parse_latest(line)[4]["delta"] == hashlib.sha256(index).hexdigest()
    (delta,) = b.deltas
    assert index == b"1.0;firmware-1.1-from-1.0.tar.gz;%d;%s;size=%d\n" % (
        delta.free_kb, delta.sha256.encode(), delta.path.stat().st_size)


def test_delta_of_a_one_file_change_is_a_fraction_of_the_full_release(tmp_path, dist):
    # 40 files, 300 KB, that compress about as well as code does
    files = {"lib/module%02d.py" % i: "X = %r\n" % random.Random(i).randbytes(3700).hex() for i in range(40)}
    a = build(tmp_path, tmp_path / "dist-a", files, "1.0")
    b = build(tmp_path, dist, dict(files, **{"lib/module07.py": "X7 = 'changed'\n"}), "1.1",
              delta_from=[a.archive_path])
    assert b.deltas[0].size * 10 <= b.archive_path.stat().st_size


def test_no_delta_is_written_that_is_not_smaller_than_the_full_archive(tmp_path, dist):
    a = build(tmp_path, tmp_path / "dist-a", {"main.py": "A\n"}, "1.0")
    b = build(tmp_path, dist, {"main.py": "B\n"}, "1.1", delta_from=[a.archive_path])
    assert (b.deltas, b.no_delta_from) == ((), ("1.0",))
    assert sorted(path.name for path in dist.iterdir()) == ["firmware-1.1.tar.gz", "latest"]
    assert "delta=" not in (dist / "latest").read_text()


def test_uota_build_says_which_deltas_it_wrote_and_which_it_did_not(tmp_path, dist, capsys):
    a = build(tmp_path, tmp_path / "dist-a", A, "1.0")
    tiny = build(tmp_path, tmp_path / "dist-tiny", {"main.py": "TINY\n"}, "0.1")
    status = cli.main(["build", str(write_tree(tmp_path / "src-b", B)), "--version", "1.1", "--out", str(dist),
                       "--delta-from", str(a.archive_path), str(tiny.archive_path)])
    lines = capsys.readouterr().out.splitlines()
    delta = dist / "firmware-1.1-from-1.0.tar.gz"
    assert status == 0
    assert "wrote {} ({} bytes): the delta from 1.0".format(delta, delta.stat().st_size) in lines
    assert "no delta from 0.1: it would not be smaller than the archive" in lines


def test_delta_build_is_reproducible(tmp_path, releases):
    a, b = releases
    again = build(tmp_path, tmp_path / "again", B, "1.1", delta_from=[a.archive_path])
    assert again.deltas[0].path.read_bytes() == b.deltas[0].path.read_bytes()
    assert again.latest_path.read_text() == b.latest_path.read_text()


@pytest.mark.parametrize("old_files, version, error", [
    ({"main.py": "x\n"}, "1.1", "not older than 1.1"),
    ({"main.py": "x\n"}, "2.0", "not older than 1.1"),
])
def test_delta_from_a_release_not_older_is_refused(tmp_path, dist, old_files, version, error):
    old = build(tmp_path, tmp_path / "old", old_files, version)
    with pytest.raises(CommandError, match=error):
        build(tmp_path, dist, B, "1.1", delta_from=[old.archive_path])
    assert list(dist.iterdir()) == []


def test_delta_from_an_archive_without_a_file_list_is_refused(tmp_path, dist):
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        tar.add(write_tree(tmp_path / "plain", {"main.py": "x\n"}) / "main.py", arcname="main.py")
    with pytest.raises(CommandError, match="no version or uota.files"):
        build(tmp_path, dist, B, "1.1", delta_from=[plain])


@pytest.mark.parametrize("version, files_list, error", [
    (b"1.0 beta\n", b"", "invalid version"),
    (b"1.0\n", b"not a SHA256 SIZE PATH line\n", "cannot read"),
    (b"1.0\n", b"\xff\n", "cannot read"),
])
def test_delta_from_an_archive_with_a_broken_version_or_file_list_is_refused(tmp_path, dist, version, files_list,
                                                                               error):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for name, data in (("version", version), ("uota.files", files_list)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(CommandError, match=error):
        build(tmp_path, dist, B, "1.1", delta_from=[bad])
    assert list(dist.iterdir()) == []


def test_a_source_holding_uota_delta_is_refused(tmp_path, dist):
    with pytest.raises(CommandError, match="description of a delta"):
        build(tmp_path, dist, dict(B, **{"uota.delta": "1.0\n"}), "1.1")


# ---------------------------------------------------------------- the device


def test_device_on_the_old_release_downloads_only_the_delta(runtime, tmp_path, releases, served):
    device = device_on(runtime, tmp_path, served)
    result, log = device.update()
    assert result == "True True", log
    assert "new version 1.1 is available as a delta" in log
    assert "/firmware-1.1-from-1.0.tar.gz" in served.requests
    assert "/firmware-1.1.tar.gz" not in served.requests


def test_delta_ends_with_exactly_the_tree_of_the_full_release(runtime, tmp_path, releases, served):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    assert device.update()[0] == "True True"
    got = device.files()
    assert got == expected
    assert "lib/old.py" not in got and got["wifi.json"] == b'{"ssid": "home"}\n'


def test_device_whose_kept_file_was_modified_takes_the_full_release(runtime, tmp_path, releases, served):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    write_tree(device.root, {"lib/same.py": "SAME = 'edited on the device'\n"})
    result, log = device.update()
    assert result == "True True", log
    assert "'lib/same.py' differs" in log
    assert served.requests.index("/firmware-1.1-from-1.0.tar.gz") < served.requests.index("/firmware-1.1.tar.gz")
    assert device.files() == expected


def test_device_on_another_version_takes_the_full_release(runtime, tmp_path, releases, served):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(DEVICE, **{"uota.cfg": device_cfg(served.url)}))
    result, log = device.update()
    assert result == "True True", log
    assert "none from version 0.9" in log
    assert "/firmware-1.1.tar.gz" in served.requests
    assert not any("-from-" in path for path in served.requests)


@pytest.mark.parametrize("spoil", ["delta bytes", "index bytes", "index missing", "delta missing"])
def test_a_broken_delta_gives_the_full_release_in_the_same_check(runtime, tmp_path, releases, served, spoil):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    delta = releases[1].deltas[0].path
    index = served.dist / ("firmware-1.1.tar.gz" + INDEX_SUFFIX)
    if spoil == "delta bytes":
        data = bytearray(delta.read_bytes())
        data[len(data) // 2] ^= 1
        delta.write_bytes(bytes(data))
    elif spoil == "index bytes":
        index.write_text(index.read_text().replace(";size=", ";size=1"))
    else:
        (index if spoil == "index missing" else delta).unlink()
    result, log = device.update()
    assert result == "True True", log
    assert "/firmware-1.1.tar.gz" in served.requests
    assert device.files() == expected


def test_a_delta_for_another_base_of_the_same_version_gives_the_full_release(runtime, tmp_path, releases, served):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    other_a = build(tmp_path, tmp_path / "other-a", dict(A, **{"main.py": "import app  # another 1.0\n"}), "1.0")
    build(tmp_path, served.dist, B, "1.1", delta_from=[other_a.archive_path])
    result, log = device.update()
    assert result == "True True", log
    assert "delta's base is not the release this device has" in log
    assert device.files() == expected


def test_a_delta_cut_short_is_resumed_at_the_next_check(runtime, tmp_path, releases, served):
    device = device_on(runtime, tmp_path, served)
    served.quirks["/firmware-1.1-from-1.0.tar.gz"] = ("truncate", 100)
    assert device.update()[0] == "False False"
    del served.quirks["/firmware-1.1-from-1.0.tar.gz"]
    served.ranges.clear()
    result, log = device.update()
    assert result == "True True", log
    assert served.ranges == ["bytes=100-"]
    assert "/firmware-1.1.tar.gz" not in served.requests


def test_a_power_cut_in_a_delta_install_is_finished_by_recover(runtime, tmp_path, releases, served):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    assert device.call("print(uota.check_for_updates())")[0] == "True"
    result, log = device.call(CUT_INSTALL % 2)
    assert result == "cut", log
    assert device.files() != expected
    assert device.call("print(uota.recover())")[0] == "True"
    assert device.files() == expected


# ---------------------------------------------------------------- hostile deltas


def respin(served, delta, changes):
    """Rewrite the delta archive with `changes` ({member: bytes, or None to leave it out}),
    then its line in the index and latest's hash of the index, as a hostile server would."""
    old = members(delta)
    with tarfile.open(delta, "w:gz") as tar:
        for name, data in dict(old, **changes).items():
            if name in changes and changes[name] is None or name not in old and data is None:
                continue
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = delta.read_bytes()
    index = served.dist / ("firmware-1.1.tar.gz" + INDEX_SUFFIX)
    fields = index.read_text().strip().split(";")
    fields[2:] = ["0", hashlib.sha256(data).hexdigest(), "size=%d" % len(data)]
    index.write_text(";".join(fields) + "\n")
    latest = (served.dist / "latest").read_text().split(";delta=")[0]
    (served.dist / "latest").write_text("%s;delta=%s\n" % (latest, hashlib.sha256(index.read_bytes()).hexdigest()))


def description(a, deletes=("lib/old.py",), version="1.0"):
    base = hashlib.sha256(members(a.archive_path)["uota.files"]).hexdigest()
    return ("%s\n%s\n%s" % (version, base, "".join(path + "\n" for path in deletes))).encode()


@pytest.mark.parametrize("spoil", ["another version", "no base hash", "too large", "no file list"])
def test_a_delta_that_misdescribes_itself_gives_the_full_release(runtime, tmp_path, releases, served, spoil):
    expected = full_tree(runtime, tmp_path, served)
    device = device_on(runtime, tmp_path, served)
    a, b = releases
    changes = {
        "another version": {"uota.delta": description(a, version="0.9")},
        "no base hash": {"uota.delta": b"1.0\n"},
        "too large": {"uota.delta": description(a, deletes=["x%04d.py" % i for i in range(1000)])},
        "no file list": {"uota.files": None},
    }[spoil]
    respin(served, b.deltas[0].path, changes)
    result, log = device.update()
    assert result == "True True", log
    assert "delta failed" in log
    assert served.requests[-1] == "/firmware-1.1.tar.gz"
    assert device.files() == expected


def test_a_delta_deletes_only_files_the_installed_release_listed(runtime, tmp_path, releases, served):
    device = device_on(runtime, tmp_path, served)
    a, b = releases
    deletes = ["lib/old.py", "data/log.txt", "wifi.json", "uota.cfg", "version", "uota.state", "fw.tmp",
               "../lib/same.py", "LIB/SAME.PY"]
    respin(served, b.deltas[0].path, {"uota.delta": description(a, deletes)})
    before = device.files()
    result, log = device.update()
    assert result == "True True", log
    after = device.files()
    assert "lib/old.py" not in after
    for path in ("data/log.txt", "wifi.json", "uota.cfg", "lib/same.py"):
        assert after[path] == before[path]


def publish_index(served, text):
    """Serve `text` as the index of deltas, named by its hash in latest: only its content
    can make a device refuse it."""
    index = served.dist / ("firmware-1.1.tar.gz" + INDEX_SUFFIX)
    index.write_bytes(text)
    latest = (served.dist / "latest").read_text().split(";delta=")[0]
    (served.dist / "latest").write_text("%s;delta=%s\n" % (latest, hashlib.sha256(text).hexdigest()))


@pytest.mark.parametrize("index", [
    pytest.param(b"1.0;" + b"x" * 300, id="a line too long"),
    pytest.param(b"0.1;firmware-1.1-from-0.1.tar.gz;4;%s\n" % (b"0" * 64) * 500, id="over 32 KB"),
    pytest.param(b"1.0;../firmware-1.1-from-1.0.tar.gz;4;%s\n" % (b"0" * 64), id="an unsafe name"),
    pytest.param(b"1.0;firmware-1.1-from-1.0.tar.gz;4\n", id="no hash"),
    pytest.param(b"1.0;firmware-1.1-from-1.0.tar.gz;4;%s" % (b"0" * 64), id="unterminated"),
])
def test_a_hostile_index_gives_the_full_release(runtime, tmp_path, releases, served, index):
    device = device_on(runtime, tmp_path, served)
    publish_index(served, index)
    result, log = device.update()
    assert result == "True True", log
    assert "no delta (" in log
    assert served.requests[-1] == "/firmware-1.1.tar.gz"
    assert not any("-from-" in path for path in served.requests)


# ---------------------------------------------------------------- signed releases


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    return keygen(tmp_path_factory.mktemp("key") / "ota", bits=2048)


def trusting(device, served, public):
    """The device now checks latest's signature with `public` (as ota.pub)."""
    write_tree(device.root, {"ota.pub": public.read_bytes(), "uota.cfg": device_cfg(served.url, keys=["ota.pub"])})


def test_a_signed_release_s_delta_installs(runtime, tmp_path, releases, served, signing_key):
    device = device_on(runtime, tmp_path, served)
    trusting(device, served, signing_key[1])
    sign_release(served.dist, signing_key[0])
    result, log = device.update()
    assert result == "True True", log
    assert "available as a delta" in log


def test_the_signature_covers_the_index_a_delta_comes_from(runtime, tmp_path, releases, served, signing_key):
    device = device_on(runtime, tmp_path, served)
    trusting(device, served, signing_key[1])
    line = sign_release(served.dist, signing_key[0])
    index = served.dist / ("firmware-1.1.tar.gz" + INDEX_SUFFIX)
    forged = index.read_bytes().replace(b";size=", b";size=1")
    index.write_bytes(forged)
    signed_index = line.split(";delta=")[1][:64]
    (served.dist / "latest").write_text(line.replace(signed_index, hashlib.sha256(forged).hexdigest()) + "\n")
    before = device.files()
    result, log = device.update()
    assert result == "False False", log
    assert "signature" in log
    assert device.files() == before
    assert not any("-from-" in path or path.endswith(INDEX_SUFFIX) for path in served.requests)
