"""Each request for `latest` reports the device to the server it is configured for: who it is,
what it runs and how its last update went, in headers any web server's access log can record
(`uota fleet` reads nginx's). Real devices on CPython, MicroPython 1.20 and 1.29, a real
server on 127.0.0.1."""

import pytest
from support.releases import write_tree
from support.standard import make_device, release


def reports(server):
    """The X-Uota-* headers of each request for latest the server saw."""
    return [{name: value for name, value in headers.items() if name.lower().startswith("x-uota-")}
            for path, headers in server.heads if path == "/latest"]


def test_latest_is_asked_for_with_the_device_its_version_and_its_last_result(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url, device_id="board-7")
    release(dist, tmp_path)
    assert device.update()[0] == "True True"

    device.update()

    assert reports(server) == [
        {"X-Uota-Device": "board-7", "X-Uota-Version": "1.0.0", "X-Uota-Result": "ok"},
        {"X-Uota-Device": "board-7", "X-Uota-Version": "1.1.0", "X-Uota-Result": "ok"},
    ]


def test_a_failed_install_is_reported_until_another_release_installs(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url, device_id="board-7")
    write_tree(device.root, {"uota.state": "failed;1.2.0;100;%s;fw.tmp;0\nend\n" % ("ab" * 32)})
    release(dist, tmp_path)

    assert device.update()[0] == "True True"

    assert reports(server)[0]["X-Uota-Result"] == "failed:1.2.0"


@pytest.mark.parametrize("device_id, sent", [
    pytest.param("board 7\r\nX-Evil: 1", "sha256:", id="line-break"),
    pytest.param("b" * 65, "sha256:", id="too-long"),
    pytest.param(42, "42", id="a-number"),
])
def test_an_identity_that_is_not_a_plain_name_is_sent_as_its_hash(runtime, tmp_path, dist, server, device_id, sent):
    device = make_device(runtime, tmp_path, server.url, device_id=device_id)
    release(dist, tmp_path, version="0.9.0")

    device.update()

    assert reports(server)[0]["X-Uota-Device"].startswith(sent)
    assert "X-Evil" not in server.heads[0][1]


def test_report_false_sends_no_report(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url, device_id="board-7", report=False)
    release(dist, tmp_path)

    assert device.update()[0] == "True True"

    assert reports(server) == [{}]


def test_the_report_goes_only_to_the_configured_origin(runtime, tmp_path, dist, release_server):
    elsewhere = release_server(dist)
    home = release_server(dist)
    home.quirks["/latest"] = ("redirect", (302, elsewhere.url + "latest"))
    device = make_device(runtime, tmp_path, home.url, device_id="board-7")
    release(dist, tmp_path)

    assert device.update()[0] == "True True"

    assert reports(home)[0]["X-Uota-Device"] == "board-7" and reports(elsewhere) == [{}]
