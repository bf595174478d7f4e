"""The device module updates a virtual device end to end, on CPython and real MicroPython.

Each test serves a real .tar.gz from a real HTTP server on 127.0.0.1 and runs the real
device module on the runtime under test (`runtime` fixture: cpython, mp120, mp129).
"""

import ast
import gzip
import tarfile

import pytest

from uota.build import gzip_with_window
from uota.pin import pins_for_certificate

from support.fixtures_servers import free_port
from support.releases import apart_from_refusal, assert_update_changes_nothing, Device, device_cfg, publish, tar_python, write_tree
from support.standard import CUT_INSTALL, NEW, OLD, expected_after_update, make_device, release

def test_update_installs_release_made_with_tar(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == expected_after_update(before, NEW)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT], ids=["pax", "gnu", "ustar"])
def test_update_installs_release_made_with_python_tarfile_and_long_names(runtime, tmp_path, dist, server, fmt):
    long_dir = "lib/" + "d" * 60 + "/" + "e" * 60  # over 100 bytes: ustar prefix, GNU L or pax path
    files = dict(NEW, **{long_dir + "/module_with_a_long_name.py": "C = 4\n"})
    release(dist, tmp_path, files, maker=lambda s, a: tar_python(s, a, fmt))
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == expected_after_update(before, files)


@pytest.mark.parametrize("device_version, offered", [(OLD["version"], "1.0.0"), ("1.10", "1.9")],
                         ids=["same", "older"])
def test_a_release_not_newer_than_the_device_s_is_not_downloaded(runtime, tmp_path, dist, server, device_version, offered):
    release(dist, tmp_path, version=offered, files=dict(NEW, version=offered))
    device = make_device(runtime, tmp_path, server.url, files=dict(OLD, version=device_version))
    before = device.files()

    result, log = device.update()

    assert result == "False False", log
    assert device.files() == before
    assert server.requests == ["/latest"]


def test_version_ten_is_newer_than_nine(runtime, tmp_path, dist, server):
    release(dist, tmp_path, version="10.0", files=dict(NEW, version="10.0"))
    device = make_device(runtime, tmp_path, server.url, files=dict(OLD, version="9.0"))

    result, log = device.update()

    assert result == "True True", log
    assert device.files()["version"] == b"10.0"


def test_version_check_off_reinstalls_the_same_version(runtime, tmp_path, dist, server):
    release(dist, tmp_path, version="1.0.0", files=dict(NEW, version="1.0.0"))
    device = make_device(runtime, tmp_path, server.url)

    result, log = device.update(version_check=False)

    assert result == "True True", log
    assert device.files()["main.py"] == b"print('new')\n"


