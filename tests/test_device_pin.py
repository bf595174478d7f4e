"""The device's certificate reader for pinning (`_public_key`, `_check_pin`), on every runtime.

The pin is only worth something if the key the device hashes is the key TLS uses. So the reader
takes strict DER with every field at its RFC 5280 position and refuses anything else: a looser
reader can be shown a second, hidden SubjectPublicKeyInfo (the pinned server's) in a certificate
that carries the attacker's key. The malformed certificates here are real ones rewritten with the
little DER encoder below.
"""

import ssl
from collections import namedtuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from support.standard import make_device, release
from test_pin import ec_key, rsa_key, self_signed, subject_public_key_bits
from uota.pin import load_certificate_file, pins_for_certificate
from uota.serve import make_self_signed_certificate

UNREADABLE = "(unreadable certificate)"

# ---------------------------------------------------------------- a tiny DER encoder

Element = namedtuple("Element", "tag contents whole")


def length_octets(n, size=None):
    """DER's minimal length octets, or long form in `size` bytes (non-minimal if n < 128)."""
    if size is None:
        if n < 0x80:
            return bytes([n])
        size = (n.bit_length() + 7) // 8
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def header(tag, n, size=None):
    return bytes([tag]) + length_octets(n, size)


def tlv(tag, *parts, size=None):
    body = b"".join(parts)
    return header(tag, len(body), size) + body


def indefinite(tag, *parts):
    """BER's indefinite-length form, which DER forbids: 0x80, the contents, then 00 00."""
    return bytes([tag, 0x80]) + b"".join(parts) + b"\0\0"


def elements(der):
    """The DER elements one after the other in `der`."""
    found, pos = [], 0
    while pos < len(der):
        tag, n, start = der[pos], der[pos + 1], pos + 2
        if n & 0x80:
            n, start = int.from_bytes(der[start : start + (n & 0x7F)], "big"), start + (n & 0x7F)
        found.append(Element(tag, der[start : start + n], der[pos : start + n]))
        pos = start + n
    return found


def fields(cert):
    """(tbsCertificate's fields, signatureAlgorithm, signatureValue) of a DER certificate."""
    [certificate] = elements(cert)
    tbs, algorithm, signature = elements(certificate.contents)
    return [field.whole for field in elements(tbs.contents)], algorithm.whole, signature.whole


def certificate(tbs_fields, algorithm, signature, tbs=tlv, outer=tlv):
    return outer(0x30, tbs(0x30, *tbs_fields), algorithm, signature)


VERSION, SERIAL, SIGNATURE, ISSUER, VALIDITY, SUBJECT, SPKI = range(7)


def replaced(cert, index, field):
    """`cert` with tbsCertificate field `index` replaced."""
    tbs, algorithm, signature = fields(cert)
    tbs[index] = field
    return certificate(tbs, algorithm, signature)


def retagged(cert, index, tag):
    return replaced(cert, index, bytes([tag]) + fields(cert)[0][index][1:])


def spki(cert):
    return fields(cert)[0][SPKI]


def contents(der):
    return elements(der)[0].contents


# ---------------------------------------------------------------- certificates

Certs = namedtuple("Certs", "victim attacker extended attacker_key")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The pinned server's certificate (RSA), the attacker's (EC) and its key, one with extensions."""
    attacker_key = ec_key()
    victim = self_signed(rsa_key()).public_bytes(Encoding.DER)
    attacker = self_signed(attacker_key).public_bytes(Encoding.DER)
    cert_file, _ = make_self_signed_certificate(tmp_path_factory.mktemp("tls"), "127.0.0.1")
    return Certs(victim, attacker, load_certificate_file(cert_file), attacker_key)


def forged(certs):
    """The attack: the attacker's key where the key belongs, the victim's hidden in the issuer.

    A BER reader sees the issuer as one element (30 80 … 00 00) followed by the real validity,
    subject and the attacker's SPKI. A reader that takes 0x80 for a length of 0 steps into the
    issuer instead and finds a validity, a subject and the victim's SPKI there."""
    tbs, algorithm, signature = fields(certs.attacker)
    tbs[ISSUER] = indefinite(0x30, tbs[VALIDITY], tbs[SUBJECT], spki(certs.victim), contents(tbs[ISSUER]))
    return certificate(tbs, algorithm, signature, tbs=indefinite, outer=indefinite)


