"""`uota simulate --root DIR` updates a virtual device, a folder, with the real device module.

Releases come from `build_release` and are served by real servers on 127.0.0.1 (`uota serve`,
nginx over HTTP and HTTPS); the device runs on CPython and on real MicroPython (WebAssembly).
"""

import pytest

from uota.__main__ import main
from uota.build import build_release

from support.fixtures_runtime import RUNTIME_IDS
from support.fixtures_servers import run_uota, server_pins
from support.releases import device_cfg, read_tree, write_tree

OLD = {"main.py": "print('old')\n", "lib/util.py": "A = 1\n", "wifi.json": '{"ssid": "home"}\n', "version": "1.0.0\n"}
NEW = {"main.py": "print('new')\n", "lib/util.py": "A = 2\n", "lib/more.py": "B = 3\n", "wifi.json": "{}\n"}


@pytest.fixture
def built_dist(tmp_path):
    build_release(write_tree(tmp_path / "app", NEW), "1.1.0", tmp_path / "dist")
    return tmp_path / "dist"


def make_device(tmp_path, url):
    return write_tree(tmp_path / "device", dict(OLD, **{"uota.cfg": device_cfg(url)}))


def simulate(root, *options):
    result = run_uota("simulate", "--root", root, *options)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_updated(root, before, result):
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "version before: 1.0.0"
    assert "check_for_updates: True" in lines
    assert "install_new_firmware: True" in lines
    assert lines[-2:] == ["version after: 1.1.0", "boot 1: ended"]  # and the new main.py runs
    assert "INFO:uota:installed version 1.1.0" in lines
    files = read_tree(root)
    assert files["main.py"] == b"print('new')\n" and files["lib/more.py"] == b"B = 3\n"
    assert files["wifi.json"] == before["wifi.json"]  # excluded_files in uota.cfg


def hosts_and_runtimes(cases):
    """(host fixture, runtime, ...) cases with readable ids: uota-serve-mp129-spki."""
    return [pytest.param(*case, id="-".join([case[0].replace("_", "-"), RUNTIME_IDS[case[1]], *case[2:]])) for case in cases]


@pytest.mark.parametrize("host, device_runtime", hosts_and_runtimes([
    ("uota_serve", "cpython"), ("uota_serve", "micropython-1.20"), ("uota_serve", "micropython-1.29"),
    ("nginx", "cpython"), ("nginx", "micropython-1.29"),
]))
def test_simulate_updates_device_from_a_static_host(request, tmp_path, built_dist, host, device_runtime):
    root = make_device(tmp_path, request.getfixturevalue(host)(built_dist))
    before = read_tree(root)

    assert_updated(root, before, simulate(root, "--runtime", device_runtime))


