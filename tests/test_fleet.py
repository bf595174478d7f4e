"""`uota fleet`: real devices poll nginx, which logs their reports in uota's log format; the
command reads the log and prints each device's last sighting and each version's count."""

import hashlib

from support.fixtures_servers import run_uota
from support.releases import write_tree
from support.standard import make_device, release

from uota.fleet import by_version, read_log

RUNTIMES = ["cpython", "micropython-1.20", "micropython-1.29"]


def test_the_access_log_of_devices_polling_nginx_gives_the_fleet(tmp_path, dist, nginx):
    url = nginx(dist)
    sha = hashlib.sha256(release(dist, tmp_path).read_bytes()).hexdigest()
    devices = {runtime: make_device(runtime, tmp_path / runtime, url, device_id="board-" + runtime)
               for runtime in RUNTIMES}
    write_tree(devices["micropython-1.20"].root, {"uota.state": "failed;1.1.0;1;%s;fw.tmp;0\nend\n" % sha})
    for runtime in ("cpython", "micropython-1.29"):
        assert devices[runtime].update()[0] == "True True"  # 1.0.0 -> 1.1.0
        devices[runtime].update()  # and asks again, now on 1.1.0
    assert devices["micropython-1.20"].update()[0] == "False False"  # 1.1.0 failed here: not again

    with open(nginx.access_logs[url]) as log:
        fleet = read_log(log)

    assert {device: (s.version, s.result) for device, s in fleet.items()} == {
        "board-cpython": ("1.1.0", "ok"),
        "board-micropython-1.29": ("1.1.0", "ok"),
        "board-micropython-1.20": ("1.0.0", "failed:1.1.0"),
    }
    assert by_version(fleet) == {"1.0.0": (1, 0), "1.1.0": (2, 1)}


def test_fleet_prints_devices_and_versions(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(
        '2026-11-30T07:00:00+00:00 "GET /app/latest HTTP/1.1" 200 "board-1" "1.0.0" "ok"\n'
        '2026-11-30T07:00:01+00:00 "GET /app/firmware-1.1.0.tar.gz HTTP/1.1" 200 "-" "-" "-"\n'
        '2026-11-30T07:00:02+00:00 "GET /app/latest HTTP/1.1" 200 "board-2" "1.0.0" "failed:1.1.0"\n'
        'not a line of this format\n'
        '2026-11-30T08:00:00+00:00 "GET /app/latest HTTP/1.1" 200 "board-1" "1.1.0" "ok"\n'
    )

    result = run_uota("fleet", log)

    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == ["2", "devices"]
    assert ["board-1", "2026-11-30T08:00:00+00:00", "1.1.0", "ok"] in lines
    assert ["board-2", "2026-11-30T07:00:02+00:00", "1.0.0", "failed:1.1.0"] in lines
    assert ["1.0.0", "1", "0"] in lines and ["1.1.0", "1", "1"] in lines


def test_a_log_without_device_reports_is_a_one_line_error(tmp_path):
    log = tmp_path / "access.log"
    log.write_text('127.0.0.1 - - [30/Nov/2026:07:00:00 +0000] "GET /latest HTTP/1.1" 200 40 "-" "uota/0.1.0"\n')

    result = run_uota("fleet", log)

    assert result.returncode == 1
    assert result.stderr == "uota: {} has no request for latest by a device: write it with uota's log format " \
                            "(docs/hosting.md)\n".format(log)
