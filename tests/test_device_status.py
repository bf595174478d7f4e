"""`uota.status()`: what an application can report about its updates, on every runtime."""

import hashlib

from support.releases import write_tree
from support.standard import make_device, release


def status(device):
    return eval(device.call("print(uota.status())")[0])


def after_update(device):
    return eval(device.call("if uota.check_for_updates():\n    uota.install_new_firmware()\nprint(uota.status())")[0])


def test_a_device_with_nothing_pending_reports_its_version(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)

    assert status(device) == {"version": "1.0.0", "pending": None, "failed": None, "error": None,
                              "trial": False, "boots_left": None}


def test_after_an_update_and_a_reset_the_new_version(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path)
    assert device.update()[0] == "True True"

    assert status(device) == {"version": "1.1.0", "pending": None, "failed": None, "error": None,
                              "trial": False, "boots_left": None}


def test_a_downloaded_release_is_pending_until_installed(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path)

    assert eval(device.call("uota.check_for_updates()\nprint(uota.status())")[0])["pending"] == "1.1.0"


def test_a_refused_release_is_the_error_of_this_boot(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path, latest="1.1.0;firmware-1.1.0.tar.gz;0;" + "ab" * 32 + "\n")

    got = after_update(device)

    assert got["version"] == "1.0.0" and got["failed"] == "1.1.0"  # refused (test_device_refused_release.py)
    assert got["error"] == "SHA-256 of the download does not match latest"


def test_a_release_that_failed_to_install_is_reported(runtime, tmp_path, dist, server):
    device = make_device(runtime, tmp_path, server.url)
    sha = hashlib.sha256(release(dist, tmp_path).read_bytes()).hexdigest()
    write_tree(device.root, {"uota.state": "failed;1.1.0;1;%s;fw.tmp;0\nend\n" % sha})

    got = after_update(device)

    assert got["failed"] == "1.1.0" and got["error"] == "release 1.1.0 failed to install: waiting for another"
