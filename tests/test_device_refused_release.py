"""A release whose archive fails its check (the hash latest gives, a hostile or broken
archive, a uota.cfg the device refuses) is remembered: the device downloads it again at the
next check (the network may have spoiled it), then only after 1, 3, 7 ... (63 at most)
checks, until latest names another release; status() says why. What is not the release's
fault (no RAM for its window or its check right now) is not remembered: the download is kept
and checked again. And with 'retries': N in uota.cfg, a download the network cuts is resumed
within the same check after a pause that doubles each time (1, 2, 4 ... 30 s), N times at
most. On CPython and real MicroPython 1.20 and 1.29, over HTTP on 127.0.0.1."""

from support.fault_proxy import FaultsOnce, drop_after, fetch_response, head_length
from support.releases import apart_from_refusal, file_member, publish, tar_members
from support.standard import NEW, make_device, release

ARCHIVE = "/firmware-1.1.0.tar.gz"
WRONG_HASH = "1.1.0;firmware-1.1.0.tar.gz;0;" + "ab" * 32 + "\n"


def archive_requests(server):
    return [path for path in server.requests if path == ARCHIVE]


def downloads_over_checks(device, server, checks):
    """The archive requests the server has seen after each of `checks` checks."""
    counts = []
    for _ in range(checks):
        device.call("uota.check_for_updates(quiet=True)")
        counts.append(len(archive_requests(server)))
    return counts


def test_a_refused_archive_is_downloaded_again_ever_more_rarely(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, latest=WRONG_HASH)

    assert downloads_over_checks(device, server, 9) == [1, 2, 2, 3, 3, 3, 3, 4, 4]


def test_a_skipped_check_says_why_and_how_long(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, latest=WRONG_HASH)
    downloads_over_checks(device, server, 2)

    result, log = device.update()

    assert result == "False False" and len(archive_requests(server)) == 2
    assert ("release 1.1.0 was refused: SHA-256 of the download does not match latest: "
            "not downloaded again for 1 more checks, unless latest changes") in log


def test_a_refused_release_is_tried_at_once_when_latest_names_another(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, latest=WRONG_HASH)
    downloads_over_checks(device, server, 2)  # now waiting
    release(dist, tmp_path)  # the same version, with the archive's own hash

    assert device.update()[0] == "True True"
    assert device.files()["version"] == b"1.1.0"


def test_a_hostile_archive_is_remembered_and_its_files_never_written(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    archive = tar_members(dist / "firmware-1.1.0.tar.gz", [file_member("main.py", b"evil"), file_member("../escape.py", b"x")])
    publish(dist, "1.1.0", archive)
    before = device.files()

    assert downloads_over_checks(device, server, 2) == [1, 2]
    result, log = device.update()

    assert result == "False False" and len(archive_requests(server)) == 2
    assert "was refused: unsafe path '../escape.py'" in log
    assert apart_from_refusal(device.files()) == before


def test_a_release_whose_uota_cfg_the_device_refuses_is_remembered(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, dict(NEW, **{"uota.cfg": "{'url': 42}"}))

    assert downloads_over_checks(device, server, 3) == [1, 2, 2]


def test_a_release_that_failed_to_install_waits_for_another_without_counting(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path)
    sha = (dist / "latest").read_text().split(";")[3].strip()
    (device.root / "uota.state").write_text("failed;1.1.0;1;%s;fw.tmp;0\nend\n" % sha)

    assert downloads_over_checks(device, server, 4) == [0, 0, 0, 0]


# ---------------------------------------------------------------- 'retries': back-off after network failures


def cut_halfway(server):
    """(the fault that drops the archive's response halfway through its body, the bytes of
    the body it lets through)."""
    response = fetch_response(server.url, ARCHIVE)
    half = (len(response) - head_length(response)) // 2
    return drop_after(head_length(response) + half), half


def test_a_download_cut_by_the_network_is_resumed_after_a_pause_with_retries(runtime, tmp_path, dist, server, fault_proxy):
    proxy = fault_proxy(server.url)
    release(dist, tmp_path)
    fault, half = cut_halfway(server)
    proxy.faults = FaultsOnce({ARCHIVE: fault})
    device = make_device(runtime, tmp_path, proxy.url, retries=2)

    result, log = device.update()

    assert result == "True True", log
    assert "resuming in 1 s" in log
    assert "Range: bytes=%d-" % half in proxy.requests[-1]
    assert device.files()["version"] == b"1.1.0"


def test_without_retries_a_cut_download_waits_for_the_next_check(runtime, tmp_path, dist, server, fault_proxy):
    proxy = fault_proxy(server.url)
    release(dist, tmp_path)
    proxy.faults = FaultsOnce({ARCHIVE: cut_halfway(server)[0]})
    device = make_device(runtime, tmp_path, proxy.url)

    assert device.update()[0] == "False False"
    assert device.update()[0] == "True True"


def test_retries_are_bounded(runtime, tmp_path, dist, server, fault_proxy):
    proxy = fault_proxy(server.url)
    release(dist, tmp_path)
    proxy.faults[ARCHIVE] = drop_after(head_length(fetch_response(server.url, ARCHIVE)) + 100)  # every response
    device = make_device(runtime, tmp_path, proxy.url, retries=2)

    result, log = device.update()

    assert result == "False False"
    assert log.count("resuming in") == 2 and "resuming in 2 s" in log
