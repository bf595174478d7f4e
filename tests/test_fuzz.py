"""Hostile and broken input to the device module's parsers, generated and mutated.

Every input gives the right result or raises the module's own `UotaError`; no archive writes
outside the device root or leaves it half-installed; no number read from the input makes the
module allocate in proportion to it. The checks are fuzz/invariants.py, shared with the
atheris harnesses in fuzz/, which the last test runs briefly so that they keep working.
(A decompression bomb is tests/test_device_refuses.py's.)
"""

import ast
import functools
import gzip
import io
import subprocess
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from uota.device.uota import _cfg, _core, _fetch, _install, _latest, _response, _tar, _url
from invariants import (
    VERSION,
    ByteStream,
    check_cfg,
    check_http,
    check_latest,
    check_request,
    check_version,
    fix_tar_checksums,
    install_archive,
    install_tar,
    read_response,
)

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"

# Moderate counts keep the file near a minute; database=None writes no .hypothesis folder.
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def flip(data, positions):
    data = bytearray(data)
    for pos, mask in positions:
        if data:
            data[pos % len(data)] ^= mask or 1
    return bytes(data)


flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)

# ---------------------------------------------------------------- versions

release_part = st.one_of(st.integers(0, 999).map(str), st.from_regex(r"[0-9]{0,2}[a-z]{1,3}[0-9]{0,2}", fullmatch=True))
versions = st.builds(
    lambda release, pre, build: ".".join(release) + ("-" + ".".join(pre) if pre else "") + ("+" + build if build else ""),
    st.lists(release_part, min_size=1, max_size=4),
    st.lists(release_part, max_size=2),
    st.from_regex(r"[a-z0-9]{0,5}", fullmatch=True),
).filter(lambda v: len(v) <= 64)


@given(versions, versions)
@FAST
def test_version_order_is_antisymmetric(a, b):
    assert _latest.compare_versions(a, b) == -_latest.compare_versions(b, a)


@given(st.lists(versions, min_size=3, max_size=8))
@FAST
def test_version_order_is_transitive(some):
    ordered = sorted(some, key=functools.cmp_to_key(_latest.compare_versions))
    for i, low in enumerate(ordered):
        for high in ordered[i + 1 :]:
            assert _latest.compare_versions(low, high) <= 0, (low, high)


@given(st.lists(st.integers(0, 999).map(str), min_size=1, max_size=4), st.integers(1, 3))
@FAST
def test_trailing_zero_parts_do_not_change_a_version(parts, zeros):
    version = ".".join(parts)
    assert _latest.compare_versions(version, version + ".0" * zeros) == 0
    assert _latest.compare_versions("1.0", "1.0.0") == 0


@given(st.text(max_size=80))
@FAST
def test_any_text_is_a_version_or_a_uota_error(text):
    check_version(text)


# ---------------------------------------------------------------- latest

filenames = st.from_regex(r"[A-Za-z0-9_+~-][A-Za-z0-9_.+~-]{0,40}", fullmatch=True).filter(lambda f: f not in (".", ".."))
hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(versions, filenames, st.none() | st.integers(0, 10**9), st.none() | hashes, st.sampled_from(["", "\n", "\r\n", ";\n"]))
@FAST
def test_latest_line_reads_back_as_written(version, filename, free_kb, sha, ending):
    fields = [version, filename] + ([str(free_kb)] if free_kb is not None or sha else []) + ([sha] if sha else [])
    if sha and free_kb is None:
        fields[2] = "0"
    assert _latest.parse_latest(";".join(fields) + ending)[:4] == (version, filename, free_kb or 0, sha)


@given(st.text(max_size=700))
@FAST
@example("1.0;a;" + "9" * 500)
def test_any_text_is_a_latest_or_a_uota_error(text):
    check_latest(text)


@given(versions, filenames, hashes, flips)
@FAST
def test_mutated_latest_is_well_formed_or_a_uota_error(version, filename, sha, positions):
    line = ("%s;%s;12;%s\n" % (version, filename, sha)).encode()
    try:
        text = flip(line, positions).decode()
    except UnicodeDecodeError:
        return  # the device refuses a latest that is not text before parsing it
    check_latest(text)


# ---------------------------------------------------------------- uota.cfg

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(max_codepoint=0xFF), max_size=20)  # repr() escapes others as \u, which the reader refuses
)
literals = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(st.characters(max_codepoint=0xFF), max_size=8) | st.integers(), inner, max_size=4),
    max_leaves=12,
)


def depth(value):
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max(map(depth, value), default=0)
    return 0


@given(st.dictionaries(st.text(st.characters(max_codepoint=0xFF), max_size=10), literals, max_size=6).filter(lambda d: depth(d) <= 8))
@FAST
def test_cfg_literal_reads_back_as_python_wrote_it(cfg):
    assert repr(_cfg.parse_cfg(repr(cfg))) == repr(cfg)