def test_up_to_date_device_is_success_and_unchanged(tmp_path, built_dist, uota_serve):
    root = make_device(tmp_path, uota_serve(built_dist))
    (root / "version").write_text("1.1.0\n")
    before = read_tree(root)

    result = simulate(root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "check_for_updates: False" in result.stdout.splitlines()
    assert read_tree(root) == before


def test_no_install_downloads_but_leaves_files(tmp_path, built_dist, uota_serve):
    root = make_device(tmp_path, uota_serve(built_dist))
    before = read_tree(root)

    result = simulate(root, "--no-install")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "check_for_updates: True" in result.stdout.splitlines()
    assert "install_new_firmware" not in result.stdout
    assert result.stdout.splitlines()[-2] == "version after: 1.0.0"
    after = read_tree(root)
    assert after.pop("fw.tmp") == (built_dist / "firmware-1.1.0.tar.gz").read_bytes()  # the download
    after.pop("uota.state")  # and its record: verified, ready to install
    assert after == before


def test_missing_root_is_one_line_error(tmp_path):
    result = simulate(tmp_path / "nowhere")

    assert result.returncode == 1
    assert result.stderr == "uota: device folder {} does not exist\n".format(tmp_path / "nowhere")


def test_root_without_uota_cfg_is_one_line_error(tmp_path):
    root = write_tree(tmp_path / "device", {"version": "1.0.0\n"})

    result = simulate(root)

    assert result.returncode == 1
    assert result.stderr.startswith("uota: {} has no uota.cfg".format(root))
    assert result.stderr.count("\n") == 1


MP_AND_CPYTHON = pytest.mark.parametrize("device_runtime", ["cpython", "micropython-1.29"])


@MP_AND_CPYTHON
def test_failed_step_exits_1_with_the_device_reason_naming_host_and_port(device_runtime, tmp_path):
    root = make_device(tmp_path, "http://127.0.0.1:1/")
    before = read_tree(root)

    result = simulate(root, "--runtime", device_runtime)

    assert result.returncode == 1
    lines = result.stdout.splitlines()[1:]  # after the updater line
    assert lines[1:3] == ["recover: nothing to finish", "ERROR:uota:cannot connect to 127.0.0.1:1: [Errno 111] "
                          + ("Connection refused" if device_runtime == "cpython" else "ECONNREFUSED")]
    assert lines[3] == "check_for_updates: False"
    assert "uota:uota" not in result.stdout
    assert read_tree(root) == before


@pytest.mark.parametrize("host, device_runtime, form", hosts_and_runtimes([
    ("nginx", "cpython", "ucertpin"), ("nginx", "micropython-1.29", "ucertpin"), ("uota_serve", "cpython", "spki"),
]))
def test_simulate_updates_device_over_https_with_the_server_s_pin(request, tmp_path, built_dist, host, device_runtime, form):
    url = request.getfixturevalue(host)(built_dist, tls=True)
    root = make_device(tmp_path, url)
    before = read_tree(root)

    result = simulate(root, "--runtime", device_runtime, "--pin", server_pins(url)[form])

    assert_updated(root, before, result)


@pytest.mark.parametrize("device_runtime", ["cpython", "micropython-1.29"])
def test_wrong_pin_refuses_nginx_https(device_runtime, tmp_path, built_dist, nginx):
    root = make_device(tmp_path, nginx(built_dist, tls=True))
    before = read_tree(root)

    result = simulate(root, "--runtime", device_runtime, "--pin", "ab" * 32)

    assert result.returncode == 1
    assert "Certificate pinning failed" in result.stdout
    assert read_tree(root) == before


def released(tmp_path, files, version="1.1.0", mpy=False):
    """A release of OLD's app with `files` changed, built into tmp_path/dist."""
    build_release(write_tree(tmp_path / ("app-" + version), dict(NEW, **files)), version, tmp_path / "dist", mpy=mpy)
    return tmp_path / "dist"


@MP_AND_CPYTHON
def test_a_release_whose_main_py_raises_fails_its_boot(device_runtime, tmp_path, uota_serve):
    dist = released(tmp_path, {"main.py": "import lib.util\nprint(1 / 0)\n"})
    root = make_device(tmp_path, uota_serve(dist))

    result = simulate(root, "--runtime", device_runtime)

    assert result.returncode == 1
    assert "install_new_firmware: True" in result.stdout  # installed, and yet:
    assert result.stdout.splitlines()[-1].startswith("boot 1: failed: ZeroDivisionError")


@MP_AND_CPYTHON
def test_an_application_that_resets_or_keeps_running_has_booted(device_runtime, tmp_path, uota_serve):
    dist = released(tmp_path, {"main.py": "import machine\nmachine.reset()\n", "lib/loop.py": "while True:\n    pass\n"})
    root = make_device(tmp_path, uota_serve(dist))
    assert simulate(root, "--runtime", device_runtime).stdout.splitlines()[-1] == "boot 1: reset"
    (root / "main.py").write_text("import loop\n")

    result = simulate(root, "--runtime", device_runtime, "--boots", "2", "--boot-timeout", "3")

    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-2:] == ["boot 1: running after 3.0 s", "boot 2: running after 3.0 s"]


def test_an_mpy_release_fails_to_boot_where_the_runtime_cannot_load_it(tmp_path, uota_serve):
    dist = released(tmp_path, {"main.py": "import lib.fresh\n", "lib/fresh.py": "F = 1\n"}, mpy=True)
    root = make_device(tmp_path, uota_serve(dist))

    result = simulate(root, "--runtime", "cpython")

    assert result.returncode == 1
    assert "install_new_firmware: True" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("boot 1: failed: ModuleNotFoundError: No module named 'lib.fresh'")


def test_micropython_runs_the_updater_the_device_has_installed(tmp_path, built_dist, uota_serve):
    root = make_device(tmp_path, uota_serve(built_dist))
    assert main(["init", str(root)]) == 0  # the device code in lib/uota, as on a board
    with open(root / "lib" / "uota" / "__init__.py", "a") as own:
        own.write("\nprint('the device\\'s own updater')\n")

    result = simulate(root, "--runtime", "micropython-1.29")

    assert result.returncode == 0, result.stdout
    assert "updater: the device's own, lib/uota" in result.stdout
    assert "the device's own updater" in result.stdout
