"""Signed releases: a device whose uota.cfg lists keys installs only a release whose `latest`
carries a good, unexpired signature by one of them, and refuses anything else before it
downloads the archive, with nothing changed. Each test runs a real device (cpython, mp120,
mp129) against a real HTTP server on 127.0.0.1; releases are made by `uota build` and
signed by `uota sign`'s code.
"""

import base64
import hashlib
import shutil
import time

import pytest
from support.releases import Device, assert_update_changes_nothing, device_cfg, read_tree, write_tree
from support.standard import NEW, OLD

from uota.__main__ import main
from uota.build import build_release
from uota.check import check_release
from uota.sign import keygen, sign_release

DAY = 86400


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Two signing keys, A and B: {name: (private key path, public key path)}."""
    folder = tmp_path_factory.mktemp("keys")
    return {name: keygen(folder / name, bits=2048) for name in ("a", "b")}


def trusting(runtime, tmp_path, url, keys, *names, **cfg):
    """A device on 1.0.0 that trusts the keys `names`, as `<name>.pub` in its root."""
    device = Device(runtime, tmp_path / "device")
    pubs = {name + ".pub": keys[name][1].read_bytes() for name in names}
    write_tree(device.root, dict(OLD, **pubs))
    write_tree(device.root, {"uota.cfg": device_cfg(url, keys=sorted(pubs), **cfg)})
    return device


def signed(dist, tmp_path, keys, name, version="1.1.0", files=NEW, **options):
    """Release `version` built into dist and signed by key `name`; returns the latest line."""
    src = write_tree(tmp_path / ("src-" + version), {path: data for path, data in files.items() if path != "version"})
    build_release(src, version, dist)
    return sign_release(dist, keys[name][0], **options)


def republish(dist, line):
    (dist / "latest").write_text(line + "\n")


def installed(device):
    result, log = device.update()
    assert result == "True True", log
    return read_tree(device.root)


def test_a_release_signed_by_a_trusted_key_installs(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a")

    files = installed(device)

    assert files["version"] == b"1.1.0" and files["main.py"] == NEW["main.py"].encode()


def test_any_trusted_key_may_sign(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a", "b")
    signed(dist, tmp_path, keys, "b")

    assert installed(device)["version"] == b"1.1.0"


def _flip_signature_byte(line):
    keyid, _, encoded = line.rpartition(";sig=")[2].partition(":")
    raw = bytearray(base64.b64decode(encoded))
    raw[len(raw) // 2] ^= 1
    return line[: line.rfind(";sig=")] + ";sig=%s:%s" % (keyid, base64.b64encode(bytes(raw)).decode())


def _unsigned(line):
    return line[: line.find(";size=")]


def _with_field(line, old, new):
    assert old in line
    return line.replace(old, new, 1)


# (how the signed latest line is changed, the reason a device gives): every one refused before
# the archive is requested. `line` is `uota sign`'s line for 1.1.0 by key a.
TAMPERED = [
    pytest.param(_unsigned, "latest is not signed", id="unsigned"),
    pytest.param(lambda line: _unsigned(line) + ";size=1", "latest is not signed", id="size-without-signature"),
    pytest.param(_flip_signature_byte, "latest: bad signature by key", id="bad-signature"),
    pytest.param(lambda line: line.replace("1.1.0;", "1.2.0;", 1), "latest: bad signature", id="other-version"),
    pytest.param(lambda line: line.replace("firmware-1.1.0", "firmware-1.1.1", 1), "latest: bad signature",
                 id="other-archive-name"),
    pytest.param(lambda line: _with_field(line, ";size=", ";size=1"), "latest: bad signature", id="other-size"),
    pytest.param(lambda line: _with_field(line, ";size=", ";expires=9999999999;size="), "latest: bad signature",
                 id="expiry-added"),
    pytest.param(lambda line: line[: line.rfind(";sig=") + 5] + "0" * 16 + line[line.rfind(":"):],
                 "which this device does not trust", id="unknown-key-id"),
    pytest.param(lambda line: line[: line.rfind(":") + 1] + "!!!!", "latest: bad signature", id="signature-not-base64"),
    pytest.param(lambda line: line[: line.rfind(":") + 1], "latest: bad signature", id="empty-signature"),
    pytest.param(lambda line: line + ";size=1", "the signature must be the last field", id="field-after-signature"),
    pytest.param(lambda line: line[: line.rfind(";sig=")] + ";sig=", "latest is not signed", id="empty-sig-field"),
]


@pytest.mark.parametrize("tamper, reason", TAMPERED)
def test_a_tampered_latest_is_refused_before_the_download(runtime, tmp_path, dist, server, keys, tamper, reason):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    republish(dist, tamper(signed(dist, tmp_path, keys, "a")))

    log = assert_update_changes_nothing(device, "False False")

    assert reason in log
    assert server.requests == ["/latest"]


def test_a_release_signed_by_an_untrusted_key_is_refused(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    line = signed(dist, tmp_path, keys, "b")

    log = assert_update_changes_nothing(device, "False False")

    assert "signed by key %s, which this device does not trust" % line.rpartition(";sig=")[2][:16] in log
    assert server.requests == ["/latest"]


def test_a_signature_moved_onto_another_release_is_refused(runtime, tmp_path, dist, server, keys):
    # mix and match: 1.1.0's signature with 1.2.0's fields
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    old = signed(dist, tmp_path, keys, "a", "1.1.0")
    new = signed(dist, tmp_path, keys, "a", "1.2.0")
    republish(dist, new[: new.rfind(";sig=")] + old[old.rfind(";sig="):])

    assert "latest: bad signature" in assert_update_changes_nothing(device, "False False")


def test_an_expired_signature_is_refused_as_a_possible_replay(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a", expires_days=1, now=int(time.time()) - 3 * DAY)

    log = assert_update_changes_nothing(device, "False False")

    assert "the signature expired 48 hours ago: the server may be replaying an old release" in log
    assert server.requests == ["/latest"]


def test_an_unexpired_signature_installs(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a", expires_days=2)

    assert installed(device)["version"] == b"1.1.0"


def test_an_older_signed_release_is_not_installed(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a", "0.9.0")

    log = assert_update_changes_nothing(device, "False False")

    assert "version 1.0.0 is the newest" in log


def test_an_archive_swapped_under_a_signed_latest_is_refused(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a")
    archive = dist / "firmware-1.1.0.tar.gz"
    data = bytearray(archive.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    archive.write_bytes(bytes(data))

    log = assert_update_changes_nothing(device, "False False")

    assert "SHA-256 of the download does not match latest" in log


def test_an_archive_longer_than_its_signed_size_is_cut_off(runtime, tmp_path, dist, server, keys):
    # endless data: the device reads no more than the signed size
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    line = signed(dist, tmp_path, keys, "a")
    size = int(line.split(";size=")[1].split(";")[0])
    server.quirks["/firmware-1.1.0.tar.gz"] = ("no-length", None)
    archive = dist / "firmware-1.1.0.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0" * 100_000)

    log = assert_update_changes_nothing(device, "False False")

    assert "the archive is larger than the %d bytes latest gives" % size in log


def test_a_key_file_that_is_not_a_public_key_refuses_every_release(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    (device.root / "a.pub").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    signed(dist, tmp_path, keys, "a")

    log = assert_update_changes_nothing(device, "False False")

    assert "key a.pub: not an RSA public key" in log


def test_without_keys_a_signed_release_installs_as_any_other(runtime, tmp_path, dist, server, keys):
    # older devices, and devices without keys, read the first four fields only
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": device_cfg(server.url)}))
    signed(dist, tmp_path, keys, "a")

    assert installed(device)["version"] == b"1.1.0"


@pytest.mark.parametrize("require_hash, result", [(True, "False False"), (False, "True True")])
def test_require_hash_refuses_a_latest_without_a_hash(runtime, tmp_path, dist, server, keys, require_hash, result):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": device_cfg(server.url, require_hash=require_hash)}))
    line = signed(dist, tmp_path, keys, "a")
    republish(dist, ";".join(line.split(";")[:3]))

    got, log = device.update()

    assert got == result, log
    assert require_hash is ("latest gives no SHA-256, and uota.cfg says 'require_hash'" in log)


# Key rotation: a release signed by a trusted key changes which keys the device trusts.
def rotation_release(url, keys, trusted):
    files = dict(NEW)
    files.update({name + ".pub": keys[name][1].read_text() for name in trusted})
    files["uota.cfg"] = device_cfg(url, keys=[name + ".pub" for name in trusted])
    return files


def test_rotation_a_release_signed_by_a_moves_trust_to_b(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a", "1.1.0", rotation_release(server.url, keys, ["b"]))
    assert "keys': ['b.pub']" in installed(device)["uota.cfg"].decode()

    signed(dist, tmp_path, keys, "b", "1.2.0")  # ships no key: b.pub, still trusted, stays
    files = installed(device)
    assert files["version"] == b"1.2.0" and files["b.pub"] == keys["b"][1].read_bytes()

    line = signed(dist, tmp_path, keys, "a", "1.3.0")
    log = assert_update_changes_nothing(device, "False False")
    assert "signed by key %s, which this device does not trust" % line.rpartition(";sig=")[2][:16] in log


def test_a_release_that_drops_every_key_is_refused(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    signed(dist, tmp_path, keys, "a", "1.1.0", dict(NEW, **{"uota.cfg": device_cfg(server.url)}))

    log = assert_update_changes_nothing(device, "False False")

    assert "the release lists no keys: this device would stop checking signatures" in log


@pytest.mark.parametrize("key_file, reason", [
    pytest.param(None, "key c.pub is missing or not a PEM public key", id="missing"),
    pytest.param("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n", "key c.pub: not an RSA public key",
                 id="not-a-key"),
    pytest.param("ssh-rsa AAAAB3NzaC1yc2E=", "key c.pub is missing or not a PEM public key", id="other-format"),
])
def test_a_release_that_would_trust_an_unusable_key_is_refused(runtime, tmp_path, dist, server, keys, key_file, reason):
    # after it, the device could verify no release: stranded
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    files = dict(NEW, **{"uota.cfg": device_cfg(server.url, keys=["c.pub"])})
    if key_file is not None:
        files["c.pub"] = key_file
    signed(dist, tmp_path, keys, "a", "1.1.0", files)

    log = assert_update_changes_nothing(device, "False False")

    assert reason in log


def test_a_release_may_not_delete_a_key_the_device_trusts(runtime, tmp_path, dist, server, keys):
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    files = dict(NEW, **{"uota.cfg": device_cfg(server.url, keys=["a.pub"], delete=["a.pub"]),
                         "a.pub": keys["a"][1].read_text()})
    signed(dist, tmp_path, keys, "a", "1.1.0", files)

    log = assert_update_changes_nothing(device, "False False")

    assert "uota.cfg: delete may not name 'a.pub'" in log


@pytest.mark.parametrize("tamper, reason", TAMPERED)
def test_check_with_the_key_reports_what_the_device_refuses(dist, server, tmp_path, keys, tamper, reason):
    republish(dist, tamper(signed(dist, tmp_path, keys, "a")))

    report = check_release(server.url, keys={"a.pub": keys["a"][1].read_text()})

    assert any(reason in problem for problem in report.problems), report.problems


def test_check_with_the_key_says_who_signed_and_when_it_expires(dist, server, tmp_path, keys):
    now = int(time.time())
    signed(dist, tmp_path, keys, "a", expires_days=30, now=now)
    keyid = hashlib.sha256(base64.b64decode("".join(keys["a"][1].read_text().splitlines()[1:-1]))).hexdigest()[:16]

    report = check_release(server.url, keys={"a.pub": keys["a"][1].read_text()}, now=now)

    assert report.ok, report.problems
    assert report.signature.startswith("by key %s, expires in 30.0 days" % keyid)


def test_a_project_set_up_by_init_key_installs_only_its_signed_releases(runtime, tmp_path, dist, server, keys):
    project = tmp_path / "project"
    assert main(["init", str(project), "--url", server.url, "--key", str(keys["a"][1]), "--version", "1.0.0"]) == 0
    device = Device(runtime, tmp_path / "device")
    shutil.copytree(project, device.root, dirs_exist_ok=True)  # the board, provisioned with the project's files
    assert main(["build", str(project), "--version", "1.1.0", "--out", str(dist)]) == 0

    assert "latest is not signed" in assert_update_changes_nothing(device, "False False")

    assert main(["build", str(project), "--version", "1.1.0", "--out", str(dist), "--key", str(keys["a"][0])]) == 0
    assert installed(device)["version"] == b"1.1.0"


def test_a_release_may_move_updates_only_to_a_url_whose_latest_is_signed(runtime, tmp_path, dist, server,
                                                                          release_server, keys):
    mirror_dist = tmp_path / "mirror"
    mirror_dist.mkdir()
    mirror = release_server(mirror_dist)
    device = trusting(runtime, tmp_path, server.url, keys, "a")
    line = signed(dist, tmp_path, keys, "a", "1.1.0", rotation_release(mirror.url, keys, ["a"]))
    shutil.copy(dist / "firmware-1.1.0.tar.gz", mirror_dist)
    republish(mirror_dist, _unsigned(line))  # the mirror offers the release, unsigned

    log = assert_update_changes_nothing(device, "False False")
    assert "moves updates to %s, where latest fails: latest is not signed" % mirror.url in log

    republish(mirror_dist, line)
    assert installed(device)["uota.cfg"].decode().count(mirror.url) == 1
