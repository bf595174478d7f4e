"""Releases and virtual devices for the device tests: real files, real archives, real runtimes."""

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

from support.fixtures_runtime import Device as _Device

# Printed by every device script so tests can read what the public API returned.
PRELUDE = """
import logging
logging.basicConfig(level=logging.INFO)
import uota
"""


def write_tree(folder, files):
    """files: {relative path: bytes or str}."""
    folder = Path(folder)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def read_tree(folder):
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def files_list(files):
    """uota.files as `uota build` writes it for {path: bytes or str}: SHA256HEX SIZE PATH, sorted."""
    lines = []
    for name in sorted(files, key=lambda name: name.split("/")):
        data = files[name].encode() if isinstance(files[name], str) else files[name]
        lines.append("%s %d %s\n" % (hashlib.sha256(data).hexdigest(), len(data), name))
    return "".join(lines).encode()


def built_list(files, version):
    """The uota.files of `uota build` of the source files {path: data} as version."""
    return files_list(dict(files, version=version + "\n"))


def listed_files(archive):
    """The uota.files member of a release archive, as bytes."""
    with tarfile.open(archive) as tar:
        return tar.extractfile("uota.files").read()


def tar_cli(src, archive):
    """The seed's recipe: `tar -czf firmware.tar.gz *` inside the project folder."""
    subprocess.run("tar -czf %s *" % archive, shell=True, cwd=src, check=True)
    return Path(archive)


def tar_python(src, archive, format=tarfile.PAX_FORMAT):
    with tarfile.open(archive, "w:gz", format=format) as tar:
        for path in sorted(Path(src).rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False)
    return Path(archive)


def tar_members(archive, members, format=tarfile.GNU_FORMAT):
    """An archive of hand-made members: [(TarInfo, bytes or None)]."""
    with tarfile.open(archive, "w:gz", format=format) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return Path(archive)


def file_member(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def publish(dist, version, archive, free_kb=0, with_hash=True, latest=None):
    """Write dist/latest for archive (a file already in dist) and return its text."""
    archive = Path(archive)
    if latest is None:
        latest = "%s;%s;%d" % (version, archive.name, free_kb)
        if with_hash:
            latest += ";" + hashlib.sha256(archive.read_bytes()).hexdigest()
        latest += "\n"
    (Path(dist) / "latest").write_text(latest)
    return latest


def device_cfg(url, **extra):
    cfg = {"url": url, "tmp_filename": "fw.tmp", "excluded_files": ["wifi.json"], "delete": []}
    cfg.update(extra)
    return repr(cfg)


def apart_from_refusal(tree):
    """tree without uota.state when it records a refused release ("failed;..."): all a refused
    update may leave, so that the device does not download that release again."""
    record = tree.get("uota.state")
    if record is not None and record.startswith(b"failed;"):
        return {path: data for path, data in tree.items() if path != "uota.state"}
    return tree


def without_download(tree):
    """tree without uota's download and its record: the application's files, all a check
    that fails for want of RAM leaves changed (the download is kept to check again)."""
    return {path: data for path, data in tree.items() if path not in ("uota.state", "fw.tmp")}


def assert_update_changes_nothing(device, expected_result, **check_args):
    """Run an update that must not happen: the device's files stay byte-identical, apart from
    the record of a refused release. Returns its log."""
    before = device.files()
    result, log = device.update(**check_args)
    assert result == expected_result, log
    assert apart_from_refusal(device.files()) == before
    return log


class Device(_Device):
    """A virtual device that runs update scripts: its log at INFO, a failing script fails the test."""

    def run(self, code, **options):
        result = super().run(PRELUDE + code, **options)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def call(self, code):
        """Run code and return the last line it printed (the value the test asks about)."""
        result = self.run(code)
        lines = result.stdout.strip().splitlines()
        return lines[-1] if lines else "", result.stdout + result.stderr

    def update(self, **check_args):
        """check_for_updates() then, if it said yes, install_new_firmware()."""
        args = ", ".join("%s=%r" % kv for kv in check_args.items())
        return self.call(
            "found = uota.check_for_updates(%s)\n"
            "print(found, found and uota.install_new_firmware())\n" % args
        )

    def files(self):
        return read_tree(self.root)
