# Certificate pinning: the hash of the key in the server's certificate, read as strict DER.

from ._core import VerifyError, _hex, _sha256
from ._der import _der
from ._http import _PIN_FAILED


def _check_pin(sock, pins):
    # Compare the pins with the server key: ucertpin's form or the standard SPKI SHA-256.
    cert = sock.getpeercert(True)
    if not cert:
        raise VerifyError(_PIN_FAILED + " (no peer certificate)")
    spki, key = _public_key(memoryview(cert))
    for part in (key, spki):
        h = _sha256()
        h.update(part)
        digest = _hex(h.digest())
        for pin in pins:
            if (pin.decode() if isinstance(pin, bytes) else pin).lower() == digest:
                return
    raise VerifyError(_PIN_FAILED)


def _public_key(cert):
    # (whole SubjectPublicKeyInfo, subjectPublicKey BIT STRING contents) of a DER certificate.
    #
    # Strict: every field at its RFC 5280 position, so that nothing else can pass for the key.
    try:
        tag, pos, end = _der(cert, 0, len(cert))  # Certificate
        if tag != 0x30 or end != len(cert):
            raise IndexError
        tag, pos, tbs_end = _der(cert, pos, end)  # tbsCertificate
        tag2, _, sig = _der(cert, tbs_end, end)  # signatureAlgorithm
        tag3, _, sig = _der(cert, sig, end)  # signatureValue
        if tag != 0x30 or tag2 != 0x30 or tag3 != 0x03 or sig != end:
            raise IndexError
        if cert[pos] == 0xA0:  # [0] EXPLICIT version
            _, _, pos = _der(cert, pos, tbs_end)
        for want in b"\x02\x30\x30\x30\x30\x30":  # serial, signature, issuer, validity, subject, SPKI
            spki = pos
            tag, inner, pos = _der(cert, pos, tbs_end)
            if tag != want:
                raise IndexError
        tag, _, inner = _der(cert, inner, pos)  # algorithm
        tag2, bits, end = _der(cert, inner, pos)  # subjectPublicKey
        if tag != 0x30 or tag2 != 0x03 or end != pos:
            raise IndexError
        key = cert[spki:pos], cert[bits:end]
        last = 0
        while pos < tbs_end:  # optional [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions
            tag, _, pos = _der(cert, pos, tbs_end)
            if tag not in (0x81, 0xA1, 0x82, 0xA2, 0xA3) or tag & 3 <= last:
                raise IndexError
            last = tag & 3
        return key
    except IndexError:
        raise VerifyError(_PIN_FAILED + " (unreadable certificate)")
