"""Delta releases: `uota build --delta-from OLD`.

For each earlier archive OLD, `uota build` also writes a delta archive holding only what a
device on OLD's version needs to become the new release:

    uota.delta   OLD's version, the SHA-256 of OLD's uota.files, then one line per file
                 OLD installed that the new release no longer has: the device deletes it
    version      the new version
    ...          every file whose content differs from OLD's (or that OLD lacks), every
                 folder OLD lacks, and uota.cfg whenever the release has one (a device
                 merges it with its own settings at each install, as for a full release)
    uota.files   the whole new release's list, as in the full archive

It is built like every release (reproducible, the same window). The deltas are listed in
``NAME.deltas`` (NAME: the full archive), one line each in `latest`'s grammar,
``OLD_VERSION;DELTA_NAME;FREE_KB;SHA256HEX;size=BYTES``, and `latest` names that list by
its hash, ``delta=SHA256HEX``, after the four fields every parser reads. A device on OLD's
version whose files are exactly OLD's takes the delta; every other device, and every
older parser, takes the full release (device/uota/_delta.py).
"""

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .build import _Member, _archive_bytes, _source_date_epoch, _unpacked_size, write_atomically
from .device.uota import _core, _latest
from .errors import CommandError

INDEX_SUFFIX = ".deltas"
DELTA_MEMBER = _core._DELTA
# Shipped in every delta: the version, and uota.cfg, which a device merges anew at each install.
_ALWAYS = ("version", "uota.cfg")


@dataclass(frozen=True)
class Delta:
    """One delta archive that `build_deltas` wrote."""

    from_version: str
    path: Path
    free_kb: int
    sha256: str
    size: int

    @property
    def index_line(self) -> str:
        return "{};{};{};{};size={}".format(self.from_version, self.path.name, self.free_kb, self.sha256, self.size)


def build_deltas(members, version, archive_name, full_size, out_dir, old_archives, window_bits):
    """Write a delta archive from each of `old_archives` to the release `members` (version
    `version`, full archive `archive_name` of `full_size` bytes) into `out_dir`, and their
    index; return (the index's SHA-256, [Delta], [the versions whose delta would not be
    smaller than the full archive: none is written]). No index without a delta."""
    deltas, seen, skipped = [], set(), []
    for old_archive in old_archives:
        old_version, old_list, old_files, old_folders = _read_old(old_archive)
        if _latest.compare_versions(old_version, version) >= 0:
            raise CommandError("{} is version {}, not older than {}: a delta goes from an older release".format(
                old_archive, old_version, version))
        if old_version in seen:
            raise CommandError("two --delta-from archives are version {}".format(old_version))
        seen.add(old_version)
        delta_members = _delta_members(members, old_version, old_list, old_files, old_folders)
        data = _archive_bytes(delta_members, _source_date_epoch(), window_bits)
        if len(data) >= full_size:
            skipped.append(old_version)
            continue
        path = out_dir / _delta_name(archive_name, old_version)
        free_kb = -(-(_unpacked_size(delta_members) + len(data)) // 1024)
        deltas.append(Delta(old_version, path, free_kb, hashlib.sha256(data).hexdigest(), len(data)))
        _write(path, data)
    if not deltas:
        return "", deltas, skipped
    index = "".join(delta.index_line + "\n" for delta in deltas).encode()
    _write(out_dir / (archive_name + INDEX_SUFFIX), index)
    return hashlib.sha256(index).hexdigest(), deltas, skipped


def _delta_name(archive_name, old_version):
    stem = archive_name[: -len(".tar.gz")] if archive_name.endswith(".tar.gz") else archive_name
    return "{}-from-{}.tar.gz".format(stem, old_version)


def _read_old(path):
    """(version, uota.files bytes, {path: (sha256, size)} of its files, set of folders) of an
    archive `uota build` wrote."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = {member.name: member for member in tar.getmembers()}
            if "version" not in names or "uota.files" not in names:
                raise CommandError("{} has no version or uota.files: a delta needs an archive `uota build` "
                                   "wrote".format(path))
            version = tar.extractfile(names["version"]).read().decode().strip()
            listed = tar.extractfile(names["uota.files"]).read()
            folders = {name for name, member in names.items() if member.isdir()}
        _latest.parse_version(version)
        files = {}
        for line in listed.decode().splitlines():
            sha, size, name = line.split(" ", 2)
            files[name] = (sha, int(size))
            folders.update(_parents(name))
    except (OSError, tarfile.TarError, EOFError, UnicodeDecodeError, ValueError, _core.UotaError) as error:
        raise CommandError("cannot read {} as a release archive: {}".format(path, error))
    return version, listed, files, folders


def _parents(path):
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _delta_members(members, old_version, old_list, old_files, old_folders):
    new_files = {member.name for member in members if member.data is not None}
    deleted = [path for path in old_files if path not in new_files]
    description = "{}\n{}\n{}".format(old_version, hashlib.sha256(old_list).hexdigest(),
                                      "".join(path + "\n" for path in deleted))
    chosen = [_Member(DELTA_MEMBER, description.encode())]
    for member in members:
        if member.data is None:
            if member.name not in old_folders:
                chosen.append(member)
        elif member.name in _ALWAYS or member.name == _core._FILES or \
                old_files.get(member.name) != (hashlib.sha256(member.data).hexdigest(), len(member.data)):
            chosen.append(member)
    return chosen


def _write(path, data):
    try:
        write_atomically(path, data)
    except OSError as error:
        raise CommandError("cannot write {}: {}".format(path, error.strerror or error))
