# Strict DER, for the keys uota reads: a server's in its certificate (_pin), a release
# signer's in a key file (_signature).


def _der(buf, pos, end):
    # (tag, start of contents, end) of the DER element at pos, which must end by `end`.
    # DER only: a definite length, in long form only from 128 on, in 1 to 4 bytes with no
    # leading zero. Anything else raises IndexError, as running off the buffer does.
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        count, n = n & 0x7F, 0
        if not 0 < count < 5 or not buf[pos]:  # 0x80 is BER's indefinite length
            raise IndexError
        for _ in range(count):
            n = n << 8 | buf[pos]
            pos += 1
        if n < 0x80:
            raise IndexError
    n += pos
    if n > end:
        raise IndexError
    return tag, pos, n
