# Signed releases: the line of `latest` that names a release, signed by a key the device
# trusts (uota.cfg's 'keys': files holding PEM public keys). RSA, PKCS #1 v1.5 with SHA-256
# and the exponent 65537: a device checks it with big integers alone, 17 multiplications,
# and every signing service and hardware token makes such signatures.

import binascii

from ._core import VerifyError, _read_text, _sha256
from ._der import _der

# What is signed: this prefix, then the line of `latest` up to its ";sig=" field.
DOMAIN = b"uota release v1\n"
# DER of the DigestInfo that precedes a SHA-256 digest in a PKCS #1 v1.5 signature.
_DIGEST_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
_RSA_ALGORITHM = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"  # rsaEncryption, NULL
_KEYID_HEX = 16  # a key is named by the first 16 hex digits of its SubjectPublicKeyInfo's SHA-256


def unix_time():
    # Seconds since 1970: boards count from 2000 (their time.gmtime(0) says so), the unix
    # and WebAssembly ports from 1970. A board whose clock was never set reads 2000.
    import time

    try:
        epoch = time.gmtime(0)[0]
    except AttributeError:  # MicroPython 1.20's WebAssembly port
        epoch = 1970
    return int(time.time()) + (946684800 if epoch == 2000 else 0)


def check_signature(keys, signed, named, now, read=_read_text):
    # VerifyError unless `signed` (parse_latest's) carries a good signature, by one of the
    # key files `keys` (their text read by `read`), over a size and a SHA-256, unexpired at
    # `now` (Unix seconds).
    sig = named.get("sig")
    if signed is None or not sig:
        raise VerifyError("latest is not signed, and this device installs only signed releases")
    if len(signed.split(";")) < 4 or "size" not in named:
        raise VerifyError("latest: the signature must cover the archive's SHA-256 and size")
    keyid, _, encoded = sig.partition(":")
    for path in keys:
        spki = key_spki(read(path), path)
        if key_id(spki) == keyid:
            break
    else:
        raise VerifyError("latest is signed by key %s, which this device does not trust" % keyid)
    try:
        signature = binascii.a2b_base64(encoded.encode())
    except (ValueError, TypeError):
        signature = b""  # bad, as CPython's decoder, which skips what is not base64, finds it
    h = _sha256()
    h.update(DOMAIN)
    h.update(signed.encode())
    if not _rsa_verifies(_modulus(spki), signature, h.digest()):
        raise VerifyError("latest: bad signature by key %s" % keyid)
    expires = int(named.get("expires", "0"))
    if expires and now > expires:
        raise VerifyError("latest: the signature expired %d hours ago: the server may be replaying an old release"
                          % ((now - expires) // 3600))


def check_keys(keys, cfg, buf):
    # {path: PEM text} of the key files the device trusts after the install, the release's
    # or else the device's own; VerifyError unless each is a key it can check signatures with.
    from ._verify import shipped

    texts = shipped(cfg, buf, keys)
    for path in keys:
        if path not in texts:
            texts[path] = _read_text(path)
        key_spki(texts[path], path)
    return texts


def key_spki(pem, path):
    # The DER SubjectPublicKeyInfo in the PEM text of the key file `path` (None: missing).
    begin, end = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    if pem is None or begin not in pem or end not in pem:
        raise VerifyError("key %s is missing or not a PEM public key" % path)
    try:
        spki = binascii.a2b_base64("".join(pem[pem.find(begin) + len(begin) : pem.find(end)].split()).encode())
    except (ValueError, TypeError):
        raise VerifyError("key %s is not base64" % path)
    try:
        _modulus(spki)
    except VerifyError as e:
        raise VerifyError("key %s: %s" % (path, e))
    return spki


def key_id(spki):
    h = _sha256()
    h.update(spki)
    return binascii.hexlify(h.digest())[:_KEYID_HEX].decode()


def _modulus(spki):
    # (n, its length in bytes) of an RSA SubjectPublicKeyInfo with e = 65537 and 2048 to
    # 4096 bits, read as strict DER; VerifyError else.
    buf = memoryview(spki)
    try:
        tag, pos, end = _der(buf, 0, len(buf))  # SubjectPublicKeyInfo
        tag2, alg, bits = _der(buf, pos, end)  # AlgorithmIdentifier
        tag3, pos, key_end = _der(buf, bits, end)  # subjectPublicKey BIT STRING
        if (tag, tag2, tag3) != (0x30, 0x30, 0x03) or end != len(buf) or key_end != end or buf[pos]:
            raise IndexError  # buf[pos]: the BIT STRING's count of unused bits
        if bytes(buf[alg:bits]) != _RSA_ALGORITHM:
            raise IndexError
        tag, pos, end = _der(buf, pos + 1, end)  # RSAPublicKey
        tag2, start, n_end = _der(buf, pos, end)  # modulus
        tag3, e_start, e_end = _der(buf, n_end, end)  # publicExponent
        if (tag, tag2, tag3) != (0x30, 0x02, 0x02) or end != key_end or e_end != end:
            raise IndexError
        if bytes(buf[e_start:e_end]) != b"\x01\x00\x01":
            raise IndexError
        k = n_end - start - 1  # a positive INTEGER with its top bit set starts with a 0 byte
        if buf[start] or buf[start + 1] < 0x80 or not 256 <= k <= 512:
            raise IndexError
    except IndexError:
        raise VerifyError("not an RSA public key of 2048 to 4096 bits with exponent 65537")
    return int.from_bytes(bytes(buf[start + 1 : n_end]), "big"), k


def _rsa_verifies(key, signature, digest):
    # Compare the whole encoding the signature must open to: no parsing of attacker's bytes.
    n, k = key
    s = int.from_bytes(signature, "big")
    if len(signature) != k or s >= n:
        return False
    m = s
    for _ in range(16):  # s ** 65537 mod n
        m = m * m % n
    m = m * s % n
    expected = b"\x00\x01" + b"\xff" * (k - 3 - len(_DIGEST_INFO) - len(digest)) + b"\x00" + _DIGEST_INFO + digest
    return m == int.from_bytes(expected, "big")
