"""`uota keygen` and `uota sign` (and `uota build --key`): keys, and signed `latest` lines
that the device's own code verifies. Signing never leaves a half-written or unverifiable
`latest` behind."""

import os
import stat

import pytest

from uota import __main__ as cli
from uota.build import build_release
from uota.device.uota import _latest
from uota.sign import verify_line

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    """(private key path, public key path), made by `uota keygen`."""
    folder = tmp_path_factory.mktemp("key")
    assert cli.main(["keygen", str(folder / "ota"), "--bits", "2048"]) == 0
    return folder / "ota", folder / "ota.pub"


@pytest.fixture
def dist(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('hello')\n")
    build_release(src, "1.2.0", tmp_path / "dist")
    return tmp_path / "dist"


def latest(dist):
    return (dist / "latest").read_text()


def verifies(dist, public):
    return verify_line(latest(dist), {"ota.pub": public.read_text()}, NOW)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_the_public_key(key):
    private, public = key
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and public.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_keygen_never_overwrites_a_key(key, capsys):
    private, public = key
    before = private.read_bytes(), public.read_bytes()

    assert cli.main(["keygen", str(private)]) == 1

    assert "exists: keygen never overwrites a key" in capsys.readouterr().err
    assert (private.read_bytes(), public.read_bytes()) == before


def test_sign_adds_size_expiry_and_a_signature_after_the_four_fields(dist, key):
    four = latest(dist).strip()

    assert cli.main(["sign", str(dist), "--key", str(key[0]), "--expires", "30"]) == 0

    line = latest(dist).strip()
    assert line.startswith(four + ";size=%d;expires=" % (dist / "firmware-1.2.0.tar.gz").stat().st_size)
    assert _latest.parse_latest(line)[:4] == _latest.parse_latest(four)[:4]  # what older devices read
    expires = int(line.split("expires=")[1].split(";")[0])
    verify_line(line, {"ota.pub": key[1].read_text()}, expires - 1)


def test_signing_again_replaces_the_signature(dist, key):
    cli.main(["sign", str(dist), "--key", str(key[0]), "--expires", "1"])

    assert cli.main(["sign", str(dist), "--key", str(key[0])]) == 0

    assert latest(dist).count(";sig=") == 1 and "expires=" not in latest(dist)
    verifies(dist, key[1])


def test_a_signer_command_signs_without_the_key_file_here(dist, key):
    signer = "openssl dgst -sha256 -sign %s" % key[0]

    assert cli.main(["sign", str(dist), "--key", str(key[1]), "--signer", signer]) == 0

    verifies(dist, key[1])


@pytest.mark.parametrize("signer, message", [
    pytest.param("false", "failed (1)", id="fails"),
    pytest.param("echo not-a-signature", "the signature does not verify: latest: bad signature", id="garbage"),
    pytest.param("no-such-signer-command", "did not run", id="missing"),
])
def test_a_signer_that_fails_leaves_latest_as_it_was(dist, key, capsys, signer, message):
    before = latest(dist)

    assert cli.main(["sign", str(dist), "--key", str(key[1]), "--signer", signer]) == 1

    assert message in capsys.readouterr().err
    assert latest(dist) == before


def _change_archive(dist, key):
    (dist / "firmware-1.2.0.tar.gz").write_bytes(b"other")
    return ["--key", str(key[0])]


def _name_a_missing_archive(dist, key):
    (dist / "latest").write_text("1.2.0;gone.tar.gz\n")
    return ["--key", str(key[0])]


@pytest.mark.parametrize("change, message", [
    pytest.param(lambda dist, key: ["--key", str(key[1])], "is a public key: sign with the private key", id="public-key"),
    pytest.param(lambda dist, key: ["--key", str(dist / "latest")], "is missing or not a PEM public key", id="not-a-key"),
    pytest.param(_change_archive, "does not match the SHA-256 in", id="archive-changed"),
    pytest.param(_name_a_missing_archive, "cannot read the archive latest names", id="archive-missing"),
    pytest.param(lambda dist, key: ["--key", str(key[0]), "--expires", "0"], "--expires must be a positive", id="expires-0"),
])
def test_sign_refuses_with_one_line_and_changes_nothing(dist, key, capsys, change, message):
    args = change(dist, key)
    before = latest(dist)

    assert cli.main(["sign", str(dist)] + args) == 1

    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert latest(dist) == before


def test_build_with_a_key_builds_and_signs(tmp_path, key):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('hello')\n")

    assert cli.main(["build", str(src), "--version", "2.0", "--out", str(tmp_path / "dist"), "--key", str(key[0])]) == 0

    assert verifies(tmp_path / "dist", key[1])[0] == "2.0"


def test_build_refuses_signing_options_without_a_key(tmp_path, capsys):
    assert cli.main(["build", str(tmp_path), "--version", "2.0", "--expires", "3"]) == 1
    assert "give --key too" in capsys.readouterr().err
