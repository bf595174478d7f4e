# The `latest` file and the order of versions.

from ._core import VerifyError, _plain

_LATEST_MAX = 1024  # a longer `latest` is refused; a signed one (RSA-4096) takes about 900


def parse_latest(text):
    # `version;filename[;free_kB[;sha256[;name=value...]]]` -> (version, filename, free_kb,
    # sha256 or None, {name: value} of the named fields, the text the signature covers or
    # None). Named fields after the fourth are what the original's parser ignores: `size`,
    # `expires`, `rollout` (the percentage of devices offered the release) and `sig`, the
    # signature of everything before it, which comes last.
    if len(text) > _LATEST_MAX + 2:
        raise VerifyError("latest is longer than %d bytes" % _LATEST_MAX)
    line = text.strip()
    if line.endswith(";"):
        line = line[:-1]
    if not line or "\n" in line or "<" in line:
        raise VerifyError("latest is not a version;filename line")
    fields = line.split(";")
    if len(fields) < 2:
        raise VerifyError("latest needs at least version;filename")
    version, filename = fields[0].strip(), fields[1].strip()
    parse_version(version)
    if not filename or not _plain(filename, "._-+~") or filename in (".", ".."):
        raise VerifyError("latest names an unsafe file: %r" % filename)  # it goes into a URL
    free_kb = 0
    if len(fields) > 2:
        kb = fields[2].strip()
        if not kb.isdigit():
            raise VerifyError("latest: free space must be a whole number of kB, not %r" % kb)
        free_kb = int(kb)
    sha = None
    if len(fields) > 3:
        sha = fields[3].strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise VerifyError("latest: the hash is not 64 hex digits")
    named = {}
    for field in fields[4:]:
        name, _, value = field.partition("=")
        named[name.strip()] = value.strip()
    for name in ("size", "expires", "rollout"):
        if not named.get(name, "0").isdigit():
            raise VerifyError("latest: %s must be a whole number" % name)
    if int(named.get("rollout", "0")) > 100:
        raise VerifyError("latest: rollout is a percentage, at most 100")
    signed = None
    if "sig" in named:
        if not fields[-1].startswith("sig="):
            raise VerifyError("latest: the signature must be the last field")
        signed = line[: len(line) - len(fields[-1]) - 1]
    return version, filename, free_kb, sha, named, signed


def parse_version(version):
    # (release parts, pre-release) of a version, for compare_versions; VerifyError if invalid.
    if not version or len(version) > 64:
        raise VerifyError("invalid version %r" % version)
    for c in version:  # ASCII only: MicroPython and CPython agree on what a letter is
        if not ("0" <= c <= "9" or "a" <= c <= "z" or "A" <= c <= "Z" or c in ".+-_"):
            raise VerifyError("invalid version %r" % version)
    release = version.split("+")[0]  # build metadata does not order versions
    cut = len(release)
    for sep in "-_":
        i = release.find(sep)
        if 0 <= i < cut:
            cut = i
    release, pre = release[:cut], release[cut + 1 :]
    parts = [_natural(p) for p in release.split(".")]
    # a release sorts after its pre-releases
    return parts, (1,) if not pre else (0, [_natural(p) for p in pre.split(".")])


_ZERO = [(2, 0), (1,)]


def _natural(part):
    # "rc10" -> [(0,'rc'), (2,10), (1,)]: digit runs compare as numbers, and numbers never
    # lose to letters: a run of letters sorts below the part's end (1,), a number above it.
    # So 1.0a < 1.0 < 1.0.1 and v1 < 0.1; each key's first item keeps int from str.
    out = []
    i = 0
    while i < len(part):
        j = i
        digits = part[i].isdigit()
        while j < len(part) and part[j].isdigit() == digits:
            j += 1
        out.append((2, int(part[i:j])) if digits else (0, part[i:j]))
        i = j
    if not out:
        out.append((2, 0))
    out.append((1,))
    return out


def compare_versions(a, b):
    (pa, ra), (pb, rb) = parse_version(a), parse_version(b)
    for i in range(max(len(pa), len(pb))):  # a missing part is a 0: 1 == 1.0, 1.0a < 1
        x = pa[i] if i < len(pa) else _ZERO
        y = pb[i] if i < len(pb) else _ZERO
        if x != y:
            return 1 if x > y else -1
    return (ra > rb) - (ra < rb)