def test_missing_version_file_is_a_clear_error(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    files = dict(OLD)
    del files["version"]
    device = make_device(runtime, tmp_path, server.url, files=files)

    result, log = device.update()

    assert result == "False False"
    assert "no version file" in log


def test_excluded_directory_protects_everything_under_it(runtime, tmp_path, dist, server):
    release(dist, tmp_path, files=dict(NEW, **{"certs/ca.der": b"new-ca", "certs/sub/k.der": b"new-k"}))
    device = make_device(
        runtime, tmp_path, server.url,
        files=dict(OLD, **{"certs/ca.der": b"old-ca"}),
        excluded_files=["wifi.json", "certs/"],
    )

    result, log = device.update()

    files = device.files()
    assert result == "True True", log
    assert files["certs/ca.der"] == b"old-ca"
    assert "certs/sub/k.der" not in files


def test_delete_list_of_the_new_cfg_is_applied(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url, files=dict(OLD, **{"old.py": "x", "olddir/a.py": "y", "olddir/b/c.py": "z"}))
    new_cfg = device_cfg(server.url, delete=["old.py", "olddir", "never-existed.py"])
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": new_cfg}))

    result, log = device.update()

    files = device.files()
    assert result == "True True", log
    assert not [n for n in files if n.startswith("old")]
    assert files["uota.cfg"] == new_cfg.encode()


def test_the_device_s_own_settings_survive_a_release_cfg(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url, excluded_files=["wifi.json", "certs"],
                         device_id="board-7", headers={"Authorization": "Bearer seven"}, local=["site"], site="lab")
    new_cfg = device_cfg(server.url, excluded_files=["logs"], timeout=20, device_id="template", site="default")
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": new_cfg}))

    result, log = device.update()

    assert result == "True True", log
    cfg = ast.literal_eval(device.files()["uota.cfg"].decode())
    assert cfg == {"url": server.url, "tmp_filename": "fw.tmp", "delete": [], "timeout": 20,  # the release's
                   "device_id": "board-7", "headers": {"Authorization": "Bearer seven"},  # the device's own
                   "local": ["site"], "site": "lab",  # what the device marks as its own
                   "excluded_files": ["logs", "wifi.json", "certs"]}  # the release's, and the device's still


def https_device_and_release(runtime, tmp_path, dist, release_server, tls_identity, **new_cfg):
    """A device updating over https, and a release whose uota.cfg moves it to plain http (a
    server of the same releases)."""
    device = make_device(runtime, tmp_path, release_server(dist, tls_identity[0]).url)
    new_cfg = device_cfg(release_server(dist).url, **new_cfg)
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": new_cfg}))
    return device, new_cfg


def test_a_release_moving_updates_from_https_to_http_is_refused(runtime, tmp_path, dist, release_server, tls_identity):
    device, _ = https_device_and_release(runtime, tmp_path, dist, release_server, tls_identity)

    log = assert_update_changes_nothing(device, "False False")

    assert "from https to plain http" in log


def test_a_release_may_move_updates_to_http_when_its_cfg_says_so(runtime, tmp_path, dist, release_server, tls_identity):
    device, new_cfg = https_device_and_release(runtime, tmp_path, dist, release_server, tls_identity, allow_http=True)

    result, log = device.update()

    assert result == "True True", log
    assert device.files()["uota.cfg"] == new_cfg.encode()


def test_a_pinned_device_is_not_moved_to_http_even_where_the_release_allows_it(runtime, tmp_path, dist, release_server,
                                                                              tls_identity):
    device, _ = https_device_and_release(runtime, tmp_path, dist, release_server, tls_identity, allow_http=True)
    before = device.files()

    result, log = device.update(pubkey_hash=pins_for_certificate(tls_identity[1])["ucertpin"])

    assert result == "False False", log
    assert apart_from_refusal(device.files()) == before
    assert "where latest fails: " in log and "no TLS to check" in log  # the pin could never be checked again


def moving_release(dist, tmp_path, url):
    """A release whose uota.cfg moves devices to url; returns that uota.cfg's text."""
    new_cfg = device_cfg(url)
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": new_cfg}))
    return new_cfg


def mirror(dist, folder, latest):
    """dist/folder/latest with the text latest: another place a release can move devices to."""
    (dist / folder).mkdir()
    (dist / folder / "latest").write_text(latest)
    return folder + "/"


def test_a_release_may_move_updates_to_a_url_that_offers_it(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    new_url = server.url + mirror(dist, "mirror", "1.1.0;firmware-1.1.0.tar.gz;0\n")
    new_cfg = moving_release(dist, tmp_path, new_url)

    result, log = device.update()

    assert result == "True True", log
    assert device.files()["uota.cfg"] == new_cfg.encode()
    assert server.requests[-1] == "/mirror/latest"  # asked before the install, with the same client


DEAD_URLS = [
    pytest.param(None, "where latest fails", id="nothing-listens"),
    pytest.param("missing/", "where latest fails", id="http-404"),
    pytest.param(("bad", "1.1.0\n"), "where latest fails", id="invalid-latest"),
    pytest.param(("old", "1.0.5;firmware-1.0.5.tar.gz;0\n"), "which offers only 1.0.5", id="older-release"),
]


@pytest.mark.parametrize("target, reason", DEAD_URLS)
def test_a_release_moving_updates_to_a_url_that_does_not_offer_it_is_refused(runtime, tmp_path, dist, server,
                                                                             target, reason):
    device = make_device(runtime, tmp_path, server.url)
    if target is None:
        new_url = "http://127.0.0.1:%d/" % free_port()
    elif isinstance(target, str):
        new_url = server.url + target
    else:
        new_url = server.url + mirror(dist, *target)
    moving_release(dist, tmp_path, new_url)

    log = assert_update_changes_nothing(device, "False False")

    assert "the release moves updates to %s, %s" % (new_url, reason) in log


def test_a_failing_logging_backend_leaves_the_result_and_the_messages(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path)

    result, log = device.call(
        "import sys\n"
        "class Failing:  # as MicroPython 1.20's frozen logging on a port without time.time()\n"
        "    def __getattr__(self, name):\n"
        "        raise AttributeError('time')\n"
        "class Logging:\n"
        "    def getLogger(self, name):\n"
        "        return Failing()\n"
        "sys.modules['logging'] = Logging()\n"
        "found = uota.check_for_updates()\n"
        "print(found, found and uota.install_new_firmware())\n"
    )

    assert result == "True True", log
    assert "new version 1.1.0 is available" in log and "installed version 1.1.0" in log  # printed


def test_redirects_are_followed(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path)
    server.quirks["/latest"] = ("redirect", (302, "/moved/latest"))
    server.quirks["/moved/latest"] = ("redirect", (301, server.url + "latest-real"))
    (dist / "latest-real").write_text((dist / "latest").read_text())
    server.quirks["/" + archive.name] = ("redirect", (307, "releases/" + archive.name))
    (dist / "releases").mkdir()
    (dist / "releases" / archive.name).write_bytes(archive.read_bytes())
    device = make_device(runtime, tmp_path, server.url)

    result, log = device.update()

    assert result == "True True", log
    assert "/releases/" + archive.name in server.requests


def test_endless_redirects_fail(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    server.quirks["/latest"] = ("redirect", (302, "/latest"))
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    assert "redirects" in log


def test_chunked_responses_are_read(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path)
    server.quirks["/latest"] = ("chunked", None)
    server.quirks["/" + archive.name] = ("chunked", None)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == expected_after_update(before, NEW)


@pytest.mark.parametrize("with_hash", [True, False], ids=["hash", "no-hash"])
def test_truncated_download_is_not_installed(runtime, tmp_path, dist, server, with_hash):
    archive = release(dist, tmp_path, with_hash=with_hash)
    server.quirks["/" + archive.name] = ("truncate", archive.stat().st_size // 2)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "False False"
    assert "closed before the end" in log
    after = device.files()
    kept = {name: after.pop(name) for name in ("fw.tmp", "uota.state") if name in after}
    assert after == before
    assert bool(kept) == with_hash  # only a download with a hash is kept, to be resumed


def test_silent_server_times_out(runtime, tmp_path, silent_server):
    device = make_device(runtime, tmp_path, silent_server, timeout=1)

    assert_update_changes_nothing(device, "False False")


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_is_reported(runtime, tmp_path, dist, server, status):
    release(dist, tmp_path)
    server.quirks["/latest"] = ("status", status)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    assert "HTTP %d" % status in log


def test_hash_mismatch_deletes_the_download(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path)
    publish(dist, "1.1.0", archive, latest="1.1.0;%s;0;%s\n" % (archive.name, "ab" * 32))
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False")
    assert "SHA-256" in log


def test_not_enough_free_space_refuses_before_downloading(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path, free_kb=10**12)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "False False"
    assert "free space" in log
    assert "/" + archive.name not in server.requests
    assert device.files() == before


def test_install_resumes_in_a_later_boot(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    found, log = device.call("print(uota.check_for_updates())")
    installed, log2 = device.call("print(uota.install_new_firmware())")

    assert (found, installed) == ("True", "True"), log + log2
    assert device.files() == expected_after_update(before, NEW)


def test_partial_download_is_never_installed(runtime, tmp_path, dist, server):
    archive = release(dist, tmp_path, with_hash=False)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()
    write_tree(device.root, {"fw.tmp": archive.read_bytes()[:1000]})

    installed, log = device.call("print(uota.install_new_firmware())")

    assert installed == "False"
    assert "no verified download" in log
    assert device.files()["main.py"] == before["main.py"]


@pytest.mark.parametrize("cut_after", [1, 3])
def test_install_interrupted_after_nth_file_is_finished_by_recover(runtime, tmp_path, dist, server, cut_after):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()
    device.call("print(uota.check_for_updates())")

    cut, log = device.call(CUT_INSTALL % cut_after)
    assert cut == "cut", log
    assert device.files()["version"] == b"1.0.0\n"
    recovered, log = device.call("print(uota.recover())")

    assert recovered == "True", log
    assert device.files() == expected_after_update(before, NEW)


def test_recover_without_the_archive_reports_it_and_keeps_the_version(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)
    device.call("print(uota.check_for_updates())")
    device.call(CUT_INSTALL % 1)
    (device.root / "fw.tmp").unlink()

    recovered, log = device.call("print(uota.recover())")

    assert recovered == "False"
    assert "archive is gone" in log
    assert device.files()["version"] == b"1.0.0\n"
    assert "uota.state" not in device.files()


def test_recover_is_cheap_and_false_when_nothing_to_do(runtime, tmp_path):
    device = make_device(runtime, tmp_path, "http://127.0.0.1:9/")
    before = device.files()

    recovered, log = device.call("print(uota.recover())")

    assert recovered == "False", log
    assert device.files() == before


def test_cfg_containing_code_is_refused_and_not_run(runtime, tmp_path):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, dict(OLD, **{"uota.cfg": "{'url': __import__('os').remove('main.py'), 'tmp_filename': 'x'}"}))

    result, log = device.update()

    assert result == "False False"
    assert "uota.cfg" in log
    assert "main.py" in device.files()


def test_wrong_pin_of_the_server_key_fails(runtime, tmp_path, dist, release_server, tls_identity):
    server = release_server(dist, tls_identity[0])
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False", pubkey_hash=b"ab" * 32)

    assert "Certificate pinning failed" in log


PIN_FORMS = [
    pytest.param(lambda pins: pins["ucertpin"].encode(), id="ucertpin-bytes"),
    pytest.param(lambda pins: pins["spki"].upper(), id="standard-spki-upper-case"),
]


@pytest.mark.parametrize("pin", PIN_FORMS)
def test_right_pin_of_the_server_key_is_accepted_in_either_form(runtime, tmp_path, dist, release_server, tls_identity, pin):
    context, cert_der = tls_identity
    server = release_server(dist, context)
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)

    result, log = device.update(pubkey_hash=pin(pins_for_certificate(cert_der)))

    assert result == "True True", log


def pinned_https_device(runtime, tmp_path, dist, release_server, tls_identity, pins):
    """A device whose uota.cfg pins `pins` (spki hashes) of an https release server."""
    server = release_server(dist, tls_identity[0])
    return make_device(runtime, tmp_path, server.url, pins=pins), server


def test_a_device_accepts_the_server_key_that_any_of_its_pins_names(runtime, tmp_path, dist, release_server,
                                                                      tls_identity):
    current = pins_for_certificate(tls_identity[1])["spki"]
    device, _ = pinned_https_device(runtime, tmp_path, dist, release_server, tls_identity, ["ab" * 32])
    release(dist, tmp_path)
    assert "Certificate pinning failed" in assert_update_changes_nothing(device, "False False")

    device, _ = pinned_https_device(runtime, tmp_path / "next", dist, release_server, tls_identity, ["ab" * 32, current])
    result, log = device.update()

    assert result == "True True", log


def test_a_release_may_add_the_next_server_key_to_the_pins(runtime, tmp_path, dist, release_server, tls_identity):
    current = pins_for_certificate(tls_identity[1])["spki"]
    device, server = pinned_https_device(runtime, tmp_path, dist, release_server, tls_identity, [current])
    new_cfg = device_cfg(server.url, pins=[current, "ab" * 32])
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": new_cfg}))

    result, log = device.update()

    assert result == "True True", log
    assert device.files()["uota.cfg"] == new_cfg.encode()


@pytest.mark.parametrize("pins", [["ab" * 32], ["AB" * 32, "cd" * 32]], ids=["one", "two"])
def test_a_release_pinning_only_keys_the_server_does_not_have_is_refused(runtime, tmp_path, dist, release_server,
                                                                        tls_identity, pins):
    # the device could never reach its server again
    current = pins_for_certificate(tls_identity[1])["spki"]
    device, server = pinned_https_device(runtime, tmp_path, dist, release_server, tls_identity, [current])
    release(dist, tmp_path, files=dict(NEW, **{"uota.cfg": device_cfg(server.url, pins=pins)}))

    log = assert_update_changes_nothing(device, "False False")

    assert "where latest fails: Certificate pinning failed" in log


def test_pin_on_plain_http_fails(runtime, tmp_path, dist, server):
    release(dist, tmp_path)
    device = make_device(runtime, tmp_path, server.url)

    log = assert_update_changes_nothing(device, "False False", pubkey_hash=b"ab" * 32)

    assert "Certificate pinning failed" in log


@pytest.mark.parametrize("honour_range", [True, False], ids=["206", "server-ignores-range"])
def test_download_cut_short_is_resumed_on_the_next_check(runtime, tmp_path, dist, server, honour_range):
    archive = release(dist, tmp_path)
    server.quirks["/" + archive.name] = ("truncate", archive.stat().st_size // 3)
    server.honour_range = honour_range
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    first, log = device.call("print(uota.check_for_updates())")
    assert first == "False", log
    kept = len(device.files()["fw.tmp"])
    del server.quirks["/" + archive.name]
    result, log = device.update()

    assert kept == archive.stat().st_size // 3
    assert server.ranges == ["bytes=%d-" % kept]
    assert result == "True True", log
    assert device.files() == expected_after_update(before, NEW)


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_small_window_release_installs(runtime, tmp_path, dist, server, bits):
    src = write_tree(tmp_path / "src", NEW)
    plain = tar_python(src, tmp_path / "plain.tar.gz")
    archive = dist / "small-window.tar.gz"
    archive.write_bytes(gzip_with_window(gzip.decompress(plain.read_bytes()), bits))
    publish(dist, "1.1.0", archive)
    device = make_device(runtime, tmp_path, server.url)
    before = device.files()

    result, log = device.update()

    assert result == "True True", log
    assert device.files() == expected_after_update(before, NEW)
