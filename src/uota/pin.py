"""`uota pin`: the public-key pins a device can check a server against.

Three forms of the same key, all from the certificate's SubjectPublicKeyInfo
(SPKI), so they survive certificate renewal as long as the key is kept:

    ucertpin   hex SHA-256 of the subjectPublicKey BIT STRING contents,
               including its leading unused-bits byte (0x00); what the
               `ucertpin` MicroPython module computes
    spki       hex SHA-256 of the whole DER SubjectPublicKeyInfo; what
               ``openssl x509 -pubkey | openssl pkey -pubin -outform der |
               sha256sum`` prints
    curl       the spki hash as ``sha256//BASE64``, for curl --pinnedpubkey
"""

import base64
import hashlib
import socket
import ssl
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import CommandError

PIN_FORMS = ("ucertpin", "spki", "curl")

_DER_SEQUENCE = 0x30
_DER_BIT_STRING = 0x03


def pins_for_certificate(der: bytes) -> dict:
    """Return ``{"ucertpin": hex, "spki": hex, "curl": "sha256//..."}`` for a DER certificate.

    Raises:
        ValueError: `der` is not a DER X.509 certificate.
    """
    certificate = x509.load_der_x509_certificate(der)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spki_digest = hashlib.sha256(spki).digest()
    return {
        "ucertpin": hashlib.sha256(_subject_public_key_bits(spki)).hexdigest(),
        "spki": spki_digest.hex(),
        "curl": "sha256//" + base64.b64encode(spki_digest).decode(),
    }


def load_certificate_file(path) -> bytes:
    """Read a PEM or DER certificate file; return it as DER."""
    try:
        with open(path, "rb") as certificate_file:
            data = certificate_file.read()
    except OSError as error:
        raise CommandError("cannot read certificate {}: {}".format(path, error.strerror or error))
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError as error:
        raise CommandError("{} is not a PEM or DER X.509 certificate: {}".format(path, error))


def fetch_server_certificate(url, timeout=10.0) -> bytes:
    """Connect to an https:// URL without verifying it; return the server certificate as DER."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CommandError("{!r} is not an https:// URL".format(url))
    try:
        port = parts.port or 443
    except ValueError as error:
        raise CommandError("invalid port in {!r}: {}".format(url, error))
    # Pinning is the check here: the certificate may well be self-signed.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as connection:
            with context.wrap_socket(connection, server_hostname=parts.hostname) as tls_connection:
                return tls_connection.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as error:
        reason = "timed out" if isinstance(error, socket.timeout) else error.strerror or str(error)
        raise CommandError("cannot fetch the certificate of {}:{}: {}".format(parts.hostname, port, reason))


def _subject_public_key_bits(spki):
    """The contents of the BIT STRING in SubjectPublicKeyInfo, unused-bits byte included.

    SPKI is SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }.
    """
    tag, body_start, body_end = _der_header(spki, 0)
    if tag != _DER_SEQUENCE:
        raise ValueError("SubjectPublicKeyInfo is not a DER SEQUENCE")
    _, _, algorithm_end = _der_header(spki, body_start)
    tag, bits_start, bits_end = _der_header(spki, algorithm_end)
    if tag != _DER_BIT_STRING or bits_end != body_end:
        raise ValueError("SubjectPublicKeyInfo has no trailing BIT STRING")
    return spki[bits_start:bits_end]


def _der_header(der, offset):
    """Return (tag, contents start, contents end) of the DER element at `offset`."""
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:  # long form: the low bits say how many length bytes follow
        length_size = length & 0x7F
        length = int.from_bytes(der[start:start + length_size], "big")
        start += length_size
    if start + length > len(der):
        raise ValueError("truncated DER element")
    return tag, start, start + length


def add_arguments(parser):
    parser.add_argument("source", metavar="URL|CERT", help="https:// URL of the server, or a PEM/DER certificate file")


def run(args):
    """Print the public-key pins of a server or certificate file."""
    if "://" in args.source:
        der = fetch_server_certificate(args.source)
    else:
        der = load_certificate_file(args.source)
    pins = pins_for_certificate(der)
    for form in PIN_FORMS:
        print("{:<9} {}".format(form, pins[form]))
