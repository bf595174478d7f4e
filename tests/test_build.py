"""`uota build`: reproducible archives, their layout, `latest`, --mpy, and refusals."""

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.fixtures_servers import run_uota
from support.releases import files_list

from uota.device.uota import _latest

SOURCE_FILES = {
    "boot.py": b"import uota\nuota.recover()\n",
    "main.py": b"print('app')\n",
    "lib/sensor.py": b"def read():\n    return 42\n",
    "lib/deep/data.bin": bytes(range(256)) * 40,
    "web/index.html": b"<h1>hi</h1>\n",
    "empty.txt": b"",
}
# Present in the source folder, never in the archive.
EXCLUDED_FILES = {
    "version": b"0.0.1\n",  # replaced by the generated one
    "uota.files": b"0 0 stale.py\n",  # likewise
    ".git/HEAD": b"ref: refs/heads/main\n",
    "lib/__pycache__/sensor.cpython-311.pyc": b"\x00",
    "lib/old.pyc": b"\x00",
    ".DS_Store": b"\x00",
    "main.py~": b"backup",
    ".main.py.swp": b"swap",
    ".#main.py": b"lock",
    "notes.log": b"excluded by --exclude",
}


def unpacked_release(version="1.2.0"):
    """The tree a release of SOURCE_FILES unpacks to: the sources, version and uota.files."""
    files = {**SOURCE_FILES, "version": version.encode() + b"\n"}
    return {**files, "uota.files": files_list(files)}


def write_files(folder, files):
    for name, data in files.items():
        path = Path(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def files_under(folder):
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "app"
    write_files(folder, {**SOURCE_FILES, **EXCLUDED_FILES})
    return folder


def build(source, out, *options, version="1.2.0"):
    result = run_uota("build", source, "--version", version, "--out", out, "--exclude", "*.log", *options)
    assert result.returncode == 0, result.stderr
    return Path(out) / "firmware-{}.tar.gz".format(version)


def test_building_twice_gives_identical_bytes(source, tmp_path):
    first = build(source, tmp_path / "first")
    os.utime(source / "main.py", (1_000_000, 1_000_000))  # mtimes must not leak in
    second = build(source, tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "first/latest").read_bytes() == (tmp_path / "second/latest").read_bytes()


def test_gnu_tar_unpacks_the_source_tree_minus_exclusions_plus_version(source, tmp_path):
    archive = build(source, tmp_path / "dist")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(unpacked)], check=True)
    assert files_under(unpacked) == unpacked_release()


def test_python_tarfile_unpacks_the_same_tree(source, tmp_path):
    archive = build(source, tmp_path / "dist")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    assert files_under(unpacked) == unpacked_release()


def test_the_last_member_lists_every_file_with_its_hash_and_size(source, tmp_path):
    with tarfile.open(build(source, tmp_path / "dist")) as tar:
        last = tar.getmembers()[-1]
        listed = tar.extractfile(last).read()
    assert last.name == "uota.files"
    assert listed == files_list({**SOURCE_FILES, "version": b"1.2.0\n"})


def test_members_are_normalised_and_ordered(source, tmp_path):
    result = run_uota(
        "build", source, "--version", "1.2.0", "--out", tmp_path / "dist", "--exclude", "*.log",
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "dist/firmware-1.2.0.tar.gz") as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names[-1] == "uota.files"  # last, after the files it lists
    assert names[:-1] == sorted(names[:-1], key=lambda name: name.split("/"))
    assert names.index("lib") < names.index("lib/deep") < names.index("lib/deep/data.bin")
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == 1700000000
        assert member.mode == (0o755 if member.isdir() else 0o644)
        assert member.isdir() or member.isfile()


def test_gzip_header_has_no_time_and_no_file_name(source, tmp_path):
    header = build(source, tmp_path / "dist").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 4  # FLG: only FEXTRA (the window), no FNAME, no comment
    assert header[4:8] == b"\0\0\0\0"  # MTIME


