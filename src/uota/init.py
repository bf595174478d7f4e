"""`uota init`: put the device side of uota into a project folder.

Files written into DIR (the folder whose contents go to the board's root):

    uota.py     the device module (uota.mpy, compiled by mpy-cross, with --mpy);
                always refreshed
    uota.cfg    a commented dict literal: url, tmp_filename, excluded_files,
                delete; kept if present unless --force
    version     the installed version (default 0.0.0); kept if present
                unless --force
    boot.py     ``import uota`` / ``uota.recover()`` added at the top, so an
                interrupted install is finished before the app starts; an
                existing boot.py keeps its code, and the lines are never
                added twice
"""

from pathlib import Path

from .build import compile_mpy
from .device import uota as device
from .errors import CommandError

DEVICE_MODULE = Path(__file__).resolve().parent / "device" / "uota.py"

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

BOOT_SNIPPET = """\
# uota: finish or roll back an interrupted update before anything else runs.
import uota
uota.recover()
"""


def init_project(directory, url, version="0.0.0", mpy=False, force=False):
    """Write the device files into `directory`; return [(path, what happened)].

    What happened is "created", "replaced", "kept" or "updated" (boot.py).

    Raises:
        CommandError: a bad URL or version, mpy-cross failure, or an I/O error.
    """
    if not url.startswith(("http://", "https://")):
        raise CommandError("--url must start with http:// or https://, not {!r}".format(url))
    if not url.endswith("/"):
        url += "/"  # the device appends file names to it
    try:
        device.parse_version(version)
    except device.UotaError as error:
        raise CommandError("--version: {}".format(error))
    cfg_text = CFG_TEMPLATE.format(url=url)
    try:
        device.parse_cfg(cfg_text)  # the device must be able to read what we write
    except device.UotaError as error:
        raise CommandError("cannot write a uota.cfg for {!r}: {}".format(url, error))

    directory = Path(directory)
    if mpy:
        module_name, module_bytes = "uota.mpy", compile_mpy(DEVICE_MODULE, "uota.py")
    else:
        module_name, module_bytes = "uota.py", DEVICE_MODULE.read_bytes()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return [
            _write(directory / module_name, module_bytes, overwrite=True),
            _write(directory / "uota.cfg", cfg_text.encode(), overwrite=force),
            _write(directory / "version", (version + "\n").encode(), overwrite=force),
            _add_boot_snippet(directory / "boot.py"),
        ]
    except OSError as error:
        raise CommandError("cannot write into {}: {}".format(directory, error.strerror or error))


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
    if "uota.recover(" in existing:
        return path, "kept"
    path.write_text(BOOT_SNIPPET + "\n" + existing)
    return path, "updated"


def add_arguments(parser):
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR", help="project folder (default: .)")
    parser.add_argument("--url", required=True, help="base URL devices fetch `latest` and releases from")
    parser.add_argument("--version", default="0.0.0", metavar="V", help="version written to DIR/version (default: 0.0.0)")
    parser.add_argument("--mpy", action="store_true", help="install the device module as uota.mpy, compiled by mpy-cross")
    parser.add_argument("--force", action="store_true", help="replace an existing uota.cfg and version")


def run(args):
    """Add the device module, uota.cfg, version and a boot.py hook to a project."""
    written = init_project(args.directory, args.url, args.version, args.mpy, args.force)
    for path, what_happened in written:
        note = " (use --force to replace)" if what_happened == "kept" and path.name in ("uota.cfg", "version") else ""
        print("{:<8} {}{}".format(what_happened, path, note))
    print("copy them to the board with:")
    print("  mpremote cp {} :".format(" ".join(str(path) for path, _ in written)))