cfg_alphabet = st.sampled_from(list("{}[](),:'\"\\#\n -+.e0123456789xabTrueFalsNn_") + ["True", "None", "'a'", "1.5", "\\x4"])


@given(st.lists(cfg_alphabet, max_size=40).map("".join))
@FAST
@example("{'a': (1)}")
@example("{'a': '\\01'}")
def test_cfg_reader_agrees_with_python_whenever_both_accept(text):
    ours = check_cfg(text)
    try:
        python = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return  # the reader may accept a little more (e.g. 01), never read something else
    if ours is not None:
        assert repr(ours) == repr(python)


@given(st.text(max_size=300))
@FAST
def test_any_text_is_a_cfg_or_a_uota_error(text):
    check_cfg(text)


# ---------------------------------------------------------------- HTTP responses

header_names = st.sampled_from(["Server", "Date", "Content-Type", "ETag", "X-Thing", "Set-Cookie", "location-ish"])
header_values = st.from_regex(r"[ -~]{0,60}", fullmatch=True).map(str.strip)


def encode_chunked(body, cuts, extension):
    points = sorted({0, len(body)} | {c % (len(body) + 1) for c in cuts})
    out = b""
    for start, end in zip(points, points[1:]):
        out += b"%X%s\r\n%s\r\n" % (end - start, extension, body[start:end])
    return out + b"0\r\n\r\n"


@given(
    st.integers(100, 599),
    st.lists(st.tuples(header_names, header_values), max_size=5),
    st.binary(max_size=3000),
    st.sampled_from(["length", "chunked", "close"]),
    st.lists(st.integers(0, 3000), max_size=6),
    st.sampled_from([b"", b";name=value"]),
    st.integers(1, 2000),
)
@FAST
def test_http_response_reads_back_as_sent(status, headers, body, framing, cuts, extension, piece):
    head = b"HTTP/1.1 %d Whatever\r\n" % status + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
    if framing == "length":
        raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + encode_chunked(body, cuts, extension)
    else:
        raw = head + b"\r\n" + body
    assert read_response(ByteStream(raw, piece)) == (status, body)


@given(st.binary(max_size=2000), st.integers(1, 64))
@FAST
def test_any_bytes_are_a_response_or_a_uota_error(data, piece):
    check_http(data, piece)


@given(st.binary(max_size=1500), st.sampled_from(["length", "chunked"]), flips, st.integers(0, 2000))
@FAST
@example(b"", "length", [(9, 0)], 2000)
def test_mutated_response_is_read_or_a_uota_error(body, framing, positions, cut):
    head = b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Range: bytes 1-2/3\r\n"
    raw = head + (b"Content-Length: %d\r\n\r\n" % len(body) + body if framing == "length" else b"Transfer-Encoding: chunked\r\n\r\n" + encode_chunked(body, [700], b""))
    check_http(flip(raw, positions)[: cut or None])


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b))
@FAST
@example(b"\xff\xfe")
@example(b"/a b")
@example(b"/a\rX-Injected: 1")
def test_location_that_is_not_text_is_a_uota_error(value):
    check_http(b"HTTP/1.1 302 Found\r\nLocation: " + value + b"\r\nContent-Length: 0\r\n\r\n")


# ---------------------------------------------------------------- HTTP requests

url_pieces = st.sampled_from(
    ["http://", "https://", "127.0.0.1", "Example.COM", ":", "8080", "99999", "/", "@", "user", "?", "#",
     "%0d%0a", " ", "\t", "\r\n", "\x00", "\x7f", "\u00e9", "[::1]", "a", "-", "."]
)
urls = st.one_of(st.lists(url_pieces, max_size=8).map("".join), st.text(max_size=40))
header_text = st.one_of(st.sampled_from(["Authorization", "X-A", "Bearer x", "a\tb", "", " ", ":", "\r\n", "\u212a"]), st.text(max_size=12))


@given(urls, st.dictionaries(header_text, header_text, max_size=3), st.integers(0, 10**6))
@FAST
@example("http://h/a", {"X-A": "v\r\nX-Injected: 1"}, 0)
@example("http://h/a b", {}, 0)
@example("http://user@h/", {}, 0)
@example("http://h/", {"\u212a": "1"}, 0)
def test_any_url_and_headers_make_exactly_the_request_meant_or_a_uota_error(url, headers, offset):
    check_request(url, headers, offset)


@given(st.text(max_size=60))
@FAST
def test_any_url_is_split_into_safe_parts_or_a_uota_error(url):
    try:
        scheme, host, port, path = _url._split_url(url)
    except _core.UotaError:
        return
    assert url.startswith(scheme + "://") and host and host == host.lower()
    assert all(c.isascii() and (c.isalnum() or c in ".-[]:") for c in host)
    assert all("!" <= c <= "~" for c in path) and path.startswith("/")


