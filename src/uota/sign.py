"""`uota keygen` and `uota sign`: signed releases.

`sign` signs the `latest` line of a built release folder, so the key can live on an offline
machine: build anywhere, copy DIST to the key, sign, publish. The line becomes

    VERSION;NAME;FREE_KB;SHA256;size=BYTES[;expires=UNIX_SECONDS];sig=KEYID:BASE64

The first four fields keep their meaning (older devices and the original uOTA read them and
ignore the rest). The signature is RSA PKCS #1 v1.5 with SHA-256 over the device's DOMAIN
prefix and everything before ";sig="; KEYID names the key (the first 16 hex digits of the
SHA-256 of its SubjectPublicKeyInfo). Devices check it with the same code `check` runs
(`device/uota/_signature.py`). `--signer COMMAND` makes the signature elsewhere (a hardware
token, a cloud KMS): the command reads the bytes to sign on stdin and writes the raw
signature to stdout, e.g. `openssl dgst -sha256 -sign KEY`.
"""

import base64
import hashlib
import os
import shlex
import subprocess
import time
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .build import LATEST_FILE, write_atomically
from .device.uota import _core, _latest, _signature
from .errors import CommandError

KEY_BITS = 3072
_NAMED = ("size", "expires", "sig")  # the fields `sign` writes; others are kept


def keygen(path, bits=KEY_BITS):
    """Write a new private key to `path` (mode 0600) and its public key to `path`.pub."""
    path = Path(path)
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise CommandError("{} exists: keygen never overwrites a key".format(existing))
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as key_file:
            key_file.write(private)
        public_path.write_bytes(public_pem(key.public_key()))
    except OSError as error:
        raise CommandError("cannot write {}: {}".format(error.filename or path, error.strerror or error))
    return path, public_path


def public_pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_key(path):
    """(private key or None, PEM of the public key) of a private or a public key file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CommandError("cannot read key {}: {}".format(path, error.strerror or error))
    try:
        if b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise CommandError("{} is not an RSA key: devices check RSA signatures".format(path))
            return key, public_pem(key.public_key())
        return None, data
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise CommandError("cannot load key {}: {}".format(path, error))


def sign_release(dist, key, signer=None, expires_days=None, now=None, line=None):
    """Sign the `latest` of the release folder `dist` (or `line`, to become it) with the
    private key file `key`, or with `signer` (a command) and `key` the public key file;
    return the new line, written to `latest` once it verifies."""
    dist = Path(dist)
    private, pem = _load_key(key)
    spki = _public_spki(pem, key)
    if private is None and not signer:
        raise CommandError("{} is a public key: sign with the private key, or give --signer".format(key))
    latest_path = dist / LATEST_FILE
    try:
        text = latest_path.read_text() if line is None else line
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError("cannot read {}: {}".format(latest_path, error))
    version, filename, free_kb, sha, named, _ = _parse(text, latest_path)
    archive = dist / filename
    try:
        data = archive.read_bytes()
    except OSError as error:
        raise CommandError("cannot read the archive latest names, {}: {}".format(archive, error.strerror or error))
    digest = hashlib.sha256(data).hexdigest()
    if sha and sha != digest:
        raise CommandError("{} does not match the SHA-256 in {}: rebuild the release".format(archive, latest_path))
    now = int(time.time()) if now is None else now
    fields = [version, filename, str(free_kb), digest]
    fields += ["{}={}".format(name, value) for name, value in named.items() if name not in _NAMED]
    fields.append("size={}".format(len(data)))
    if expires_days is not None:
        if expires_days <= 0:
            raise CommandError("--expires must be a positive number of days")
        fields.append("expires={}".format(now + int(expires_days * 86400)))
    signed = ";".join(fields)
    message = _signature.DOMAIN + signed.encode()
    if private is not None:
        signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = _run_signer(signer, message)
    line = "{};sig={}:{}".format(signed, _signature.key_id(spki), base64.b64encode(signature).decode())
    if len(line) > _latest._LATEST_MAX:
        raise CommandError("the signed latest is {} bytes, more than the {} a device reads".format(
            len(line), _latest._LATEST_MAX))
    verify_line(line, {str(key): pem.decode()}, now)  # what a device will do, before it is published
    write_atomically(latest_path, (line + "\n").encode())
    return line


def _parse(text, where):
    try:
        return _latest.parse_latest(text)
    except _core.VerifyError as error:
        raise CommandError("{}: {}".format(where, error))


def _public_spki(pem, path):
    try:
        return _signature.key_spki(pem.decode(errors="replace"), str(path))
    except _core.VerifyError as error:
        raise CommandError(str(error))


def _run_signer(command, message):
    try:
        result = subprocess.run(shlex.split(command), input=message, capture_output=True, timeout=300)
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        raise CommandError("the signer {!r} did not run: {}".format(command, error))
    if result.returncode != 0:
        raise CommandError("the signer {!r} failed ({}): {}".format(
            command, result.returncode, result.stderr.decode(errors="replace").strip()))
    return result.stdout


def verify_line(line, keys, now):
    """Check a `latest` line's signature as a device does, against `keys` ({name: PEM text});
    return parse_latest's fields, or CommandError naming what fails."""
    fields = _parse(line, "latest")
    try:
        _signature.check_signature(list(keys), fields[5], fields[4], now, keys.get)
    except _core.VerifyError as error:
        raise CommandError("the signature does not verify: {}".format(error))
    return fields


def add_keygen_arguments(parser):
    parser.add_argument("key", metavar="KEY", help="the private key file to write; KEY.pub gets the public key")
    parser.add_argument("--bits", type=int, default=KEY_BITS, choices=(2048, 3072, 4096),
                        help="RSA key size (default: {})".format(KEY_BITS))


def run_keygen(args):
    """Write a signing key KEY (mode 0600) and its public key KEY.pub."""
    private, public = keygen(args.key, args.bits)
    print("wrote {} (private: keep it offline) and {}".format(private, public))
    print("devices trust it with: uota init DIR --key {}".format(public))


def add_arguments(parser):
    parser.add_argument("dist", metavar="DIST", help="the release folder `uota build` wrote")
    add_signing_arguments(parser, required=True)


def add_signing_arguments(parser, required=False):
    parser.add_argument("--key", metavar="KEY", required=required,
                        help="the private key (or, with --signer, its public key KEY.pub)")
    parser.add_argument("--signer", metavar="COMMAND",
                        help="sign with this command: it reads the bytes to sign on stdin and writes the raw "
                        "RSA PKCS#1 v1.5 SHA-256 signature to stdout (e.g. 'openssl dgst -sha256 -sign KEY')")
    parser.add_argument("--expires", type=float, metavar="DAYS",
                        help="the signature expires after DAYS days: a device then refuses a server that "
                        "keeps serving this release (needs a set clock on the device)")


def run(args):
    """Sign a built release folder's latest, so that devices with keys install it."""
    line = sign_release(args.dist, args.key, args.signer, args.expires)
    print("signed {}: {}".format(Path(args.dist) / LATEST_FILE, line))
