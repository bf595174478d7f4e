"""`uota demo`: the whole job end to end, in a temporary folder.

    app/        a small sample app: main.py, lib/greeting.py, lib/words.py, config.json
    signing-key a key pair from `keygen`: the releases are signed with it, the devices
                trust its public key (uota.cfg's keys)
    dist/       releases 1.0.0 and 1.1.0 from `build_release`, signed by `sign_release`;
                1.1.0 also as a delta from 1.0.0; `latest` names 1.1.0 and the delta
    devices/R/  one virtual device per runtime R, at 1.0.0 as its install left it, with its
                own config.json (listed in uota.cfg's excluded_files, so an update keeps
                it): it downloads the delta

`dist` is served with `start_server` on 127.0.0.1; each device is updated with
`simulate_device`, then its files are compared with the 1.1.0 archive. The
server is shut down and the folder removed (unless kept) however it ends.
"""

import tarfile
import tempfile
from pathlib import Path

from .build import build_release
from .delta import INDEX_SUFFIX
from .errors import CommandError
from .serve import start_server
from .sign import keygen, sign_release
from .simulate import format_simulation, simulate_device

DEMO_RUNTIMES = ("cpython", "micropython-1.29", "micropython-1.20")
LOCAL_CONFIG = "config.json"

WORDS = "WORDS = {}\n".format(["word{:03d}-{:x}".format(i, i * 2654435761 % 65536) for i in range(300)])
APP_FILES = {
    "1.0.0": {
        "main.py": "from lib.greeting import greet\n\nprint(greet())\n",
        "lib/greeting.py": "def greet():\n    return 'hello from 1.0.0'\n",
        LOCAL_CONFIG: '{"room": "unnamed"}\n',
        "lib/words.py": WORDS,
    },
    "1.1.0": {
        "main.py": "from lib.greeting import greet\nfrom lib.clock import uptime\n\nprint(greet(), uptime())\n",
        "lib/greeting.py": "def greet():\n    return 'hello from 1.1.0'\n",
        "lib/clock.py": "import time\n\n\ndef uptime():\n    return time.time()\n",
        LOCAL_CONFIG: '{"room": "unnamed"}\n',
        "lib/words.py": WORDS,  # unchanged: the delta leaves it out
    },
}
# What each device was set up with; an update must not overwrite it.
DEVICE_CONFIG = '{"room": "kitchen"}\n'
TRUSTED_KEY = "ota.pub"  # the device's copy of the signing key's public half


def run_demo(work_dir, say) -> bool:
    """Build, serve and update one device per runtime inside `work_dir`; True if all updated.

    `say` is called with each line of the story (the CLI prints them).
    """
    work_dir = Path(work_dir)
    dist = work_dir / "dist"
    private, public = keygen(work_dir / "signing-key")
    say("made the signing key {} and its public key {}".format(private.name, public.name))
    releases = {}
    for version in APP_FILES:
        releases[version] = _build(work_dir / "app", version, dist, private, say, list(releases.values()))
    server = start_server(dist)
    try:
        say("serving {} at {}".format(dist.relative_to(work_dir), server.url))
        results = [
            _update_device(work_dir / "devices" / runtime, runtime, server.url, releases, public.read_text(), say)
            for runtime in DEMO_RUNTIMES
        ]
    finally:
        server.shutdown()
    say("server stopped")
    updated = sum(results)
    say("{} of {} devices updated from 1.0.0 to 1.1.0".format(updated, len(results)))
    return updated == len(results)


def _build(app, version, dist, key, say, earlier):
    _write_files(app, APP_FILES[version])
    release = build_release(app, version, dist, delta_from=[old.archive_path for old in earlier])
    say("built {} ({} bytes)".format(release.archive_path.name, release.archive_path.stat().st_size))
    say("  files: {}".format(", ".join(sorted(APP_FILES[version]) + ["version"])))
    for delta in release.deltas:
        say("  the delta from {}: {} ({} bytes), listed in {}".format(
            delta.from_version, delta.path.name, delta.size, release.archive_path.name + INDEX_SUFFIX))
    say("  latest: {}".format(release.latest_line))
    signed = sign_release(dist, key)
    say("  signed by key {}: latest gains ;size={};sig=... (the devices check it)".format(
        signed.rpartition(";sig=")[2][:16], release.archive_path.stat().st_size))
    return release


def _update_device(root, runtime, url, releases, trusted_key, say):
    say("")
    say("[{}] device {}".format(runtime, root.relative_to(root.parent.parent)))
    _set_up_device(root, url, trusted_key, releases["1.0.0"])
    release = releases["1.1.0"]
    simulation = simulate_device(root, runtime)
    for line in format_simulation(simulation):
        say("  " + line)
    differences = _differences(root, release)
    if differences:
        say("  files differ from release {}: {}".format(release.version, ", ".join(differences)))
    else:
        say("  files match release {} ({} and {} kept)".format(release.version, LOCAL_CONFIG, TRUSTED_KEY))
    updated = simulation.ok and simulation.updated and not differences
    say("  result: {}".format("updated" if updated else "FAILED"))
    return updated


def _set_up_device(root, url, trusted_key, installed):
    """A device running the release `installed` (1.0.0) as its install left it (its files
    and their list, uota.files), its own config, the key it trusts, uota.cfg pointing at
    `url`."""
    _write_files(root, APP_FILES["1.0.0"])
    with tarfile.open(installed.archive_path) as archive:
        (root / "uota.files").write_bytes(archive.extractfile("uota.files").read())
    _write_files(root, {
        "version": "1.0.0\n",
        LOCAL_CONFIG: DEVICE_CONFIG,
        TRUSTED_KEY: trusted_key,
        "uota.cfg": repr({"url": url, "tmp_filename": "uota.tmp", "excluded_files": [LOCAL_CONFIG], "delete": [],
                          "keys": [TRUSTED_KEY], "require_hash": True}),
    })


def _differences(root, release):
    """Paths where the device's files are not the release's (its own config, key and uota.cfg aside)."""
    with tarfile.open(release.archive_path) as archive:
        expected = {
            member.name: archive.extractfile(member).read() for member in archive.getmembers() if member.isfile()
        }
    expected[LOCAL_CONFIG] = DEVICE_CONFIG.encode()
    expected[TRUSTED_KEY] = (root / TRUSTED_KEY).read_bytes()
    actual = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*") if path.is_file() and path.name != "uota.cfg"
    }
    # The device writes its version file itself, as the bare version (the commit point).
    for tree in (expected, actual):
        if "version" in tree:
            tree["version"] = tree["version"].strip()
    return sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))


def _write_files(folder, files):
    for name, text in files.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def add_arguments(parser):
    parser.add_argument("--keep", metavar="DIR", help="work in DIR (created) and keep it, instead of a temporary folder")


def run(args):
    """Build a release, serve it and update virtual devices on CPython and MicroPython."""
    if args.keep:
        keep = Path(args.keep)
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise CommandError("--keep {}: not an empty folder (the demo starts from nothing)".format(keep))
        keep.mkdir(parents=True, exist_ok=True)
        print("working in {}".format(args.keep))
        return 0 if run_demo(args.keep, print) else 1
    with tempfile.TemporaryDirectory(prefix="uota-demo-") as work_dir:
        print("working in {}".format(work_dir))
        all_updated = run_demo(work_dir, print)
    print("removed {}".format(work_dir))
    return 0 if all_updated else 1