# ---------------------------------------------------------------- archives


def make_tar(fmt, files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


RELEASE = {
    "version": VERSION.encode(),
    "main.py": b"print('new')\n",
    "lib/" + "d" * 70 + "/" + "long_module_name_" * 3 + ".py": b"A = 1\n",  # over 100 bytes
    "data.bin": bytes(range(256)) * 3,
}
TARS = {fmt: make_tar(fmt, RELEASE) for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT)}
tar_formats = st.sampled_from(sorted(TARS))


def installed_files(tar):
    """What a correct install of tar leaves on the device, as Python's tarfile reads it."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile() and m.name not in ("version", "wifi.json")}


@given(tar_formats)
@settings(max_examples=3, deadline=None, database=None)
def test_unmutated_archives_install(fmt):
    after = install_tar(TARS[fmt])
    assert after is not None
    for name, data in installed_files(TARS[fmt]).items():
        assert after[name] == data


@given(tar_formats, flips)
@SLOW
def test_archive_with_flipped_compressed_bytes_is_refused_or_intact(fmt, positions):
    after = install_archive(flip(gzip.compress(TARS[fmt], mtime=0), positions))
    if after is not None:  # a flip in the gzip header's mtime or OS byte changes nothing
        assert all(after[name] == data for name, data in installed_files(TARS[fmt]).items())


@given(tar_formats, st.integers(0, 10**6))
@SLOW
def test_truncated_archive_is_refused(fmt, length):
    whole = gzip.compress(TARS[fmt], mtime=0)
    assert install_archive(whole[: length % len(whole)]) is None


@given(tar_formats, flips)
@SLOW
def test_archive_with_mutated_tar_headers_is_refused_or_installs_what_it_says(fmt, positions):
    tar = fix_tar_checksums(flip(TARS[fmt], positions))
    after = install_tar(tar)
    if after is not None:
        try:
            expected = installed_files(tar)
        except tarfile.TarError:
            return  # Python's reader is stricter here; the device root was still checked
        for name, data in expected.items():
            assert after.get(name.rstrip("/")) in (data, None), name


@pytest.mark.parametrize(
    "size_field",
    [
        pytest.param(b"77777777777\0", id="octal-maximum"),
        pytest.param(b"\x80" + (10**12).to_bytes(11, "big"), id="base-256-ten-to-the-twelve"),
    ],
)
def test_huge_size_field_is_refused(size_field):
    tar = bytearray(TARS[tarfile.USTAR_FORMAT])
    tar[124:136] = size_field  # the first member's
    assert install_tar(bytes(tar)) is None


def pax_header(records):
    """A pax 'x' header block and its data, then a one-byte file member."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(records)
    data = records + b"\0" * (-len(records) % 512)
    member = tarfile.TarInfo("file.py")
    member.size = 1
    return info.tobuf(tarfile.USTAR_FORMAT) + data + member.tobuf(tarfile.USTAR_FORMAT) + b"x" + b"\0" * 511


pax_records = st.lists(
    st.tuples(st.integers(-20, 2000) | st.none(), st.sampled_from([b"path", b"size", b"mtime", b"linkpath", b""]), st.binary(max_size=30)),
    min_size=1,
    max_size=4,
)


def render_pax(records):
    out = b""
    for length, key, value in records:
        body = b" %s=%s\n" % (key, value)
        n = length if length is not None else len(body) + len(str(len(body) + 2))
        out += str(n).encode() + body
    return out


@given(pax_records)
@SLOW
@example([(0, b"path", b"x")])
@example([(-5, b"path", b"x")])
def test_pax_records_are_read_or_refused(records):
    install_tar(pax_header(render_pax(records)) + b"\0" * 1024)


@given(st.binary(min_size=1, max_size=300))
@SLOW
@example(b"\xff\xfe")
def test_long_names_are_read_or_refused(name):
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = len(name) + 1
    member = tarfile.TarInfo("x")
    tar = info.tobuf(tarfile.USTAR_FORMAT) + name + b"\0" * (511 - len(name) % 512) + member.tobuf(tarfile.USTAR_FORMAT)
    install_tar(tar + b"\0" * 1024)


@pytest.mark.parametrize("order", [["x", "x/y"], ["x/y", "x"]], ids=["file-then-under-it", "under-it-then-file"])
def test_archive_using_one_path_as_file_and_folder_changes_nothing(order):
    refused = install_tar(make_tar(tarfile.USTAR_FORMAT, dict({"version": VERSION.encode()}, **{name: b"1" for name in order}))) is None
    assert refused


