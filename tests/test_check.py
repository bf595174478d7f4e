"""`uota check URL` judges a published release as a device would, over real HTTP(S) servers.

Each test publishes a release (good, or broken in one way), serves it on 127.0.0.1 and runs
`python -m uota check` as a user does: exit 0 only for a release a device would install.
"""

import hashlib
import tarfile

import pytest

from uota.build import build_release
from uota.check import check_release

from support.fixtures_servers import run_uota, server_pins
from support.hostile import ARCHIVE_RULES, BAD_LATEST, publish_hostile
from support.releases import device_cfg, file_member, publish, tar_members, write_tree

APP = {"main.py": "print('hello')\n", "lib/util.py": "A = 1\n"}


@pytest.fixture
def good_release(tmp_path, dist):
    return build_release(write_tree(tmp_path / "app", APP), "1.1.0", dist)


def check(url, *options):
    result = run_uota("check", url, *options)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def hand_made_release(dist, members, version="1.1.0", free_kb=100):
    archive = tar_members(dist / "firmware.tar.gz", members)
    publish(dist, version, archive, free_kb=free_kb)
    return archive


def symlink_member(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def test_good_release_passes_and_lists_members(good_release, dist, uota_serve):
    result = check(uota_serve(dist))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: a device would install 1.1.0" in result.stdout
    for member in ("lib/", "lib/util.py", "main.py", "version", "uota.files"):
        assert "\n  {}".format(member) in result.stdout
    assert "members:   5" in result.stdout
    assert "window:    4 KB (wbits 12)" in result.stdout  # uota build's default
    assert "range:     HTTP 206" in result.stdout
    assert "warning" not in result.stdout and "problem" not in result.stdout


def test_url_without_trailing_slash_is_the_same_release(good_release, dist, uota_serve):
    assert check(uota_serve(dist).rstrip("/")).returncode == 0


def change_the_archive(release):
    """A byte of the archive changed after `latest` was written."""
    data = bytearray(release.archive_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    release.archive_path.write_bytes(bytes(data))


def change_latest_s_hash(release):
    wrong = hashlib.sha256(b"another archive").hexdigest()
    release.latest_path.write_text(release.latest_line.replace(release.sha256, wrong) + "\n")


@pytest.mark.parametrize("spoil", [change_the_archive, change_latest_s_hash], ids=["tampered-archive", "wrong-hash-in-latest"])
def test_archive_not_matching_latest_s_hash_fails(good_release, dist, uota_serve, spoil):
    spoil(good_release)
    latest_hash = good_release.latest_path.read_text().split(";")[3].strip()
    archive_hash = hashlib.sha256(good_release.archive_path.read_bytes()).hexdigest()

    result = check(uota_serve(dist))

    assert result.returncode == 1
    assert "problem: firmware-1.1.0.tar.gz does not match latest's hash: it is %s, latest says %s" % (
        archive_hash, latest_hash) in result.stdout


def test_missing_version_member_warns_for_the_original_s_devices(dist, uota_serve):
    hand_made_release(dist, [file_member("main.py", b"print(1)\n")])

    result = check(uota_serve(dist))

    assert result.returncode == 0, result.stdout  # uota's install writes the version itself
    assert "warning: the archive has no version member: devices running the original uOTA" in result.stdout


def test_version_member_disagreeing_with_latest_fails(dist, uota_serve):
    hand_made_release(dist, [file_member("version", b"1.0.0\n"), file_member("main.py", b"print(1)\n")])

    result = check(uota_serve(dist))

    assert result.returncode == 1
    assert "problem: a device refuses the release: the archive's version file does not say 1.1.0" in result.stdout


@pytest.mark.parametrize(
    "member, reason",
    [
        pytest.param(symlink_member("main.py", "/etc/passwd"), "archive member 'main.py' is not a regular file or directory", id="symlink"),
        pytest.param(file_member("../x", b"escape"), "unsafe path '../x'", id="dotdot"),
        pytest.param(file_member("/etc/x", b"escape"), "unsafe path '/etc/x'", id="absolute"),
        pytest.param(file_member("lib/../../x", b"escape"), "unsafe path 'lib/../../x'", id="inner-dotdot"),
    ],
)
def test_unsafe_member_fails(dist, uota_serve, member, reason):
    hand_made_release(dist, [file_member("version", b"1.1.0\n"), member])

    result = check(uota_serve(dist))

    assert result.returncode == 1
    assert "problem: a device refuses the release: " + reason in result.stdout


def test_free_space_figure_too_small_fails(good_release, dist, uota_serve):
    latest = "1.1.0;{};1;{}\n".format(good_release.archive_path.name, good_release.sha256)
    good_release.latest_path.write_text(latest)

    result = check(uota_serve(dist))

    assert result.returncode == 1
    needed = "{} kB the release needs".format(good_release.free_kb)
    assert "problem: latest's free space 1 kB is less than the " + needed in result.stdout


@pytest.mark.parametrize("serve", ["uota_serve", "nginx"])
def test_every_bad_latest_is_reported_with_the_reason_devices_give(request, tmp_path, dist, serve):
    # hostile.BAD_LATEST: each `latest` in its own folder of one server
    entries = {entry.id: entry.values for entry in BAD_LATEST}
    for ident, (latest, _) in entries.items():
        (dist / ident).mkdir()
        (dist / ident / "latest").write_text(latest)
    base = request.getfixturevalue(serve)(dist)

    wrong = {}
    for ident, (_, reason) in entries.items():
        report = check_release(base + ident + "/")
        if not any(problem.startswith("invalid latest ") and problem.endswith(": " + reason)
                   for problem in report.problems):
            wrong[ident] = report.problems

    assert wrong == {}


def test_invalid_latest_is_one_problem_line(good_release, dist, uota_serve):
    good_release.latest_path.write_text("1.1.0;../firmware.tar.gz\n")

    result = check(uota_serve(dist))

    assert result.returncode == 1
    assert "problem: invalid latest '1.1.0;../firmware.tar.gz': latest names an unsafe file: " in result.stdout


def test_missing_archive_fails_naming_its_url(good_release, dist, uota_serve):
    good_release.archive_path.unlink()
    url = uota_serve(dist)

    result = check(url)

    assert result.returncode == 1
    assert "problem: firmware-1.1.0.tar.gz: {}firmware-1.1.0.tar.gz answers HTTP 404".format(
        url) in result.stdout.splitlines()


def test_missing_latest_names_the_url_that_answered_404(tmp_path, uota_serve):
    (tmp_path / "empty").mkdir()
    url = uota_serve(tmp_path / "empty")

    result = check(url)

    assert result.returncode == 1
    assert "problem: latest: {}latest answers HTTP 404".format(url) in result.stdout.splitlines()


def test_unreachable_url_is_one_line_error_naming_host_and_port(good_release, tmp_path):
    result = check("http://127.0.0.1:1/")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "uota: cannot connect to 127.0.0.1:1: Connection refused\n"


def test_a_url_that_does_not_parse_is_one_line_error():
    result = check("http://[::1/")

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "uota: 'http://[::1/' is not a URL: Invalid IPv6 URL\n"


def test_latest_without_hash_warns_but_passes(dist, uota_serve):
    archive = tar_members(dist / "firmware.tar.gz", [file_member("version", b"1.1.0\n")])
    publish(dist, "1.1.0", archive, free_kb=100, with_hash=False)

    result = check(uota_serve(dist))

    assert result.returncode == 0
    assert "warning: latest has no SHA-256" in result.stdout


def test_server_ignoring_range_warns(good_release, dist, release_server):
    server = release_server(dist)
    server.honour_range = False  # a plain http.server: 200 and the whole file

    result = check(server.url)

    assert result.returncode == 0
    assert "warning: the server ignores Range (HTTP 200 to bytes=0-0)" in result.stdout
    assert "bytes=0-0" in server.ranges


@pytest.mark.parametrize("form", ["ucertpin", "spki"])
def test_right_pin_passes_against_uota_serve_tls(good_release, dist, uota_serve, form):
    url = uota_serve(dist, tls=True)

    result = check(url, "--pin", server_pins(url)[form].upper())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: a device would install 1.1.0" in result.stdout


def test_wrong_pin_fails_against_uota_serve_tls(good_release, dist, uota_serve):
    result = check(uota_serve(dist, tls=True), "--pin", "ab" * 32)

    assert result.returncode == 1
    assert "the server's key does not match the pin" in result.stdout


def test_a_release_moving_devices_from_https_to_http_fails(tmp_path, dist, release_server, tls_identity):
    app = dict(APP, **{"uota.cfg": repr({"url": "http://updates.example/", "tmp_filename": "fw.tmp"})})
    build_release(write_tree(tmp_path / "app-http", app), "1.1.0", dist)
    server = release_server(dist, tls_context=tls_identity[0])

    result = check(server.url)

    assert result.returncode == 1
    assert "from https to plain http" in result.stdout


def release_moving_devices(tmp_path, dist, url):
    """A release whose uota.cfg moves devices to url (a path on the server under test)."""
    app = dict(APP, **{"uota.cfg": repr({"url": url, "tmp_filename": "fw.tmp"})})
    build_release(write_tree(tmp_path / "app-moving", app), "1.1.0", dist)


@pytest.mark.parametrize("latest, reason", [
    (None, "where latest fails: HTTP 404"),
    ("1.0.5;firmware-1.0.5.tar.gz;0\n", "which offers only 1.0.5"),
    ("1.1.0\n", "where latest fails: "),
])
def test_a_release_moving_devices_to_a_url_that_does_not_offer_it_fails(tmp_path, dist, uota_serve, latest, reason):
    url = uota_serve(dist)
    release_moving_devices(tmp_path, dist, url + "mirror/")
    if latest is not None:
        (dist / "mirror").mkdir()
        (dist / "mirror" / "latest").write_text(latest)

    result = check(url)

    assert result.returncode == 1, result.stdout
    assert "problem: a device refuses the release: the release moves updates to %smirror/, %s" % (url, reason) \
        in result.stdout


def test_a_release_moving_devices_to_a_url_that_offers_it_passes(tmp_path, dist, uota_serve):
    url = uota_serve(dist)
    release_moving_devices(tmp_path, dist, url + "mirror/")
    (dist / "mirror").mkdir()
    (dist / "mirror" / "latest").write_text("1.2.0;firmware-1.2.0.tar.gz;0\n")  # a newer one will do

    result = check(url)

    assert result.returncode == 0, result.stdout


def test_a_release_without_uota_files_warns_that_devices_keep_dropped_files(dist, uota_serve):
    hand_made_release(dist, [file_member("version", b"1.1.0\n"), file_member("main.py", b"print(1)\n")])

    result = check(uota_serve(dist))

    assert result.returncode == 0, result.stdout
    assert "warning: the archive has no uota.files: devices keep the files earlier releases shipped" in result.stdout


def test_a_uota_files_that_does_not_match_the_archive_warns(dist, uota_serve):
    main = b"print(1)\n"
    listed = "%s %d main.py\n0 0 lib/gone.py\n" % (hashlib.sha256(b"print(0)\n").hexdigest(), len(main))
    hand_made_release(dist, [file_member("version", b"1.1.0\n"), file_member("main.py", main),
                             file_member("uota.files", listed.encode())])

    result = check(uota_serve(dist))

    assert result.returncode == 0, result.stdout
    assert "warning: uota.files does not list: " in result.stdout  # version, and main.py as it is
    assert "warning: uota.files lists what the archive does not hold: 0 0 lib/gone.py, " in result.stdout


@pytest.mark.parametrize("serve", ["uota_serve", "nginx"])
def test_every_hostile_release_is_reported_with_the_reason_devices_give(request, tmp_path, serve):
    # hostile.ARCHIVE_RULES: each entry published in its own folder of one server
    entries = {entry.id: entry.values for entry in ARCHIVE_RULES}
    dist = tmp_path / "dist"
    for ident, (members, _) in entries.items():
        folder = dist / ident
        folder.mkdir(parents=True)
        publish_hostile(folder, members)
    base = request.getfixturevalue(serve)(dist)

    wrong = {}
    for ident, (_, reason) in entries.items():
        url = base + ident + "/"
        report = check_release(url, device_cfg=device_cfg(url))  # as the devices of test_device_refuses
        if not any(problem.startswith("a device refuses the release: " + reason) for problem in report.problems):
            wrong[ident] = report.problems

    assert wrong == {}


def test_header_option_is_sent_with_every_request_to_the_release_s_origin(good_release, dist, release_server):
    server = release_server(dist)

    result = check(server.url, "--header", "Authorization: Bearer seven", "--header", "X-Device:board-7")

    assert result.returncode == 0, result.stdout
    assert [path for path, _ in server.heads] == ["/latest", "/firmware-1.1.0.tar.gz", "/firmware-1.1.0.tar.gz"]
    for _, headers in server.heads:
        assert (headers["Authorization"], headers["X-Device"]) == ("Bearer seven", "board-7")


def test_header_option_is_not_sent_after_a_redirect_to_another_origin(good_release, dist, release_server, tmp_path):
    elsewhere = release_server(dist)
    server = release_server(tmp_path)
    server.quirks["/latest"] = ("redirect", (302, elsewhere.url + "latest"))

    check(server.url, "--header", "Authorization: Bearer seven")

    assert elsewhere.heads and all("Authorization" not in headers for _, headers in elsewhere.heads)


@pytest.mark.parametrize("header", ["no colon", ": empty name", "X-Bad\\x01: v", "Host: other"])
def test_a_header_devices_would_refuse_is_a_one_line_error(good_release, dist, uota_serve, header):
    result = check(uota_serve(dist), "--header", header.replace("\\x01", "\x01"))

    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr


def test_cfg_option_judges_the_release_as_devices_with_that_uota_cfg(dist, uota_serve, tmp_path):
    hand_made_release(dist, [file_member("version", b"1.1.0\n"), file_member("fw.tmp", b"x")])
    url = uota_serve(dist)
    cfg_file = tmp_path / "uota.cfg"
    cfg_file.write_text(device_cfg(url))  # tmp_filename fw.tmp: the archive would overwrite the download

    default, with_cfg = check(url), check(url, "--cfg", cfg_file)

    assert default.returncode == 0, default.stdout  # a device downloading into uota.tmp installs it
    assert with_cfg.returncode == 1
    assert "problem: a device refuses the release: archive would overwrite 'fw.tmp'" in with_cfg.stdout


def test_free_kb_reports_whether_devices_with_that_much_flash_free_have_room(good_release, dist, uota_serve):
    url = uota_serve(dist)
    needed = int(next(line for line in check(url).stdout.splitlines() if line.startswith("install:")).split()[1])

    enough, short = check(url, "--free-kb", needed), check(url, "--free-kb", needed - 1)

    assert enough.returncode == 0, enough.stdout
    assert short.returncode == 1
    assert "problem: a device with %d kB free refuses the release: its install needs %d kB at its peak" % (
        needed - 1, needed) in short.stdout


# ---------------------------------------------------------------- delta releases


@pytest.fixture
def delta_release(tmp_path, dist):
    app = dict(APP, **{"lib/data.py": "DATA = %r\n" % bytes(range(256)).hex() * 8})  # unchanged: a delta is smaller
    old = build_release(write_tree(tmp_path / "app-1.0", app), "1.0.0", tmp_path / "old")
    new = dict(app, **{"lib/util.py": "A = 2\n"})
    return build_release(write_tree(tmp_path / "app-1.1", new), "1.1.0", dist, delta_from=[old.archive_path])


def test_deltas_are_checked_and_listed(delta_release, dist, uota_serve):
    result = check(uota_serve(dist))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deltas:    from 1.0.0 (%d bytes)" % delta_release.deltas[0].size in result.stdout
    assert "warning" not in result.stdout


@pytest.mark.parametrize("spoil, warning", [
    ("index", "does not match latest's delta= hash"),
    ("delta", "does not match its SHA-256 or size in the index"),
    ("missing", "HTTP 404"),
])
def test_a_broken_delta_is_a_warning_as_devices_take_the_full_release(delta_release, dist, uota_serve, spoil, warning):
    target = {"index": dist / "firmware-1.1.0.tar.gz.deltas", "delta": delta_release.deltas[0].path,
              "missing": delta_release.deltas[0].path}[spoil]
    if spoil == "missing":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes() + b"x")
    result = check(uota_serve(dist))
    assert result.returncode == 0, result.stdout + result.stderr
    assert warning in result.stdout
    assert "deltas:" not in result.stdout