def forged_for_openssl(certs):
    """The same attack in a shape OpenSSL loads and serves: the victim's SPKI hidden in the
    parameters (ANY) of the tbsCertificate's signature algorithm, 30 80 OID 30 80 NULL SPKI …"""
    tbs, algorithm, signature = fields(certs.attacker)
    oid = elements(contents(tbs[SIGNATURE]))[0].whole
    tbs[SIGNATURE] = indefinite(0x30, oid, indefinite(0x30, tlv(0x05), spki(certs.victim)))
    return certificate(tbs, algorithm, signature)


def loose_public_key(cert):
    """The device's reader before strict DER: what a forgery has to fool."""

    def der(pos):
        tag, n, pos = cert[pos], cert[pos + 1], pos + 2
        if n & 0x80:
            n, pos = int.from_bytes(cert[pos : pos + (n & 0x7F)], "big"), pos + (n & 0x7F)
        return tag, pos, pos + n

    _, pos, _ = der(0)
    _, pos, _ = der(pos)
    for _ in range(6 if cert[pos] == 0xA0 else 5):
        _, _, pos = der(pos)
    _, _, end = der(pos)
    return cert[pos:end]


def indefinite_field(cert, index):
    field = elements(fields(cert)[0][index])[0]
    return replaced(cert, index, indefinite(field.tag, field.contents))


def long_form_for_short_length(cert):
    algorithm = contents(fields(cert)[0][SIGNATURE])
    assert len(algorithm) < 0x80
    return replaced(cert, SIGNATURE, tlv(0x30, algorithm, size=1))  # 30 81 0d …


def long_form_with_leading_zero(cert):
    tbs, algorithm, signature = fields(cert)
    assert 0x80 <= len(b"".join(tbs)) < 0x100
    return tlv(0x30, tlv(0x30, *tbs, size=2), algorithm, signature)  # 30 82 00 …


def spki_running_past_tbs(cert):
    """The SPKI and its BIT STRING claim the signatureAlgorithm that follows the tbsCertificate."""
    tbs, algorithm, signature = fields(cert)
    key_algorithm, bits = elements(contents(tbs[SPKI]))
    extra = len(algorithm)
    bits = header(0x03, len(bits.contents) + extra) + bits.contents
    tbs[SPKI] = header(0x30, len(key_algorithm.whole) + len(bits) + extra) + key_algorithm.whole + bits
    return certificate(tbs, algorithm, signature)


def element_after_signature(cert):
    tbs, algorithm, signature = fields(cert)
    return tlv(0x30, tlv(0x30, *tbs), algorithm, signature, tlv(0x05))


def bit_string_short_of_spki_end(cert):
    key_algorithm, bits = elements(contents(spki(cert)))
    return replaced(cert, SPKI, tlv(0x30, key_algorithm.whole, bits.whole, tlv(0x05)))


def unknown_field_after_spki(cert):
    tbs, algorithm, signature = fields(cert)
    return certificate(tbs + [tlv(0x04, b"x")], algorithm, signature)


def extensions_twice(cert):
    tbs, algorithm, signature = fields(cert)
    assert tbs[-1][0] == 0xA3
    return certificate(tbs + tbs[-1:], algorithm, signature)


def without_version(cert):
    tbs, algorithm, signature = fields(cert)
    assert tbs[VERSION][0] == 0xA0
    return certificate(tbs[1:], algorithm, signature)


def unchanged(cert):
    return cert


GOOD = [  # (which certificate, rewritten how)
    pytest.param("victim", unchanged, id="rsa"),
    pytest.param("attacker", unchanged, id="ec"),
    pytest.param("extended", unchanged, id="with-extensions"),
    pytest.param("victim", without_version, id="v1-without-version"),
]