# Names spelled from pieces of other names: separators, dots, spaces, case, FAT's
# short-name tilde; the invariants check each installed path is canonical and that the
# excluded wifi.json keeps its bytes.
alias_names = st.lists(
    st.sampled_from(["wifi.json", "WIFI.JSON", "Wifi.json", "/", "//", ".", "..", " ", "~1", "lib", "uota.cfg", "UOTA.CFG", "version", ":"]),
    min_size=1, max_size=5).map("".join)


@given(st.lists(alias_names, min_size=1, max_size=4), tar_formats)
@FAST
def test_member_names_install_in_canonical_form_or_are_refused(names, fmt):
    members = dict.fromkeys(names, b"hostile")
    members["version"] = VERSION.encode()
    install_tar(make_tar(fmt, members))


# ---------------------------------------------------------------- memory

MEMORY_BOUND = 256 * 1024


class EndlessStream(ByteStream):
    """`head`, then `fill` repeated up to `length` bytes in all, produced as it is read."""

    def __init__(self, head, fill, length):
        super().__init__(head)
        self.fill = fill
        self.left = length - len(head)

    def readinto(self, buf):
        n = super().readinto(buf)
        if n or self.left <= 0:
            return n
        n = min(len(buf), self.left)
        for i in range(0, n, len(self.fill)):
            buf[i : min(i + len(self.fill), n)] = self.fill[: min(len(self.fill), n - i)]
        self.left -= n
        return n


def peak_allocation(action):
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_archive_of_many_distinct_folders_is_refused_within_a_memory_bound():
    def archive_of(paths):
        tar = make_tar(tarfile.GNU_FORMAT, dict({"version": VERSION.encode()}, **dict.fromkeys(paths, b"")))
        return gzip.compress(tar, mtime=0)

    many = archive_of(["%d/%sx" % (i, "a/" * 100) for i in range(400)])  # 40,000 folders in 6 kB
    one = archive_of(["x"])
    assert install_archive(many) is None
    extra = peak_allocation(lambda: install_archive(many)) - peak_allocation(lambda: install_archive(one))
    assert extra < 4 * MEMORY_BOUND  # 2000 path hashes at most (CPython's ints); unbounded: 3.4 MB


def read_some_body(stream, amount=1 << 20):
    line = bytearray(_response._LINE_MAX)
    response = _response._Response(stream, _response._read_head(stream, line), line)
    buf = memoryview(bytearray(_fetch._CHUNK))  # the download's buffer
    while amount > 0:
        amount -= response.readinto(buf)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % 10**12, id="content-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % 10**12, id="chunk-size"),
    ],
)
def test_huge_announced_length_allocates_nothing_in_proportion(head):
    assert peak_allocation(lambda: read_some_body(EndlessStream(head, b"z" * 512, 10**12))) < MEMORY_BOUND


@pytest.mark.parametrize("fill", [b"a", b"X-A: b\r\n"], ids=["one-header-line", "endless-header-lines"])
def test_gigabyte_of_headers_is_refused_without_reading_it_all(fill):
    stream = EndlessStream(b"HTTP/1.1 200 OK\r\nX-Long: ", fill, 10**9)

    def read_head():
        with pytest.raises(_core.DownloadError):
            _response._read_head(stream, bytearray(_response._LINE_MAX))

    assert peak_allocation(read_head) < MEMORY_BOUND
    assert stream.left > 10**9 - 10**5


def test_tar_size_of_ten_to_the_twelve_allocates_nothing_in_proportion(tmp_path):
    archive = tmp_path / "big.tar.gz"
    records = render_pax([(None, b"size", b"%d" % 10**12)])
    archive.write_bytes(gzip.compress(pax_header(records)[:-512] + b"z" * 300_000, mtime=0))

    def read_members():
        tar = _tar._Tar(str(archive), bytearray(_install._CHUNK))
        try:
            assert tar.next() == "file.py" and tar.left == 10**12
            with pytest.raises(_core.VerifyError):
                tar.next()  # skipping it runs into the end of the data
        finally:
            tar.close()

    assert peak_allocation(read_members) < MEMORY_BOUND


# ---------------------------------------------------------------- atheris harnesses


HARNESS_RUNS = {"fuzz_latest": 20000, "fuzz_cfg": 20000, "fuzz_http": 20000, "fuzz_tar": 300}  # ~2 s each


@pytest.mark.parametrize("harness", sorted(HARNESS_RUNS))
def test_atheris_harness_runs(harness, tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if harness == "fuzz_tar":
        for fmt, tar in TARS.items():
            (corpus / ("release-%d.tar" % fmt)).write_bytes(tar)
    result = subprocess.run(
        [sys.executable, str(FUZZ_DIR / (harness + ".py")), "-atheris_runs=%d" % HARNESS_RUNS[harness], "-seed=1", str(corpus)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
