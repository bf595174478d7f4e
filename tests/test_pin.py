"""`uota pin`: the pins agree with openssl and with an independent ucertpin computation."""

import base64
import datetime
import hashlib
import subprocess
from collections import namedtuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from uota.__main__ import main
from uota.pin import pins_for_certificate
from uota.serve import start_server


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pin test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def subject_public_key_bits(public_key):
    """What the BIT STRING holds, built from the key itself rather than by walking DER."""
    if isinstance(public_key, rsa.RSAPublicKey):
        key_bytes = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        key_bytes = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b"\x00" + key_bytes  # no unused bits


CertificateFiles = namedtuple("CertificateFiles", "certificate pem_path der_path key_path")


@pytest.fixture(params=[rsa_key, ec_key], ids=["rsa", "ec"])
def certificate(request, tmp_path):
    key = request.param()
    certificate = self_signed(key)
    files = CertificateFiles(certificate, tmp_path / "cert.pem", tmp_path / "cert.der", tmp_path / "key.pem")
    files.pem_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.der_path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    files.key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def openssl_spki_digest(pem_path):
    """openssl x509 -pubkey -noout -in c.pem | openssl pkey -pubin -outform der | sha256sum"""
    public_pem = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(pem_path)], capture_output=True, check=True
    ).stdout
    spki_der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=public_pem, capture_output=True, check=True
    ).stdout
    return subprocess.run(["sha256sum"], input=spki_der, capture_output=True, check=True).stdout.split()[0].decode()


def printed_pins(capsys, source):
    assert main(["pin", str(source)]) == 0
    return dict(line.split() for line in capsys.readouterr().out.splitlines())


def test_spki_pin_agrees_with_openssl(certificate, capsys):
    assert printed_pins(capsys, certificate.pem_path)["spki"] == openssl_spki_digest(certificate.pem_path)


def test_curl_pin_is_the_base64_spki_digest(certificate, capsys):
    digest = bytes.fromhex(openssl_spki_digest(certificate.pem_path))
    assert printed_pins(capsys, certificate.pem_path)["curl"] == "sha256//" + base64.b64encode(digest).decode()


def test_ucertpin_pin_hashes_the_bit_string_with_its_unused_bits_byte(certificate, capsys):
    expected = hashlib.sha256(subject_public_key_bits(certificate.certificate.public_key())).hexdigest()
    assert printed_pins(capsys, certificate.pem_path)["ucertpin"] == expected


def test_der_file_gives_the_same_pins_as_pem(certificate, capsys):
    assert printed_pins(capsys, certificate.der_path) == printed_pins(capsys, certificate.pem_path)


def test_server_url_gives_the_pins_of_its_certificate(certificate, tmp_path, capsys):
    server = start_server(tmp_path, tls=(certificate.pem_path, certificate.key_path))
    try:
        assert printed_pins(capsys, server.url) == pins_for_certificate(
            certificate.certificate.public_bytes(serialization.Encoding.DER)
        )
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "source, message",
    [
        pytest.param("garbage", "is not a PEM or DER X.509 certificate", id="not-a-certificate"),
        pytest.param("missing.pem", "cannot read certificate", id="missing-file"),
        pytest.param("http://127.0.0.1:1/", "is not an https:// URL", id="plain-http"),
        pytest.param("https://127.0.0.1:1/", "uota: cannot fetch the certificate of 127.0.0.1:1: Connection refused\n",
                     id="nothing-listening"),
    ],
)
def test_unusable_sources_are_one_line_errors(tmp_path, capsys, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage").write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    assert main(["pin", source]) == 1
    error = capsys.readouterr().err
    assert error.startswith("uota: ") and message in error and error.count("\n") == 1