def test_latest_parses_back_with_the_archive_hash_and_needed_space(source, tmp_path):
    archive = build(source, tmp_path / "dist")
    version, filename, free_kb, sha256 = _latest.parse_latest((tmp_path / "dist/latest").read_text())[:4]
    assert (version, filename) == ("1.2.0", archive.name)
    assert sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    blocks = sum(-(-len(data) // 4096) for data in unpacked_release().values())
    assert free_kb == -(-(blocks * 4096 + archive.stat().st_size) // 1024)


def test_older_releases_are_kept_and_latest_points_at_the_newest(source, tmp_path):
    older = build(source, tmp_path / "dist", version="1.0.0")
    newer = build(source, tmp_path / "dist", version="1.1.0")
    assert older.exists() and newer.exists()
    assert _latest.parse_latest((tmp_path / "dist/latest").read_text())[:2] == ("1.1.0", newer.name)
    assert sorted(path.name for path in (tmp_path / "dist").iterdir()) == sorted([older.name, newer.name, "latest"])


def test_name_option_sets_the_archive_name(source, tmp_path):
    build(source, tmp_path / "dist", "--name", "app.tar.gz")
    assert _latest.parse_latest((tmp_path / "dist/latest").read_text())[1] == "app.tar.gz"
    assert (tmp_path / "dist/app.tar.gz").is_file()


def test_dist_inside_the_source_folder_is_not_packed(source):
    build(source, source / "dist", version="1.0.0")
    archive = build(source, source / "dist", version="1.1.0")
    with tarfile.open(archive) as tar:
        assert not [name for name in tar.getnames() if name.startswith("dist")]


def test_mpy_compiles_modules_but_keeps_boot_and_main_as_source(source, tmp_path):
    archive = build(source, tmp_path / "dist", "--mpy")
    with tarfile.open(archive) as tar:
        members = {member.name: tar.extractfile(member).read() for member in tar.getmembers() if member.isfile()}
    assert members["lib/sensor.mpy"][:1] == b"M"  # mpy-cross's header
    assert "lib/sensor.py" not in members
    assert members["boot.py"] == SOURCE_FILES["boot.py"]
    assert members["main.py"] == SOURCE_FILES["main.py"]


def test_mpy_build_is_reproducible(source, tmp_path):
    first = build(source, tmp_path / "first", "--mpy")
    second = build(source, tmp_path / "second", "--mpy")
    assert first.read_bytes() == second.read_bytes()


def test_mpy_syntax_error_is_reported_in_one_line(source, tmp_path):
    (source / "lib/broken.py").write_text("def (:\n")
    result = run_uota("build", source, "--version", "1.0", "--out", tmp_path / "dist", "--mpy")
    assert result.returncode == 1
    assert result.stderr.startswith("uota: mpy-cross could not compile lib/broken.py")
    assert not (tmp_path / "dist").exists()


def make_symlink(source):
    (source / "lib/passwords").symlink_to("/etc/passwd")


def make_fifo(source):
    os.mkfifo(source / "lib/pipe")


def make_file(name):
    return lambda source: (source / name).write_bytes(b"x")


def make_cfg(tmp_filename, download):
    """A project uota.cfg naming tmp_filename, and a source file at `download` (or none)."""
    def spoil(source):
        (source / "uota.cfg").write_text(repr({"url": "http://127.0.0.1:9/", "tmp_filename": tmp_filename}))
        if download:
            (source / download).write_bytes(b"x")
    return spoil


@pytest.mark.parametrize("version", ["1.2.0", "1.2.0-rc1", "1.2.0_beta.2", "1.0+build.5", "20261129"])
def test_plain_versions_build(source, tmp_path, version):
    result = run_uota("build", source, "--out", tmp_path / "dist", "--version", version)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dist" / "latest").read_text().startswith(version + ";")


@pytest.mark.parametrize(
    "spoil, args, message",
    [
        pytest.param(make_symlink, ("--version", "1.0"), "symbolic links are not allowed", id="symlink"),
        pytest.param(make_fifo, ("--version", "1.0"), "not a regular file or folder", id="fifo"),
        pytest.param(None, ("--version", "1.0;evil"), "invalid version", id="bad-version"),
        pytest.param(None, ("--version", "v1"), "would sort surprisingly", id="version-letter-first"),
        pytest.param(None, ("--version", "1.0a"), "would sort surprisingly", id="version-letter-in-numbers"),
        pytest.param(None, ("--version", "1.x.2"), "would sort surprisingly", id="version-letter-part"),
        pytest.param(make_file("lib/a:b.py"), ("--version", "1.0"), "a device would refuse it", id="fat-forbidden-name"),
        pytest.param(make_file("lib/WIFI~1.PY"), ("--version", "1.0"), "a device would refuse it", id="fat-short-name"),
        pytest.param(make_file("lib/caf\u00e9.py"), ("--version", "1.0"), "a device would refuse it", id="non-ascii-name"),
        pytest.param(make_file("lib/trailing."), ("--version", "1.0"), "a device would refuse it", id="trailing-dot"),
        pytest.param(make_file("uota.state"), ("--version", "1.0"), "a device would refuse the release", id="journal"),
        pytest.param(make_file("UOTA.STATE"), ("--version", "1.0"), "a device would refuse the release", id="journal-upper-case"),
        pytest.param(make_file("uota.state.uota-new"), ("--version", "1.0"), "a device would refuse the release", id="journal-mid-rename"),
        pytest.param(make_file("lib/sensor.py.uota-new"), ("--version", "1.0"), "a device would refuse the release", id="file-being-written"),
        pytest.param(make_file("UOTA.CFG"), ("--version", "1.0"), "a device would refuse the release", id="cfg-other-case"),
        pytest.param(make_cfg("uota.tmp", "uota.tmp"), ("--version", "1.0"), "a device would refuse the release", id="download-as-init-names-it"),
        pytest.param(make_cfg("fw.tmp", "FW.TMP"), ("--version", "1.0"), "a device would refuse the release", id="download-other-case"),
        pytest.param(make_cfg("../fw.tmp", None), ("--version", "1.0"), "a device would refuse the release", id="cfg-a-device-refuses"),
        pytest.param(None, ("--version", "1.0", "--name", "../up.tar.gz"), "invalid archive name", id="bad-name"),
        pytest.param(None, ("--version", "1.0", "--name", "latest"), "invalid archive name", id="name-latest"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(source, tmp_path, spoil, args, message):
    if spoil:
        spoil(source)
    result = run_uota("build", source, "--out", tmp_path / "dist", *args)
    assert result.returncode == 1
    assert result.stderr.startswith("uota: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "dist").exists()


def test_missing_source_folder_is_refused(tmp_path):
    result = run_uota("build", tmp_path / "nowhere", "--version", "1.0", "--out", tmp_path / "dist")
    assert (result.returncode, result.stderr) == (1, "uota: source folder {} does not exist or is not a folder\n".format(tmp_path / "nowhere"))
    assert not (tmp_path / "dist").exists()


def test_refused_build_leaves_the_published_release_untouched(source, tmp_path):
    build(source, tmp_path / "dist", version="1.0.0")
    before = files_under(tmp_path / "dist")
    make_symlink(source)
    assert run_uota("build", source, "--version", "2.0.0", "--out", tmp_path / "dist").returncode == 1
    assert files_under(tmp_path / "dist") == before


def test_long_member_names_survive(tmp_path):
    long_name = "lib/" + "a" * 120 + ".py"
    write_files(tmp_path / "app", {long_name: b"x = 1\n"})
    archive = build(tmp_path / "app", tmp_path / "dist")
    with tarfile.open(archive) as tar:
        assert tar.extractfile(long_name).read() == b"x = 1\n"