REFUSED = [
    pytest.param(forged, id="forged-victim-spki-hidden-in-issuer"),
    pytest.param(forged_for_openssl, id="forged-victim-spki-hidden-in-algorithm-parameters"),
    pytest.param(lambda certs: certificate(*fields(certs.victim), outer=indefinite), id="indefinite-certificate"),
    pytest.param(lambda certs: certificate(*fields(certs.victim), tbs=indefinite), id="indefinite-tbs"),
    pytest.param(lambda certs: indefinite_field(certs.victim, ISSUER), id="indefinite-issuer"),
    pytest.param(lambda certs: long_form_for_short_length(certs.victim), id="long-form-for-short-length"),
    pytest.param(lambda certs: long_form_with_leading_zero(certs.attacker), id="long-form-with-leading-zero"),
    pytest.param(lambda certs: spki_running_past_tbs(certs.victim), id="length-past-parent"),
    pytest.param(lambda certs: certs.victim + b"\0", id="trailing-byte"),
    pytest.param(lambda certs: element_after_signature(certs.victim), id="element-after-signature"),
    pytest.param(lambda certs: retagged(certs.victim, SERIAL, 0x04), id="serial-not-integer"),
    pytest.param(lambda certs: retagged(certs.victim, SPKI, 0x31), id="spki-not-sequence"),
    pytest.param(lambda certs: bit_string_short_of_spki_end(certs.victim), id="bit-string-short-of-spki-end"),
    pytest.param(lambda certs: unknown_field_after_spki(certs.victim), id="unknown-field-after-spki"),
    pytest.param(lambda certs: extensions_twice(certs.extended), id="extensions-twice"),
    pytest.param(lambda certs: certs.victim[: len(certs.victim) // 2], id="truncated"),
]

# ---------------------------------------------------------------- on the device

READ = """
import binascii, uota
from uota import _pin
with open("cert.der", "rb") as f:
    cert = f.read()
try:
    spki, key = _pin._public_key(memoryview(cert))
    print(binascii.hexlify(spki).decode(), binascii.hexlify(key).decode())
except uota.VerifyError as e:
    print("VerifyError", e)
"""

CHECK_PINS = """
import uota
from uota import _pin
with open("cert.der", "rb") as f:
    cert = f.read()
class Socket:
    def getpeercert(self, binary_form):
        return cert
for pin in %r:
    try:
        _pin._check_pin(Socket(), pin if isinstance(pin, list) else [pin])
        print("accepted")
    except uota.VerifyError as e:
        print("refused", e)
"""


def read_on(device, cert):
    (device.root / "cert.der").write_bytes(cert)
    result = device.run(READ)
    assert result.ok, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("which, rewrite", GOOD)
def test_public_key_is_the_certificates_own(device, certs, which, rewrite):
    cert = getattr(certs, which)
    public_key = x509.load_der_x509_certificate(cert).public_key()
    expected_spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    assert read_on(device, rewrite(cert)) == expected_spki.hex() + " " + subject_public_key_bits(public_key).hex()


@pytest.mark.parametrize("make", REFUSED)
def test_certificate_that_is_not_strict_der_is_refused(device, certs, make):
    output = read_on(device, make(certs))

    assert output.startswith("VerifyError Certificate pinning failed") and output.endswith(UNREADABLE), output


@pytest.mark.parametrize("forgery", [forged, forged_for_openssl])
def test_forgeries_fool_a_reader_that_takes_indefinite_lengths(certs, forgery):
    # what makes the refusals here matter: the device's reader before strict DER found the victim's key
    assert loose_public_key(forgery(certs)) == spki(certs.victim)
    assert loose_public_key(certs.victim) == spki(certs.victim)


def test_both_pin_forms_of_the_certificates_key_are_accepted(device, certs):
    pins = pins_for_certificate(certs.victim)
    (device.root / "cert.der").write_bytes(certs.victim)

    result = device.run(CHECK_PINS % [pins["ucertpin"], pins["spki"].upper().encode()])

    assert result.stdout.split() == ["accepted", "accepted"], result.stdout + result.stderr


def test_a_list_of_pins_accepts_the_key_any_of_them_names(device, certs):
    # a server key rotates: devices pin the current key and the next one
    current, other = pins_for_certificate(certs.victim)["spki"], "ab" * 32
    (device.root / "cert.der").write_bytes(certs.victim)

    result = device.run(CHECK_PINS % [[other, current], [current, other], [other]])

    assert result.stdout.split()[:2] == ["accepted", "accepted"], result.stdout + result.stderr
    assert result.stdout.splitlines()[2].startswith("refused Certificate pinning failed"), result.stdout


def test_forgery_passes_neither_pin_of_the_victim(device, certs):
    pins = pins_for_certificate(certs.victim)
    (device.root / "cert.der").write_bytes(forged(certs))

    result = device.run(CHECK_PINS % [pins["ucertpin"], pins["spki"]])

    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("refused") and line.endswith(UNREADABLE) for line in lines), lines


def test_forgery_served_over_tls_fails_the_victims_pin(runtime, tmp_path, dist, release_server, certs):
    """TLS with the attacker's key and certificate, which OpenSSL serves as written."""
    cert_file, key_file = tmp_path / "forged.pem", tmp_path / "key.pem"
    cert_file.write_text(ssl.DER_cert_to_PEM_cert(forged_for_openssl(certs)))
    key_file.write_bytes(certs.attacker_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = release_server(dist, context)
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update(pubkey_hash=pins_for_certificate(certs.victim)["ucertpin"])

    assert result == "False False"
    assert UNREADABLE in log
    assert device.files() == before
