"""Staged rollouts from static files: `rollout=P` in `latest` offers a release to P % of the
fleet. Each device decides from a bucket of its identity and the release (the device's own
`_fleet`), so the share is P, a device's answer is stable, raising P only adds devices and
each release draws anew; real devices on a real server update accordingly."""

import pytest
from support.fixtures_servers import run_uota
from support.releases import Device, device_cfg, write_tree
from support.standard import NEW, OLD, release

from uota.__main__ import main
from uota.build import build_release
from uota.device.uota import _latest, _fleet
from uota.sign import keygen, verify_line

FLEET = ["board-%05d" % n for n in range(10_000)]


def offered(percent, version="1.1.0", fleet=FLEET):
    return {identity for identity in fleet if _fleet.bucket(identity, version) < percent * 100}


@pytest.mark.parametrize("percent", [1, 10, 50])
def test_a_rollout_offers_the_release_to_p_percent_of_10000_devices(percent):
    assert abs(len(offered(percent)) / len(FLEET) * 100 - percent) <= 1.5


def test_raising_the_rollout_only_adds_devices():
    shares = [offered(percent) for percent in (0, 1, 10, 50, 100)]
    assert all(smaller <= larger for smaller, larger in zip(shares, shares[1:]))
    assert (len(shares[0]), len(shares[-1])) == (0, len(FLEET))


def test_each_release_draws_its_own_devices():
    first, second = offered(50, "1.1.0"), offered(50, "1.2.0")
    assert abs(len(first & second) / len(FLEET) - 0.25) <= 0.03  # independent draws: not the same half


def test_every_runtime_draws_the_same_bucket(runtime, tmp_path):
    identities = FLEET[:40]
    device = Device(runtime, tmp_path / "device")

    result = device.run("from uota import _fleet\nprint([_fleet.bucket(i, '1.1.0') for i in %r])" % identities)

    assert result.stdout.strip().splitlines()[-1] == str([_fleet.bucket(i, "1.1.0") for i in identities])


def fleet_on(runtime, tmp_path, url, identities):
    devices = {}
    for identity in identities:
        device = Device(runtime, tmp_path / identity)
        write_tree(device.root, dict(OLD, **{"uota.cfg": device_cfg(url, device_id=identity)}))
        devices[identity] = device
    return devices


def test_a_50_percent_rollout_updates_the_devices_it_offers_and_no_other(runtime, tmp_path, dist, server):
    inside, outside = sorted(offered(50, fleet=FLEET[:40])), sorted(set(FLEET[:40]) - offered(50, fleet=FLEET[:40]))
    devices = fleet_on(runtime, tmp_path, server.url, inside[:3] + outside[:3])
    release(dist, tmp_path)
    (dist / "latest").write_text((dist / "latest").read_text().strip() + ";rollout=50\n")

    results = {identity: device.update() for identity, device in devices.items()}

    assert {identity for identity, (result, _) in results.items() if result == "True True"} == set(inside[:3])
    for identity in outside[:3]:
        result, log = results[identity]
        assert result == "False False" and "offered to 50% of devices, not yet to this one" in log
        assert devices[identity].files()["version"] == b"1.0.0\n"


def test_a_50_percent_rollout_updates_about_half_of_a_fleet(tmp_path, dist, server):
    devices = fleet_on("cpython", tmp_path, server.url, FLEET[100:120])
    release(dist, tmp_path)
    (dist / "latest").write_text((dist / "latest").read_text().strip() + ";rollout=50\n")

    updated = sum(device.update()[0] == "True True" for device in devices.values())

    assert updated == len(offered(50, fleet=FLEET[100:120])) and 6 <= updated <= 14


def test_without_a_device_id_the_board_identity_decides(tmp_path):
    # CPython stands in for machine.unique_id() with the hardware address
    from uota.device.uota._cpython import unique_id

    assert _fleet.device_identity({}) == unique_id().hex()
    assert _fleet.device_identity({"device_id": 7}) == "7"


@pytest.fixture
def built(tmp_path):
    src = tmp_path / "src"
    write_tree(src, {"main.py": NEW["main.py"]})
    build_release(src, "1.1.0", tmp_path / "dist")
    return tmp_path / "dist"


def latest_fields(dist):
    return _latest.parse_latest((dist / "latest").read_text())


def test_rollout_sets_changes_and_removes_the_field(built):
    assert main(["rollout", str(built), "10"]) == 0
    assert latest_fields(built)[4] == {"rollout": "10"}
    assert main(["rollout", str(built), "60"]) == 0
    assert latest_fields(built)[4] == {"rollout": "60"}
    assert main(["rollout", str(built), "100"]) == 0
    assert latest_fields(built)[4] == {}


def test_rollout_of_a_signed_release_signs_it_again(built, tmp_path, capsys):
    private, public = keygen(tmp_path / "key", bits=2048)
    assert main(["sign", str(built), "--key", str(private)]) == 0
    before = (built / "latest").read_text()

    assert main(["rollout", str(built), "10"]) == 1
    assert "is signed: give --key" in capsys.readouterr().err and (built / "latest").read_text() == before

    assert main(["rollout", str(built), "10", "--key", str(private)]) == 0
    assert verify_line((built / "latest").read_text(), {"key.pub": public.read_text()}, 0)[4]["rollout"] == "10"


@pytest.mark.parametrize("percent", ["-1", "101"])
def test_rollout_outside_0_to_100_is_refused(built, capsys, percent):
    before = (built / "latest").read_text()
    assert main(["rollout", str(built), percent]) == 1
    assert "the rollout is a percentage: 0 to 100" in capsys.readouterr().err
    assert (built / "latest").read_text() == before


def test_build_with_a_rollout_writes_it(tmp_path):
    src = tmp_path / "src"
    write_tree(src, {"main.py": NEW["main.py"]})
    assert main(["build", str(src), "--version", "1.1.0", "--out", str(tmp_path / "dist"), "--rollout", "5"]) == 0
    assert latest_fields(tmp_path / "dist")[4] == {"rollout": "5"}


def test_check_says_to_how_many_devices_latest_offers_the_release(built, release_server):
    assert main(["rollout", str(built), "25"]) == 0

    result = run_uota("check", release_server(built).url)

    assert "rollout:   offered to 25 % of devices" in result.stdout, result.stdout + result.stderr
