"""The standard update of the device tests: a device on 1.0.0 (OLD, wifi.json excluded) and
release 1.1.0 (NEW), published into a served folder, and the tree the device must end with.

    device = make_device(runtime, tmp_path, server.url)
    release(dist, tmp_path)                 # tar -czf of NEW, latest with its hash
    before = device.files()
    assert device.update()[0] == "True True"
    assert device.files() == expected_after_update(before, NEW)
"""

from support.releases import Device, device_cfg, publish, tar_cli, write_tree

OLD = {
    "main.py": "print('old')\n",
    "lib/util.py": "A = 1\n",
    "wifi.json": '{"ssid": "home"}\n',
    "version": "1.0.0\n",
}
NEW = {
    "main.py": "print('new')\n",
    "lib/util.py": "A = 2\n",
    "lib/deep/more.py": "B = 3\n",
    "data.bin": bytes(range(256)) * 200,
    "wifi.json": '{"ssid": "factory"}\n',
    "version": "1.1.0\n",
}


def make_device(runtime, tmp_path, url, files=OLD, **cfg):
    device = Device(runtime, tmp_path / "device")
    write_tree(device.root, files)
    write_tree(device.root, {"uota.cfg": device_cfg(url, **cfg)})
    return device


def release(dist, tmp_path, files=NEW, version="1.1.0", maker=tar_cli, **latest):
    src = write_tree(tmp_path / ("src-" + version), files)
    archive = maker(src, dist / ("firmware-%s.tar.gz" % version))
    publish(dist, version, archive, **latest)
    return archive


def expected_after_update(device_before, release_files, version="1.1.0"):
    tree = dict(device_before)
    for name, data in release_files.items():
        if name not in ("wifi.json", "version"):
            tree[name] = data.encode() if isinstance(data, str) else data
    tree["version"] = version.encode()
    return tree


# A reset while installing: the exception stands for the power going off after N files.
CUT_INSTALL = """
from uota import _install
class PowerCut(BaseException): pass
write = _install._write_member
count = [0]
def cutting(*args):
    count[0] += 1
    if count[0] > %d: raise PowerCut()
    write(*args)
_install._write_member = cutting
try:
    uota.install_new_firmware()
except PowerCut:
    print('cut')
"""
